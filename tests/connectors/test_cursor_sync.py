"""The connector seam's cursor path: checkpoints, resumption, deletions and access changes from the source.

Every test drives ``tests.connectors.cursor_connector`` (pages of two items, a checkpoint after each)
and compares what the database and the index hold with what the site holds, by external id.
"""
import pytest

from connectors.models import SyncRun
from connectors.services import source_create, source_sync, sync_run_cancel
from kbsearch.documents import faults
from kbsearch.documents.models import Document
from tests.connectors.cursor_connector import SITES, Item, Site
from tests.connectors.sync_state import other_index, source_state
from tests.counting_encoder import CountingEncoder

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    SITES.clear()
    site = SITES.setdefault("wiki", Site())
    for number in range(1, 6):
        site.put(f"page-{number}", Item(f"Page {number} explains topic {number} in detail."))
    site.set_access("page-5", ("group:hr",))
    yield site
    SITES.clear()
    faults.disarm_all()


def _source(key="wiki"):
    return source_create(key=key, name="Wiki", connector="test-cursor", config={"name": "wiki"})


def _stored(source) -> dict[str, tuple[str, frozenset[str]]]:
    return {
        document.external_id: (document.body, frozenset(document.access.values_list("principal", flat=True)))
        for document in Document.objects.filter(source=source).prefetch_related("access")
    }


def _expected(site: Site) -> dict[str, tuple[str, frozenset[str]]]:
    return {
        external_id: (item.text, frozenset(item.principals))
        for external_id, item in site.items.items()
        if not item.failure
    }


def test_first_run_is_a_full_pass_that_saves_the_cursor_at_each_checkpoint(site, tiny_encoder, index_backend):
    source = _source()
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert (run.mode, run.status) == ("cursor full", SyncRun.Status.SUCCEEDED)
    assert _stored(source) == _expected(site)
    assert run.counts["added"] == 5 and run.counts["changed"] == 0 and run.counts["removed"] == 0
    source.refresh_from_db()
    assert source.cursor == {"connector": {"seq": site.seq}, "full_pass_started_at": None, "retry": []}
    assert run.checkpoint == {"seq": site.seq}


def test_incremental_run_reads_only_what_changed_and_applies_access_changes_without_embedding(
    site, tiny_encoder, index_backend
):
    source = _source()
    source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    site.reads.clear()
    site.put("page-2", Item("Page 2 was rewritten about quarterly budgets."))
    site.put("page-6", Item("Page 6 is new and covers parking."))
    site.delete("page-3")
    site.set_access("page-1", ("group:engineering",))  # a restriction added: content unchanged

    counting = CountingEncoder(tiny_encoder)
    run = source_sync(source=source, encoder=counting, index=index_backend)

    assert (run.mode, run.status) == ("cursor", SyncRun.Status.SUCCEEDED)
    assert sorted(site.reads) == ["page-2", "page-6"]  # page-1's content was never read
    assert counting.passages == 2  # one chunk each for page-2 and page-6; nothing for page-1
    assert (run.counts["added"], run.counts["changed"], run.counts["removed"], run.counts["access_updated"]) == (
        1, 1, 1, 1,
    )
    assert _stored(source) == _expected(site)
    state = source_state(source, index_backend, tiny_encoder)  # asserts the index matches the database
    assert state["index"]["page-1"] == (True, frozenset({"group:engineering"}))
    assert state["index_documents"]


def test_a_run_killed_between_pages_resumes_and_ends_where_an_uninterrupted_run_ends(
    site, tiny_encoder, index_backend, tmp_path
):
    source = _source()
    faults.arm("connectors.cursor.segment_applied")  # dies right after committing the first page
    with pytest.raises(faults.Killed):
        source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    faults.disarm_all()
    source.refresh_from_db()
    assert source.cursor["connector"] == {}  # the first page was applied but its checkpoint not saved
    assert Document.objects.filter(source=source).count() == 2

    site.reads.clear()
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert SyncRun.objects.get(source=source, mode="cursor full", status=SyncRun.Status.FAILED).errors

    clean_index = other_index(tmp_path / "clean" / "embedded.sqlite3")
    clean = _source("clean")
    source_sync(source=clean, encoder=tiny_encoder, index=clean_index)
    assert source_state(source, index_backend, tiny_encoder) == source_state(clean, clean_index, tiny_encoder)


def test_an_interrupted_full_pass_still_deletes_what_it_did_not_mention(site, tiny_encoder, index_backend):
    source = _source()
    source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    site.delete("page-4")
    site.log.clear()  # the site lost its change log: only a full pass can find the deletion
    site.on_page = lambda number: (_ for _ in ()).throw(ConnectionError("dropped")) if number == 1 else None
    with pytest.raises(ConnectionError):
        source_sync(source=source, full=True, encoder=tiny_encoder, index=index_backend)
    source.refresh_from_db()
    assert source.cursor["full_pass_started_at"] and source.cursor["connector"]["after"] == "page-2"
    assert "page-4" in _stored(source)  # nothing pruned by a pass that did not finish

    site.on_page = None
    site.reads.clear()
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert site.reads == ["page-3", "page-5"]  # resumed after page-2, not from the start
    assert run.counts["removed"] == 1
    assert _stored(source) == _expected(site)


def test_a_stream_without_its_final_checkpoint_fails_the_run_and_prunes_nothing(site, tiny_encoder, index_backend):
    source = _source()
    source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    before = source.cursor
    site.stream_ends_early = True
    site.delete("page-1")
    with pytest.raises(Exception, match="without a final checkpoint"):
        source_sync(source=source, full=True, encoder=tiny_encoder, index=index_backend)
    source.refresh_from_db()
    assert source.cursor["connector"] != before  # resumes mid-pass...
    assert source.cursor["full_pass_started_at"]  # ...of a full pass that has not finished
    assert "page-1" in _stored(source)  # an unfinished pass prunes nothing
    assert SyncRun.objects.filter(source=source).first().status == SyncRun.Status.FAILED


def test_an_item_that_failed_retryably_is_read_again_next_run_although_the_cursor_moved_on(
    site, tiny_encoder, index_backend
):
    site.items["page-2"].failure = "HTTP 500 reading the body"
    source = _source()
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert run.status == SyncRun.Status.PARTIAL and run.counts["failed"] == 1
    source.refresh_from_db()
    assert source.cursor["retry"] == ["page-2"]

    site.items["page-2"].failure = ""  # the server recovered; the page itself did not change
    site.reads.clear()
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert site.reads == ["page-2"] and run.status == SyncRun.Status.SUCCEEDED
    assert _stored(source) == _expected(site)
    source.refresh_from_db()
    assert source.cursor["retry"] == []


def test_a_cancelled_run_stops_at_its_next_checkpoint_and_the_next_run_resumes(site, tiny_encoder, index_backend):
    source = _source()

    def cancel_on_second_page(number):
        if number == 1:
            sync_run_cancel(run_id=SyncRun.objects.get(source=source, status=SyncRun.Status.RUNNING).pk)

    site.on_page = cancel_on_second_page
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert run.status == SyncRun.Status.CANCELLED
    assert run.checkpoint == {"phase": "full", "after": "page-4", "seq": site.seq}
    assert sorted(_stored(source)) == ["page-1", "page-2", "page-3", "page-4"]
    assert sync_run_cancel(run_id=run.pk) is False  # not running any more

    site.on_page = None
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED and _stored(source) == _expected(site)
