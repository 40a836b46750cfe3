"""Permission syncs: access lists only, compared with what is stored, applied without reading content."""
import pytest
from django.core.management import CommandError, call_command

from connectors.models import SyncRun
from connectors.services import source_create, source_sync
from kbsearch.documents.models import Document
from kbsearch.index.base import SearchFilters
from kbsearch.text.analysis import query_terms
from tests.connectors.cursor_connector import SITES, Item, Site
from tests.counting_encoder import CountingEncoder

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    SITES.clear()
    site = SITES.setdefault("wiki", Site())
    site.put("roadmap", Item("The platform roadmap for the next quarter.", ("group:engineering",)))
    site.put("handbook", Item("The employee handbook for the next quarter.", ("public",)))
    yield site
    SITES.clear()


def _access(source) -> dict[str, set[str]]:
    return {
        document.external_id: set(document.access.values_list("principal", flat=True))
        for document in Document.objects.filter(source=source)
    }


def test_a_permission_sync_replaces_only_changed_access_lists_and_reads_no_content(site, tiny_encoder, index_backend):
    source = source_create(key="wiki", name="Wiki", connector="test-cursor", config={"name": "wiki"})
    source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    # An ancestor's restriction now covers the roadmap: only its access list changes at the source.
    site.items["roadmap"].principals = ("group:architects",)
    site.reads.clear()
    counting = CountingEncoder(tiny_encoder)

    run = source_sync(source=source, permissions=True, encoder=counting, index=index_backend)

    assert (run.mode, run.status) == ("permissions", SyncRun.Status.SUCCEEDED)
    assert site.reads == [] and counting.passages == 0
    assert (run.counts["access_updated"], run.counts["unchanged"]) == (1, 1)
    assert _access(source) == {"roadmap": {"group:architects"}, "handbook": {"public"}}
    def hits(principals):
        filters = SearchFilters(principals=frozenset(principals))
        return index_backend.bm25_search(terms=query_terms("roadmap"), filters=filters, limit=10)

    assert hits({"group:engineering", "public"}) == []  # the index follows at once
    assert len(hits({"group:architects"})) == 1


def test_a_connector_without_the_capability_refuses_a_permission_sync(tmp_path, tiny_encoder, index_backend):
    (tmp_path / "a.md").write_text("# A\n\ntext", encoding="utf-8")
    (tmp_path / "_access.yaml").write_text("principals: [public]\n", encoding="utf-8")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tmp_path)})
    with pytest.raises(Exception, match="cannot sync permissions"):
        source_sync(source=source, permissions=True, encoder=tiny_encoder, index=index_backend)
    with pytest.raises(CommandError, match="cannot sync permissions"):
        call_command("sync_source", "share", "--permissions")


def test_unknown_ids_in_a_permission_listing_are_skipped(site, tiny_encoder, index_backend):
    source = source_create(key="wiki", name="Wiki", connector="test-cursor", config={"name": "wiki"})
    source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    site.items["brand-new"] = Item("Not synced yet.", ("public",))  # no log entry: content sync has not seen it
    run = source_sync(source=source, permissions=True, encoder=tiny_encoder, index=index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert set(_access(source)) == {"roadmap", "handbook"}


def test_a_cursor_source_is_scheduled_for_content_access_lists_and_a_weekly_full_pass(site):
    from connectors.schedules import source_schedule

    source = source_create(key="wiki", name="Wiki", connector="test-cursor", config={"name": "wiki"})
    schedule = source_schedule(source)
    assert (schedule["content"].interval.every, schedule["permissions"].interval.every) == (15 * 60, 5 * 60)
    assert schedule["full"].interval.every == 7 * 24 * 3600 and schedule["full"].kwargs == '{"full": true}'
    assert all(task.queue == "sync" for task in schedule.values())


def test_an_access_list_kbsearch_cannot_store_hides_the_document_rather_than_keeping_the_old_one(
    site, tiny_encoder, index_backend
):
    source = source_create(key="wiki", name="Wiki", connector="test-cursor", config={"name": "wiki"})
    source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    # Narrowed at the source to a list that names another source's identity: refused, so the old,
    # wider list (public) must not stay.
    site.items["handbook"].principals = ("source/other/user:alice",)

    run = source_sync(source=source, permissions=True, encoder=tiny_encoder, index=index_backend)

    assert run.status == SyncRun.Status.PARTIAL
    assert [error["external_id"] for error in run.errors] == ["handbook"]
    assert _access(source) == {"roadmap": {"group:engineering"}, "handbook": set()}
    filters = SearchFilters(principals=frozenset({"public"}))
    assert index_backend.bm25_search(terms=query_terms("handbook"), filters=filters, limit=10) == []


def test_a_new_version_rejected_by_ingest_takes_its_new_access_list_or_none_when_that_was_refused(
    site, tiny_encoder, index_backend
):
    source = source_create(key="wiki", name="Wiki", connector="test-cursor", config={"name": "wiki"})
    source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    # Emptied and narrowed together: the content is refused (no text), the narrowing still applies.
    site.put("handbook", Item("   ", ("group:hr",)))
    # Changed content with an access list kbsearch refuses: the stored version is hidden.
    site.put("roadmap", Item("The roadmap, rewritten.", ("source/other/group:everyone",)))

    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)

    assert run.status == SyncRun.Status.PARTIAL
    assert sorted(error["external_id"] for error in run.errors) == ["handbook", "roadmap"]
    assert _access(source) == {"handbook": {"group:hr"}, "roadmap": set()}
    everyone = SearchFilters(principals=frozenset({"public", "group:engineering"}))
    assert index_backend.bm25_search(terms=query_terms("quarter"), filters=everyone, limit=10) == []
