"""Run bookkeeping and source lifecycle: windows, abandoned runs, busy and disabled sources, --full."""
from datetime import timedelta

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from connectors import services as sync_services
from connectors.models import SyncRun
from connectors.services import SourceDisabled, source_create, source_sync
from connectors.tasks import sync_source_task
from kbsearch.documents.locks import SourceBusy
from kbsearch.documents.models import Document, PendingIndexChange
from kbsearch.index.base import IndexChunk
from tests.connectors.memory_connector import ITEMS, Item
from tests.connectors.sync_state import make_share, other_index, source_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def memory():
    ITEMS.clear()
    yield ITEMS.setdefault("mem", {})
    ITEMS.clear()


def _memory_source():
    return source_create(key="mem", name="Memory", connector="test-memory", config={"name": "mem"})


def _hours_ago(hours: float):
    return timezone.now() - timedelta(hours=hours)


def test_failed_item_is_retried_next_poll_although_its_modification_time_is_old(memory, tiny_encoder, index_backend):
    memory["a.txt"] = Item("Alpha text about budgets.", _hours_ago(3))
    source = _memory_source()
    source_sync(source=source, encoder=tiny_encoder)
    # The last good run was two hours ago; b.txt changed an hour ago and cannot be read right now.
    first_window = _hours_ago(2)
    source.__class__.objects.filter(pk=source.pk).update(last_synced_at=first_window, checkpoint={"polls": 7})
    source.refresh_from_db()
    memory["b.txt"] = Item("Beta text about travel.", _hours_ago(1), failure="share unreachable for this file")

    run = source_sync(source=source, encoder=tiny_encoder)

    assert (run.mode, run.status, run.counts["retryable_errors"]) == ("poll", SyncRun.Status.PARTIAL, 1)
    source.refresh_from_db()
    # Not completed: the window and the connector's state stay where the last completed run left them.
    assert source.last_synced_at == first_window and source.checkpoint == {"polls": 7}
    memory["b.txt"].failure = ""  # readable again, modification time unchanged (an hour ago)

    run = source_sync(source=source, encoder=tiny_encoder)

    assert (run.status, run.counts["created"], run.counts["unchanged"]) == (SyncRun.Status.SUCCEEDED, 1, 0)
    assert set(Document.objects.filter(source=source).values_list("external_id", flat=True)) == {"a.txt", "b.txt"}
    source.refresh_from_db()
    assert source.last_synced_at > first_window and source.checkpoint == {"polls": 8}


def test_content_that_fails_the_same_way_every_time_does_not_hold_the_window(memory, tiny_encoder, index_backend):
    memory["a.txt"] = Item("Alpha text about budgets.", _hours_ago(3))
    memory["blob.bin"] = Item("", _hours_ago(3), failure="looks binary", retryable=False)
    memory["empty.txt"] = Item("   ", _hours_ago(3))  # rejected by ingest: no text
    source = _memory_source()
    started = timezone.now()

    run = source_sync(source=source, encoder=tiny_encoder)

    assert run.status == SyncRun.Status.PARTIAL
    assert {error["external_id"] for error in run.errors} == {"blob.bin", "empty.txt"}
    assert run.counts["retryable_errors"] == 0
    source.refresh_from_db()
    assert source.last_synced_at >= started


def test_a_failed_run_does_not_advance_the_window(memory, tiny_encoder, index_backend, monkeypatch):
    memory["a.txt"] = Item("Alpha text about budgets.", _hours_ago(3))
    source = _memory_source()
    source_sync(source=source, encoder=tiny_encoder)
    source.refresh_from_db()
    before = (source.last_synced_at, source.checkpoint)

    def unreachable(self):
        raise sync_services.ConnectorConfigError("listing failed")

    monkeypatch.setattr("tests.connectors.memory_connector.MemoryConnector.list_ids", unreachable)
    with pytest.raises(sync_services.ConnectorConfigError):
        source_sync(source=source, encoder=tiny_encoder)
    source.refresh_from_db()
    assert (source.last_synced_at, source.checkpoint) == before
    assert SyncRun.objects.filter(source=source).first().status == SyncRun.Status.FAILED


