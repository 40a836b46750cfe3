"""/api/schema/ and /api/docs/ answer signed-in users only, unless KBSEARCH_API_DOCS_PUBLIC is on."""
import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

SCHEMA = "/api/schema/?format=json"
DOCS = "/api/docs/"


def test_anonymous_clients_get_a_401_for_the_schema():
    response = APIClient().get(SCHEMA)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}


def test_anonymous_browsers_are_sent_to_sign_in_and_back_from_the_docs_page():
    response = Client().get(DOCS)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/api/docs/"
    assert b"swagger" not in response.content.lower()


def test_a_bad_token_is_a_401_on_both(kb):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert client.get(SCHEMA).status_code == 401
    assert client.get(DOCS).status_code == 401


def test_signed_in_users_get_both(clients, users):
    schema = clients["erin"].get(SCHEMA)  # a token, as scripts use it
    assert schema.status_code == 200 and "/api/v1/search" in schema.json()["paths"]
    browser = Client()
    browser.force_login(users["erin"])  # the page's session
    assert browser.get(SCHEMA).status_code == 200
    docs = browser.get(DOCS)
    assert docs.status_code == 200 and "swagger-ui" in docs.content.decode()


def test_inactive_users_get_neither(users, token_client):
    users["erin"].is_active = False
    users["erin"].save()
    assert token_client(users["erin"]).get(SCHEMA).status_code == 401
    browser = Client()
    browser.force_login(users["erin"])
    assert browser.get(SCHEMA).status_code == 401
    assert browser.get(DOCS).status_code == 302


def test_both_are_public_when_configured(settings):
    settings.KBSEARCH_API_DOCS_PUBLIC = True
    schema = APIClient().get(SCHEMA)
    assert schema.status_code == 200 and set(schema.json()["paths"]) >= {"/api/v1/feedback", "/api/v1/clicks"}
    docs = Client().get(DOCS)
    assert docs.status_code == 200 and "swagger-ui" in docs.content.decode()
