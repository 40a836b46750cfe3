"""The admin's sync actions on sources and the sync runs page (read-only, cancellable)."""
import pytest
from django.contrib.auth import get_user_model

from connectors.models import SyncRun
from connectors.services import source_create
from kbsearch.documents.models import Document, Source
from tests.connectors.sync_state import SHARE, make_share

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-root-123"))
    return client


def test_sync_now_runs_a_sync_and_lists_its_run(
    admin_client, tmp_path, tiny_encoder, index_backend, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("embeddings.loading.get_encoder", lambda: tiny_encoder)
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(make_share(tmp_path))})
    with django_capture_on_commit_callbacks(execute=True):  # the task is queued on commit; eager here
        response = admin_client.post(
            "/admin/documents/source/", {"action": "sync_now", "_selected_action": [source.pk]}, follow=True
        )
    assert response.status_code == 200 and "Started syncs of share" in response.content.decode()
    run = SyncRun.objects.get(source=source)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert Document.objects.filter(source=source).count() == len([n for n in SHARE if not n.endswith(".yaml")])
    page = admin_client.get("/admin/connectors/syncrun/").content.decode()
    assert f"/admin/connectors/syncrun/{run.pk}/change/" in page


def test_a_permission_sync_is_refused_for_a_connector_without_it(admin_client, tmp_path, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(make_share(tmp_path))})
    response = admin_client.post(
        "/admin/documents/source/", {"action": "sync_permissions", "_selected_action": [source.pk]}, follow=True
    )
    assert "No permission-only sync for share" in response.content.decode()
    assert not SyncRun.objects.exists()


def test_cancel_asks_a_running_run_to_stop_and_leaves_finished_ones(admin_client, tmp_path, index_backend):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(make_share(tmp_path))})
    running = SyncRun.objects.create(source=source, mode="cursor")
    done = SyncRun.objects.create(source=source, mode="cursor", status=SyncRun.Status.SUCCEEDED)
    response = admin_client.post(
        "/admin/connectors/syncrun/", {"action": "cancel", "_selected_action": [running.pk, done.pk]}, follow=True
    )
    assert f"Asked run(s) {running.pk} to stop" in response.content.decode()
    running.refresh_from_db()
    done.refresh_from_db()
    assert running.cancel_requested and not done.cancel_requested
    assert admin_client.get(f"/admin/connectors/syncrun/{running.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/connectors/syncrun/{running.pk}/delete/").status_code == 403


@pytest.mark.parametrize(
    ("connector", "config", "field", "message"),
    [
        ("filesystem", "not json", "config", "Enter a valid JSON"),
        ("filesystem", "[1, 2]", "config", "give a JSON object"),
        ("filesystem", "{}", "config", "needs &#x27;root&#x27;"),
        ("filesystem", '{"root": 5}', "config", "cannot use this configuration"),
        ("no-such-connector", '{"root": "/srv"}', "connector", "unknown connector"),
    ],
)
def test_the_source_form_refuses_what_no_sync_could_use_and_saves_nothing(admin_client, connector, config, field, message):
    form = {"key": "share", "name": "Share", "connector": connector, "config": config, "enabled": "on"}
    response = admin_client.post("/admin/documents/source/add/", form)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert field in response.context["adminform"].form.errors
    assert not Source.objects.exists()


def test_actions_on_a_source_saved_with_an_unknown_connector_report_it_without_an_error_page(
    admin_client, index_backend, django_capture_on_commit_callbacks
):
    # Saved before the form checked connectors, or its connector was removed since.
    source = Source.objects.create(key="old", name="Old", connector="retired-connector", config={}, enabled=True)
    response = admin_client.post(
        "/admin/documents/source/", {"action": "sync_permissions", "_selected_action": [source.pk]}, follow=True
    )
    assert response.status_code == 200 and "No permission-only sync for old" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = admin_client.post(
            "/admin/documents/source/", {"action": "sync_now", "_selected_action": [source.pk]}, follow=True
        )
    assert response.status_code == 200 and "Old: the sync failed: unknown connector" in response.content.decode()
    assert queued == [] and not SyncRun.objects.exists()


def test_a_source_added_in_the_admin_gets_the_default_schedule(admin_client, tmp_path, index_backend):
    from connectors.schedules import source_schedule

    root = make_share(tmp_path)
    response = admin_client.post("/admin/documents/source/add/", {
        "key": "added", "name": "Added", "connector": "filesystem", "config": f'{{"root": "{root}"}}', "enabled": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule = source_schedule(Source.objects.get(key="added"))
    assert schedule["content"].interval.every == 15 * 60
    assert schedule["permissions"] is None and schedule["full"] is None  # a file share has neither