def test_run_left_running_by_a_dead_process_is_marked_failed_when_the_next_starts(memory, tiny_encoder, index_backend):
    memory["a.txt"] = Item("Alpha text.", _hours_ago(3))
    source = _memory_source()
    dead = SyncRun.objects.create(source=source, mode="full")  # status running, nobody holds the lock

    run = source_sync(source=source, encoder=tiny_encoder)

    dead.refresh_from_db()
    assert dead.status == SyncRun.Status.FAILED and dead.finished_at is not None
    assert "abandoned" in dead.errors[0]["reason"]
    assert run.status == SyncRun.Status.SUCCEEDED


def test_a_source_held_by_another_process_is_not_synced_and_its_run_is_left_alone(
    memory, tiny_encoder, index_backend, monkeypatch
):
    memory["a.txt"] = Item("Alpha text.", _hours_ago(3))
    source = _memory_source()
    live = SyncRun.objects.create(source=source, mode="full")
    monkeypatch.setattr(sync_services, "_LOCK_WAIT_SECONDS", 0.0)
    database = connection.settings_dict
    other = psycopg.connect(
        host=database["HOST"] or "127.0.0.1", port=database["PORT"] or 5432, user=database["USER"],
        dbname=database["NAME"], autocommit=True,
    )
    try:  # another process's session holds the source's lock
        other.execute("SELECT pg_advisory_lock(%s, %s)", (0x6B627300, source.pk))
        with pytest.raises(SourceBusy):
            source_sync(source=source, encoder=tiny_encoder)
    finally:
        other.close()
    live.refresh_from_db()
    assert live.status == SyncRun.Status.RUNNING
    assert SyncRun.objects.filter(source=source).count() == 1


def test_disabled_source_is_not_synced_by_the_service_the_command_or_the_task(memory, tiny_encoder, index_backend):
    memory["a.txt"] = Item("Alpha text.", _hours_ago(3))
    source = _memory_source()
    source.__class__.objects.filter(pk=source.pk).update(enabled=False)
    source.refresh_from_db()

    with pytest.raises(SourceDisabled):
        source_sync(source=source, encoder=tiny_encoder)
    with pytest.raises(CommandError, match="disabled"):
        call_command("sync_source", "mem")
    assert sync_source_task.apply(args=(source.pk,)).get() is None
    assert not SyncRun.objects.exists() and not Document.objects.exists()


def test_full_sync_repairs_an_index_that_drifted_from_the_database(tmp_path, tiny_encoder, index_backend):
    share = make_share(tmp_path / "share")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})
    source_sync(source=source, encoder=tiny_encoder)
    documents = {d.external_id: d.pk for d in Document.objects.filter(source=source)}
    # Drift behind the outbox's back: a document lost, an access list widened, a stray document.
    index_backend.delete_documents([documents["welcome.md"]])
    index_backend.update_access(documents["hr/salary.md"], frozenset({"group:hr", "user:mallory"}))
    stray = max(documents.values()) + 1000
    vector = tiny_encoder.encode_passages(["stray"])[0]
    index_backend.upsert_chunks([IndexChunk(stray * 10, stray, "share", "en", ["stray"], vector, frozenset({"public"}))])

    poll = source_sync(source=source, encoder=tiny_encoder)
    assert poll.counts["repaired"] == 0  # a poll trusts the outbox; only --full reads the index back

    run = source_sync(source=source, full=True, encoder=tiny_encoder)

    assert (run.status, run.counts["repaired"], run.counts["updated"]) == (SyncRun.Status.SUCCEEDED, 3, 0)
    assert not PendingIndexChange.objects.exists()
    baseline_index = other_index(tmp_path / "baseline.sqlite3")
    baseline = source_create(key="baseline", name="Baseline", connector="filesystem", config={"root": str(share)})
    source_sync(source=baseline, encoder=tiny_encoder, index=baseline_index)
    assert source_state(source, index_backend, tiny_encoder) == source_state(baseline, baseline_index, tiny_encoder)
    assert source_sync(source=source, full=True, encoder=tiny_encoder).counts["repaired"] == 0
