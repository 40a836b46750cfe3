"""Connector credentials: encrypted at rest, rotated, write-only in the admin, handed to connectors apart."""
import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model

from connectors.services import source_create, source_sync
from kbsearch.documents.credentials import (
    CredentialsUnavailable,
    source_credentials,
    source_credentials_rotate,
    source_credentials_set,
)
from kbsearch.documents.models import Source
from tests.connectors.cursor_connector import SITES, Item, Site

pytestmark = pytest.mark.django_db
SECRET = "tok-3f9a-very-secret"


@pytest.fixture
def key(settings):
    settings.KBSEARCH_CREDENTIALS_KEY = Fernet.generate_key().decode()
    return settings.KBSEARCH_CREDENTIALS_KEY


@pytest.fixture
def wiki():
    SITES.clear()
    SITES.setdefault("wiki", Site()).put("a", Item("Alpha page text."))
    yield source_create(key="wiki", name="Wiki", connector="test-cursor", config={"name": "wiki"})
    SITES.clear()


def test_credentials_are_stored_encrypted_and_reach_the_connector_apart_from_its_config(
    key, wiki, tiny_encoder, index_backend
):
    source_credentials_set(source=wiki, credentials={"api_token": SECRET})
    stored = Source.objects.values_list("credentials_encrypted", flat=True).get(pk=wiki.pk)
    assert stored and SECRET not in stored
    assert source_credentials(Source.objects.get(pk=wiki.pk)) == {"api_token": SECRET}

    source_sync(source=wiki, encoder=tiny_encoder, index=index_backend)
    assert SITES["wiki"].credentials_seen == {"api_token": SECRET}
    assert SECRET not in repr(SITES["wiki"].connector) and "api_token" not in str(wiki.config)


def test_without_a_key_nothing_is_stored_and_a_changed_key_is_a_clear_error(settings, wiki):
    settings.KBSEARCH_CREDENTIALS_KEY = ""
    with pytest.raises(CredentialsUnavailable, match="KBSEARCH_CREDENTIALS_KEY is not set"):
        source_credentials_set(source=wiki, credentials={"api_token": SECRET})
    assert Source.objects.get(pk=wiki.pk).credentials_encrypted == ""

    settings.KBSEARCH_CREDENTIALS_KEY = Fernet.generate_key().decode()
    source_credentials_set(source=wiki, credentials={"api_token": SECRET})
    settings.KBSEARCH_CREDENTIALS_KEY = Fernet.generate_key().decode()
    with pytest.raises(CredentialsUnavailable, match="cannot be decrypted"):
        source_credentials(Source.objects.get(pk=wiki.pk))


def test_rotation_re_encrypts_with_the_new_key_so_the_old_one_can_be_dropped(settings, key, wiki):
    source_credentials_set(source=wiki, credentials={"api_token": SECRET})
    new_key = Fernet.generate_key().decode()
    settings.KBSEARCH_CREDENTIALS_KEY = f"{new_key},{key}"
    assert source_credentials_rotate() == 1
    settings.KBSEARCH_CREDENTIALS_KEY = new_key
    assert source_credentials(Source.objects.get(pk=wiki.pk)) == {"api_token": SECRET}


def test_the_admin_takes_credentials_but_never_shows_them(key, wiki, client):
    admin = get_user_model().objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    url = f"/admin/documents/source/{wiki.pk}/change/"
    form = {"key": "wiki", "name": "Wiki", "connector": "test-cursor", "config": '{"name": "wiki"}', "enabled": "on"}
    response = client.post(url, {**form, "new_credentials": f'{{"api_token": "{SECRET}"}}'})
    assert response.status_code == 302
    assert source_credentials(Source.objects.get(pk=wiki.pk)) == {"api_token": SECRET}

    page = client.get(url).content.decode()
    assert SECRET not in page and Source.objects.get(pk=wiki.pk).credentials_encrypted not in page

    client.post(url, form)  # saved again without new credentials: the stored ones stay
    assert source_credentials(Source.objects.get(pk=wiki.pk)) == {"api_token": SECRET}
    response = client.post(url, {**form, "new_credentials": "not json"})
    assert response.status_code == 200 and "not JSON" in response.content.decode()
    client.post(url, {**form, "clear_credentials": "on"})
    assert Source.objects.get(pk=wiki.pk).credentials_encrypted == ""
