"""Confluence spaces as places: every item is in its space (key and name), a page moved to another
space is moved by the next permission sync with its attachments and without re-embedding, and a
renamed space is relabelled."""
import pytest

from connectors.models import SyncRun
from kbsearch.documents.models import Document
from kbsearch.index.base import SearchFilters
from tests.connectors.confluence.conftest import sync, wiki_source
from tests.counting_encoder import CountingEncoder

pytestmark = pytest.mark.django_db


def places(source) -> dict[str, tuple[str, str]]:
    return {d.external_id: (d.place_key, d.place_label) for d in Document.objects.filter(source=source)}


def indexed_places(index, source) -> dict[str, frozenset[str]]:
    documents = dict(Document.objects.filter(source=source).values_list("pk", "external_id"))
    return {documents[pk]: entry.places for pk, entry in index.indexed_documents(list(documents)).items()}


def test_every_item_is_in_its_space(wiki, tiny_encoder, index_backend):
    source = wiki_source(wiki)
    assert sync(source, tiny_encoder, index_backend).status == SyncRun.Status.SUCCEEDED
    eng, ops = ("ENG", "Engineering"), ("OPS", "Operations")
    assert places(source) == {
        wiki.home.id: eng, wiki.secret.id: eng, wiki.inner.id: eng, wiki.open.id: eng, wiki.notes.id: eng,
        wiki.news.id: ops,
    }
    assert set(indexed_places(index_backend, source).values()) == {frozenset({"wiki:ENG"}), frozenset({"wiki:OPS"})}
    assert indexed_places(index_backend, source)[wiki.notes.id] == frozenset({"wiki:ENG"})


def test_a_page_moved_to_another_space_is_moved_by_the_permission_sync_without_re_embedding(
    wiki, tiny_encoder, index_backend
):
    source = wiki_source(wiki)
    counting = CountingEncoder(tiny_encoder)
    sync(source, counting, index_backend)
    wiki.site.move(wiki.open, None, space=wiki.ops)  # with its attachment; no new version
    passages = counting.passages

    content = sync(source, counting, index_backend)
    assert content.counts["place_updated"] == 0  # a move does not change lastmodified
    run = sync(source, counting, index_backend, permissions=True)

    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert counting.passages == passages  # nothing re-embedded
    assert run.counts["place_updated"] == 2
    assert places(source)[wiki.open.id] == places(source)[wiki.notes.id] == ("OPS", "Operations")
    assert indexed_places(index_backend, source)[wiki.open.id] == frozenset({"wiki:OPS"})
    bob = SearchFilters(principals=frozenset({"user:bob@example.com"}), places=frozenset({"wiki:OPS"}))
    found = {hit.document_id for hit in index_backend.bm25_search(terms=["deploy"], filters=bob, limit=10)}
    assert found == set(Document.objects.filter(external_id__in=[wiki.open.id, wiki.notes.id]).values_list("pk", flat=True))
    still_eng = SearchFilters(principals=frozenset({"group:eng"}), places=frozenset({"wiki:ENG"}))
    assert not index_backend.bm25_search(terms=["deploy"], filters=still_eng, limit=10)


def test_a_renamed_space_is_relabelled_and_the_index_left_alone(wiki, tiny_encoder, index_backend, monkeypatch):
    source = wiki_source(wiki)
    sync(source, tiny_encoder, index_backend)
    wiki.eng.name = "Engineering wiki"
    monkeypatch.setattr(type(index_backend), "update_places_many",
                        lambda self, places: pytest.fail(f"the index was asked to move {places}"))
    run = sync(source, tiny_encoder, index_backend, permissions=True)
    assert run.counts["place_updated"] == 5, run.errors
    assert {label for key, label in places(source).values() if key == "ENG"} == {"Engineering wiki"}
