"""The Confluence connector against the fake server: full and incremental syncs, deletions, moves,
permission syncs, throttling, authentication failures, malformed items and Data Center."""
import pytest

from connectors.models import SyncRun
from kbsearch.documents.models import Chunk, Document
from tests.connectors.confluence.conftest import (
    ENG_READERS,
    access_lists,
    expected_cloud_access,
    sync,
    wiki_source,
)
from tests.counting_encoder import CountingEncoder

pytestmark = pytest.mark.django_db


def test_first_full_sync_brings_every_item_with_its_exact_access_list(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    run = sync(source, tiny_encoder, index_backend)
    assert (run.mode, run.status) == ("cursor full", SyncRun.Status.SUCCEEDED), run.errors
    assert access_lists(source) == expected_cloud_access(wiki)
    assert run.counts["added"] == 6

    inner = Document.objects.get(source=source, external_id=wiki.inner.id)
    assert inner.title == "Inner"
    assert inner.body.startswith("Engineering > Home > Secret > Inner")
    assert inner.url.endswith(f"/spaces/ENG/pages/{wiki.inner.id}/Inner")
    open_page = Document.objects.get(source=source, external_id=wiki.open.id)
    assert "./deploy.sh --prod" in open_page.body and "bash" not in open_page.body.split("./deploy.sh")[0]
    assert ["Deploy"] in [c.heading_path for c in Chunk.objects.filter(document=open_page)]
    notes = Document.objects.get(source=source, external_id=wiki.notes.id)
    assert notes.body.startswith("Engineering > Home > Open > notes.txt") and "rollback" in notes.body
    source.refresh_from_db()
    assert source.cursor["connector"]["phase"] == "incremental"


def test_incremental_sync_picks_up_an_edit_a_new_page_a_move_and_a_deletion(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    sync(source, tiny_encoder, index_backend)
    site = wiki.site
    site.clock.advance(hours=1)
    site.edit(wiki.open, body="<h2>Deploy</h2><p>Deploys now go through the pipeline.</p>")
    fresh = site.add_page(wiki.eng, "Fresh", parent=wiki.home, body="<p>A brand new page.</p>")
    site.move(wiki.open, wiki.secret)  # no new version: only the permission sync sees it
    site.delete(wiki.news)
    wiki.log.clear()
    counting = CountingEncoder(tiny_encoder)

    run = sync(source, counting, index_backend)

    assert (run.mode, run.status) == ("cursor", SyncRun.Status.SUCCEEDED), run.errors
    assert (run.counts["added"], run.counts["changed"], run.counts["removed"]) == (1, 1, 1)
    assert "pipeline" in Document.objects.get(source=source, external_id=wiki.open.id).body
    assert not Document.objects.filter(source=source, external_id=wiki.news.id).exists()
    # The edit was read with its new ancestors, so the moved-and-edited page already has Secret's access.
    expected = expected_cloud_access(wiki)
    del expected[wiki.news.id]
    expected[fresh.id] = frozenset(ENG_READERS)
    expected[wiki.open.id] = expected[wiki.notes.id] = frozenset({"group:eng", "user:alice@example.com"})
    assert access_lists(source)[wiki.open.id] == expected[wiki.open.id]
    assert wiki.log.count(r"/content/search") == 1

    # A pure move (no new version) is applied by the permission sync, without embedding anything.
    site.move(fresh, wiki.secret)
    run = sync(source, counting, index_backend)
    assert run.counts["access_updated"] == 0  # the content sync cannot see a move
    passages = counting.passages
    run = sync(source, counting, index_backend, permissions=True)
    assert run.status == SyncRun.Status.SUCCEEDED and counting.passages == passages
    expected[fresh.id] = frozenset({"group:eng", "user:alice@example.com"})
    assert access_lists(source) == expected


def test_a_restriction_added_on_an_ancestor_hides_the_child_after_a_permission_sync(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    sync(source, tiny_encoder, index_backend)
    grandchild = wiki.site.add_page(wiki.eng, "Grandchild", parent=wiki.open, body="<p>Deep below Open.</p>")
    wiki.site.clock.advance(minutes=30)
    sync(source, tiny_encoder, index_backend)
    assert access_lists(source)[grandchild.id] == frozenset(ENG_READERS)

    wiki.site.restrict_read(wiki.open, users=(wiki.bob,))  # bob is in staff: admitted by the space
    counting = CountingEncoder(tiny_encoder)
    run = sync(source, counting, index_backend, permissions=True)

    assert run.status == SyncRun.Status.SUCCEEDED and counting.passages == 0
    lists = access_lists(source)
    for hidden in (wiki.open.id, grandchild.id, wiki.notes.id):
        assert lists[hidden] == frozenset({"user:bob@example.com"})
    assert lists[wiki.home.id] == frozenset(ENG_READERS)
    assert run.counts["access_updated"] == 3


def test_a_page_restricted_to_a_group_outside_the_space_readers_admits_only_members_with_space_access(
    wiki, tiny_encoder, index_backend
):
    source = wiki_source(wiki)
    sync(source, tiny_encoder, index_backend)
    # dan is in hr but cannot read ENG: Inner must not reach him through group:hr.
    assert "group:hr" not in access_lists(source)[wiki.inner.id]
    wiki.site.add_to_group(wiki.dan, "staff")  # space access, but Secret (above Inner) admits only alice and eng
    sync(source, tiny_encoder, index_backend, permissions=True)
    assert access_lists(source)[wiki.inner.id] == frozenset({"user:carol@example.com"})
    wiki.site.add_to_group(wiki.dan, "eng")
    sync(source, tiny_encoder, index_backend, permissions=True)
    assert access_lists(source)[wiki.inner.id] == frozenset({"user:carol@example.com", "user:dan@example.com"})


def test_a_429_storm_is_waited_out(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    wiki.faults.throttle(4, retry_after=0.05)
    wiki.faults.throttle(2, retry_after=0.02, status=503, pattern=r"/content$")
    run = sync(source, tiny_encoder, index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert wiki.log.count(status=429) == 4 and wiki.log.count(status=503) == 2
    assert access_lists(source) == expected_cloud_access(wiki)


def test_unauthorised_fails_the_run_and_prunes_nothing(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    sync(source, tiny_encoder, index_backend)
    before = access_lists(source)
    wiki.faults.fail(r"/content", status=401, times=None)
    with pytest.raises(Exception, match="401"):
        sync(source, tiny_encoder, index_backend, full=True)
    assert SyncRun.objects.filter(source=source).first().status == SyncRun.Status.FAILED
    assert access_lists(source) == before

    wiki.faults.clear()
    wiki.service_user.can_use = False  # authenticated, but no "Can use": 403
    with pytest.raises(Exception, match="403"):
        sync(source, tiny_encoder, index_backend, full=True)
    assert access_lists(source) == before


def test_a_malformed_item_is_skipped_reported_and_read_again_next_run(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    wiki.malformed_item(r"/content$", index=1, kind="missing_title")  # the 2nd page of the first listing
    run = sync(source, tiny_encoder, index_backend)
    assert run.status == SyncRun.Status.PARTIAL
    assert [e["external_id"] for e in run.errors] == [wiki.secret.id]
    assert "no title" in run.errors[0]["reason"]
    assert set(access_lists(source)) == set(expected_cloud_access(wiki)) - {wiki.secret.id}

    run = sync(source, tiny_encoder, index_backend)  # the failed item is reloaded by id
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert access_lists(source) == expected_cloud_access(wiki)


def test_an_item_without_an_id_is_reported_and_never_fatal(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    wiki.malformed_item(r"/content$", index=0, kind="not_object")
    run = sync(source, tiny_encoder, index_backend)
    assert run.status == SyncRun.Status.PARTIAL
    assert run.errors[0]["external_id"] == "unidentified item"
    assert wiki.home.id not in access_lists(source)
    assert wiki.open.id in access_lists(source)


def test_an_attachment_deleted_between_listing_and_download_is_reported_deleted(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    wiki.delete_after_listing(wiki.notes, r"/content$")
    run = sync(source, tiny_encoder, index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert wiki.notes.id not in access_lists(source)


def test_an_unreadable_attachment_is_a_failure_that_is_not_retried(wiki, tiny_encoder, index_backend):
    wiki.site.add_attachment(wiki.home, "blob.bin", b"\x00\x01\x02binary", media_type="application/octet-stream")
    source = wiki_source(wiki)
    run = sync(source, tiny_encoder, index_backend)
    assert run.status == SyncRun.Status.PARTIAL
    assert run.counts["retryable_errors"] == 0 and "no text" in run.errors[0]["reason"]
    source.refresh_from_db()
    assert source.cursor["retry"] == []


@pytest.mark.parametrize("confluence_server", ["dc"], indirect=True)
def test_data_center_with_a_personal_access_token(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    assert set(wiki.credentials()) == {"personal_access_token"}
    run = sync(source, tiny_encoder, index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert access_lists(source) == {
        wiki.home.id: frozenset(ENG_READERS),
        wiki.secret.id: frozenset({"group:eng", "user:alice"}),
        wiki.inner.id: frozenset({"user:carol"}),
        wiki.open.id: frozenset(ENG_READERS),
        wiki.notes.id: frozenset(ENG_READERS),
        wiki.news.id: frozenset({"user:bob"}),
    }
    wiki.site.clock.advance(hours=1)
    wiki.site.edit(wiki.home, body="<p>Home, edited on Data Center.</p>")
    wiki.site.delete(wiki.inner)
    run = sync(source, tiny_encoder, index_backend)
    assert (run.counts["changed"], run.counts["removed"]) == (1, 1), run.errors
