"""Deleting a source takes its documents out of the index and the database, even across a crash."""
import psycopg
import pytest
from django.db import connection
from django.urls import reverse

from connectors.models import SyncRun
from connectors.services import source_create, source_sync
from kbsearch.documents import faults, services
from kbsearch.documents.models import Chunk, Document, DocumentAccess, PendingIndexChange, Source
from tests.connectors.sync_state import make_share

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(tmp_path, tiny_encoder, index_backend):
    """Two synced sources over two shares; tests delete the first and check the second is untouched."""
    sources = []
    for key in ("share", "other"):
        share = make_share(tmp_path / key)
        source = source_create(key=key, name=key.title(), connector="filesystem", config={"root": str(share)})
        assert source_sync(source=source, encoder=tiny_encoder).status == SyncRun.Status.SUCCEEDED
        sources.append(source)
    return sources


def _ids(source_key: str) -> set[int]:
    return set(Document.objects.filter(source__key=source_key).values_list("pk", flat=True))


def _assert_gone(source_pk: int, kept: set[int], index) -> None:
    assert not Source.objects.filter(pk=source_pk).exists()
    assert not SyncRun.objects.filter(source_id=source_pk).exists()
    assert set(Document.objects.values_list("pk", flat=True)) == kept
    assert set(Chunk.objects.values_list("document_id", flat=True)) == kept
    assert set(DocumentAccess.objects.values_list("document_id", flat=True)) == kept
    assert index.document_ids() == kept
    assert not PendingIndexChange.objects.exists()


def test_source_delete_removes_its_documents_from_index_and_database(synced, index_backend):
    share, other = synced
    kept = _ids("other")
    assert index_backend.document_ids() == kept | _ids("share")

    services.source_delete(source=share, index=index_backend)

    _assert_gone(share.pk, kept, index_backend)


@pytest.mark.parametrize(
    "point", ["documents.delete.committed", "documents.delete.indexed", "documents.source_delete.emptied"]
)
def test_source_delete_killed_half_way_is_finished_by_deleting_again(point, synced, index_backend, monkeypatch):
    share, other = synced
    kept = _ids("other")
    monkeypatch.setattr(services, "_DELETE_BATCH_DOCUMENTS", 2)  # several batches, so it dies in the middle
    faults.arm(point)
    try:
        with pytest.raises(faults.Killed):
            services.source_delete(source=share, index=index_backend)
    finally:
        faults.disarm_all()
    share = Source.objects.get(pk=share.pk)
    assert not share.enabled  # a half-deleted source is never refilled by a scheduled sync

    services.source_delete(source=share, index=index_backend)

    _assert_gone(share.pk, kept, index_backend)


def test_admin_delete_of_one_source_uses_the_service(synced, index_backend, admin_client):
    share, other = synced
    kept = _ids("other")

    response = admin_client.post(reverse("admin:documents_source_delete", args=[share.pk]), {"post": "yes"})

    assert response.status_code == 302
    _assert_gone(share.pk, kept, index_backend)


def test_admin_bulk_delete_uses_the_service(synced, index_backend, admin_client):
    share, other = synced

    response = admin_client.post(
        reverse("admin:documents_source_changelist"),
        {"action": "delete_selected", "_selected_action": [share.pk, other.pk], "post": "yes"},
    )

    assert response.status_code == 302
    _assert_gone(share.pk, set(), index_backend)
    assert not Source.objects.exists()


def test_admin_delete_while_a_sync_runs_deletes_nothing_and_says_so(synced, index_backend, admin_client, monkeypatch):
    share, other = synced
    before = _ids("share") | _ids("other")
    monkeypatch.setattr(services, "_DELETE_LOCK_WAIT_SECONDS", 0.0)
    database = connection.settings_dict
    sync_process = psycopg.connect(
        host=database["HOST"] or "127.0.0.1", port=database["PORT"] or 5432, user=database["USER"],
        dbname=database["NAME"], autocommit=True,
    )
    try:  # a sync in another process holds the source
        sync_process.execute("SELECT pg_advisory_lock(%s, %s)", (0x6B627300, share.pk))
        response = admin_client.post(
            reverse("admin:documents_source_delete", args=[share.pk]), {"post": "yes"}, follow=True
        )
    finally:
        sync_process.close()

    assert "a sync is running: share" in response.content.decode()
    assert "deleted successfully" not in response.content.decode()
    share.refresh_from_db()
    assert not share.enabled
    assert index_backend.document_ids() == before == set(Document.objects.values_list("pk", flat=True))
