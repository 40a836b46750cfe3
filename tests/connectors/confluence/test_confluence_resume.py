"""Killed and restarted Confluence syncs end where an uninterrupted one ends; the HTTP cost of an
incremental sync on a populated space."""
import random

import pytest

from connectors.confluence.client import ConfluenceUnavailable
from connectors.models import SyncRun
from kbsearch.documents import faults
from kbsearch.documents.models import Document
from tests.connectors.confluence.conftest import access_lists, sync, wiki_source
from tests.connectors.sync_state import other_index, source_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def populated(wiki):
    wiki.site.add_user("erin", groups=("eng-confidential", "eng"))
    wiki.populate(wiki.eng, 120, seed=3, fanout=4, restrict_every=3, attachment_every=15, n_blogposts=4)
    yield wiki
    faults.disarm_all()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_sync_killed_at_a_random_point_and_restarted_ends_like_an_uninterrupted_one(
    populated, tiny_encoder, index_backend, tmp_path, seed
):
    rng = random.Random(seed)
    source = wiki_source(populated, page_size=20, max_retry_wait_seconds=0)  # retries without sleeping
    # Die after committing a random result page, then on a dropped connection and a 500 storm mid-listing.
    kill_at = rng.randint(1, 5)
    seen = {"n": 0}

    def die_on_nth(name):
        seen["n"] += 1
        if seen["n"] == kill_at:
            raise faults.Killed(name)

    faults.arm("connectors.cursor.segment_applied", die_on_nth)
    with pytest.raises(faults.Killed):
        sync(source, tiny_encoder, index_backend)
    faults.disarm_all()
    populated.faults.drop(r"/content$", nth=rng.randint(1, 3))
    populated.faults.fail(r"/content$", nth=rng.randint(2, 4), times=20)  # more than the client retries
    with pytest.raises(ConfluenceUnavailable, match="HTTP 500 after"):
        sync(source, tiny_encoder, index_backend)
    populated.faults.clear()
    run = sync(source, tiny_encoder, index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert SyncRun.objects.filter(source=source, status=SyncRun.Status.FAILED).count() == 2

    clean_index = other_index(tmp_path / "clean" / "embedded.sqlite3")
    clean = wiki_source(populated, key="clean", page_size=20)
    assert sync(clean, tiny_encoder, clean_index).status == SyncRun.Status.SUCCEEDED
    assert source_state(source, index_backend, tiny_encoder) == source_state(clean, clean_index, tiny_encoder)
    ids = list(Document.objects.filter(source=source).values_list("external_id", flat=True))
    assert len(ids) == len(set(ids)) == 6 + 120 + 120 // 15 + 4  # the small wiki, pages, attachments, blog posts


def test_an_incremental_sync_of_ten_changes_on_two_thousand_pages_costs_a_handful_of_calls(
    wiki, tiny_encoder, index_backend
):
    populated = wiki.populate(wiki.eng, 2000, seed=5, attachment_every=0)
    source = wiki_source(wiki, page_size=100)
    assert sync(source, tiny_encoder, index_backend).status == SyncRun.Status.SUCCEEDED
    site = wiki.site
    site.clock.advance(hours=2)
    for page in populated.pages[100:108]:
        site.edit(page, body=f"<p>{page.title} was edited.</p>")
    site.add_page(wiki.eng, "Brand new", parent=populated.home, body="<p>new</p>")
    site.delete(populated.pages[1500])
    wiki.log.clear()

    run = sync(source, tiny_encoder, index_backend)

    assert (run.counts["changed"], run.counts["added"], run.counts["removed"]) == (8, 1, 1), run.errors
    calls = len(wiki.log)
    # spaces 1, CQL 1, trash 2 per space (ENG, OPS) = 6, plus group lookups for restricted pages.
    assert calls <= 20, [r.path for r in wiki.log.records]
    print(f"incremental sync, 10 changes on 2,000 pages: {calls} HTTP calls")
    assert access_lists(source)[populated.pages[100].id]
