"""Index contract: writes (upsert, replace, delete, bulk access, per-item failures) and exact
permission filtering, on every backend."""
import numpy as np

from kbsearch.index.base import IndexedDocument, SearchFilters, SearchQuery
from tests.index.entries import DIM, chunk, public, unit


def ids(hits):
    return [hit.chunk_id for hit in hits]


def documents(hits):
    return {hit.document_id for hit in hits}


def visible_documents(index, principals, terms=("policy",)):
    """Documents a searcher with ``principals`` finds through BM25, vector and fused search alike."""
    filters = SearchFilters(principals=frozenset(principals))
    found = [
        documents(index.bm25_search(terms=list(terms), filters=filters, limit=1000)),
        documents(index.vector_search(vector=unit(1), filters=filters, limit=1000)),
        documents(index.search(SearchQuery(filters=filters, limit=1000, terms=list(terms), vector=unit(1)))),
    ]
    assert found[0] == found[1] == found[2], found
    return found[0]


def test_upserted_chunks_are_searchable_and_read_back(backend):
    result = backend.upsert_chunks([
        chunk(1, 1, "vpn setup guide", {"public"}),
        chunk(2, 1, "vpn gateway list", {"public"}),
        chunk(3, 2, "salary bands", {"group:hr"}),
    ])
    assert (result.written, result.failures) == (3, ())
    assert backend.chunk_count() == 3
    assert ids(backend.bm25_search(terms=["gateway"], filters=public(), limit=5)) == [2]
    assert backend.indexed_documents([1, 2, 3]) == {
        1: IndexedDocument(frozenset({1, 2}), frozenset({"public"})),
        2: IndexedDocument(frozenset({3}), frozenset({"group:hr"})),
    }
    assert backend.document_ids() == {1, 2}


def test_an_upsert_with_the_same_chunk_ids_replaces(backend):
    backend.upsert_chunks([chunk(1, 1, "old wording", {"public"})])
    backend.upsert_chunks([chunk(1, 1, "new wording", {"group:eng"}, vector=unit(42))])
    assert backend.chunk_count() == 1
    assert backend.bm25_search(terms=["old"], filters=public("group:eng"), limit=5) == []
    assert ids(backend.bm25_search(terms=["new"], filters=public("group:eng"), limit=5)) == [1]
    assert backend.bm25_search(terms=["new"], filters=public(), limit=5) == []
    [hit] = backend.vector_search(vector=unit(42), filters=public("group:eng"), limit=5)
    assert hit.chunk_id == 1 and np.isclose(hit.score, 1.0, atol=1e-5)


def test_delete_removes_every_chunk_of_many_documents(backend):
    # More documents than a server deletes per call (Weaviate: 10,000 objects by default, less when
    # configured): the backend loops, the caller passes them all at once.
    backend.upsert_chunks([chunk(i, i, "bulk page", {"public"}) for i in range(1, 2_502)])
    backend.upsert_chunks([chunk(5_000, 5_000, "kept page", {"public"}), chunk(5_001, 5_000, "kept two", {"public"})])
    backend.delete_documents(list(range(1, 2_501)))
    assert backend.chunk_count() == 3
    assert backend.document_ids() == {2_501, 5_000}
    assert ids(backend.bm25_search(terms=["bulk"], filters=public(), limit=10)) == [2_501]
    assert backend.indexed_documents([1, 2_500]) == {}


def test_iter_document_ids_pages_through_every_document_once(backend):
    backend.upsert_chunks([chunk(i * 10 + j, i, "page", {"public"}) for i in range(1, 26) for j in range(2)])
    pages = list(backend.iter_document_ids(batch_size=7))
    assert all(len(page) <= 7 for page in pages) and len(pages) == 4
    assert sorted(document_id for page in pages for document_id in page) == list(range(1, 26))


def test_a_refused_chunk_is_an_item_failure_and_the_rest_is_written(backend):
    result = backend.upsert_chunks([
        chunk(1, 1, "fine page", {"public"}),
        chunk(2, 2, "wrong size", {"public"}, vector=np.ones(DIM + 3, dtype=np.float32) / 3),
        chunk(3, 3, "fine too", {"public"}),
        chunk(4, 4, "not a number", {"public"}, vector=np.full(DIM, np.nan, dtype=np.float32)),
    ])
    assert result.written == 2
    # Refused before anything is sent (Weaviate would take a NaN and poison its similarities), and
    # never retried: the same vector fails again.
    assert [(failure.chunk_id, failure.document_id, failure.retryable) for failure in result.failures] == [
        (2, 2, False), (4, 4, False),
    ]
    assert backend.document_ids() == {1, 3}


def test_principals_match_exactly(backend):
    backend.upsert_chunks([
        chunk(1, 1, "policy for hr group", {"group:hr"}),
        chunk(2, 2, "policy for the user hr", {"user:hr"}),
        chunk(3, 3, "policy for hr team", {"group:hr-team"}),
        chunk(4, 4, "policy scoped", {"source/share/group:hr"}),
        chunk(5, 5, "policy public", {"public"}),
    ])
    assert visible_documents(backend, {"group:hr"}) == {1}
    assert visible_documents(backend, {"user:hr"}) == {2}
    assert visible_documents(backend, {"group:hr-team"}) == {3}
    assert visible_documents(backend, {"group:h", "hr", "group", "group:hr-"}) == set()
    assert visible_documents(backend, {"public", "group:hr"}) == {1, 5}
    assert visible_documents(backend, {"source/share/group:hr"}) == {4}


def test_no_principals_see_nothing(backend):
    backend.upsert_chunks([chunk(1, 1, "policy", {"public"}), chunk(2, 2, "policy", set())])
    assert visible_documents(backend, set()) == set()
    assert visible_documents(backend, {"public", "user:root"}) == {1}  # an empty access list admits no one


def test_bulk_access_update_of_a_thousand_documents(backend):
    backend.upsert_chunks([chunk(i, i, "policy page", {"group:old"}) for i in range(1, 1_101)])
    result = backend.update_access_many({i: frozenset({"group:new", f"user:u{i}"}) for i in range(1, 1_001)})
    assert (result.written, result.failures) == (1_000, ())
    assert visible_documents(backend, {"group:new"}) == set(range(1, 1_001))
    assert visible_documents(backend, {"group:old"}) == set(range(1_001, 1_101))
    assert visible_documents(backend, {"user:u7"}) == {7}
    assert backend.indexed_documents([7, 1_050]) == {
        7: IndexedDocument(frozenset({7}), frozenset({"group:new", "user:u7"})),
        1_050: IndexedDocument(frozenset({1_050}), frozenset({"group:old"})),
    }
    backend.update_access(7, frozenset())  # the one-document form, down to nobody
    assert 7 not in visible_documents(backend, {"group:new", "user:u7", "public"})
