"""The filters and gRPC search requests the backend builds (the query namespace is a recorder)."""
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pytest
from weaviate.collections.classes.filters import _FilterAnd, _Operator

from kbsearch.index.base import SearchFilters, SearchQuery
from kbsearch.index.weaviate.filters import search_filter
from tests.index.weaviate.fake_client import matches


def _leaves(where):
    return {leaf.target: leaf for leaf in (where.filters if isinstance(where, _FilterAnd) else [where])}


def test_principals_filter_is_contains_any_on_the_exact_values():
    where = search_filter(SearchFilters(principals=frozenset({"group:hr", "user:ann"})))
    assert (where.target, where.operator, where.value) == ("principals", _Operator.CONTAINS_ANY, ["group:hr", "user:ann"])
    # With field tokenization a stored principal is one token: group:hr does not admit user:hr.
    assert matches(where, {"principals": ["group:hr"]})
    assert not matches(where, {"principals": ["user:hr"]})


def test_no_principals_means_no_search_at_all(backend, server):
    nobody = SearchFilters(principals=frozenset())
    assert search_filter(nobody) is None
    assert backend.bm25_search(terms=["vpn"], filters=nobody, limit=5) == []
    assert backend.vector_search(vector=np.ones(8), filters=nobody, limit=5) == []
    assert server.search_calls == []


def test_source_language_and_date_filters_are_and_ed_with_principals():
    after = datetime(2025, 1, 2, 3, 4, 5)
    where = search_filter(SearchFilters(
        principals=frozenset({"public"}), source_keys=frozenset({"wiki"}), languages=frozenset({"en", "de"}),
        updated_after=after,
    ))
    leaves = _leaves(where)
    assert set(leaves) == {"principals", "source_key", "language", "updated_at"}
    assert leaves["source_key"].value == ["wiki"] and leaves["language"].value == ["de", "en"]
    assert leaves["updated_at"].operator == _Operator.GREATER_THAN
    assert leaves["updated_at"].value.utcoffset().total_seconds() == 0  # naive taken as UTC


def test_empty_source_restriction_matches_nothing():
    assert search_filter(SearchFilters(principals=frozenset({"public"}), source_keys=frozenset())) is None


def test_places_are_one_contains_any_on_exact_values_anded_with_the_rest():
    where = search_filter(SearchFilters(
        principals=frozenset({"public"}), source_keys=frozenset({"wiki"}),
        places=frozenset({"wiki:HR Team", "wiki:ENG", ""}),
    ))
    leaves = _leaves(where)
    assert set(leaves) == {"principals", "source_key", "place"}
    assert (leaves["place"].operator, leaves["place"].value) == (_Operator.CONTAINS_ANY, ["wiki:ENG", "wiki:HR Team"])
    assert matches(where, {"principals": ["public"], "source_key": "wiki", "place": "wiki:HR Team"})
    assert not matches(where, {"principals": ["public"], "source_key": "wiki", "place": "wiki:HR"})
    assert not matches(where, {"principals": ["public"], "source_key": "wiki"})  # a chunk without a place


def test_a_place_restriction_naming_no_place_matches_nothing(backend, server):
    for places in (frozenset(), frozenset({""})):
        nowhere = SearchFilters(principals=frozenset({"public"}), places=places)
        assert search_filter(nowhere) is None
        assert backend.bm25_search(terms=["vpn"], filters=nowhere, limit=5) == []
    assert server.search_calls == []


def test_both_legs_send_the_place_filter(backend, server):
    filters = SearchFilters(principals=frozenset({"public"}), places=frozenset({"sp:drive-1", "sp:drive-2"}))
    backend.bm25_search(terms=["vpn"], filters=filters, limit=5)
    backend.vector_search(vector=np.ones(8, dtype=np.float32), filters=filters, limit=5)
    for _, _, arguments in server.search_calls:
        assert _leaves(arguments["filters"])["place"].value == ["sp:drive-1", "sp:drive-2"]


def _result(chunk_id, document_id, language="en", score=None, distance=None):
    return SimpleNamespace(
        properties={"chunk_id": chunk_id, "document_id": document_id, "language": language},
        metadata=SimpleNamespace(score=score, distance=distance),
    )


def test_bm25_leg_queries_the_alias_with_joined_terms(backend, server):
    server.search_results = [_result(7, 3, score=2.5), _result(8, 3, score=1.0)]
    hits = backend.bm25_search(terms=["数据", "vpn"], filters=SearchFilters(principals=frozenset({"public"})), limit=5)
    kind, collection, arguments = server.search_calls[0]
    assert (kind, collection) == ("bm25", "KbTest_g1")  # through the alias
    assert arguments["query"] == "数据 vpn" and arguments["query_properties"] == ["terms"]
    assert arguments["limit"] == 5 and arguments["return_metadata"].score is True
    assert arguments["filters"].target == "principals"
    assert [(h.chunk_id, h.document_id, h.score) for h in hits] == [(7, 3, 2.5), (8, 3, 1.0)]


def test_vector_leg_uses_the_named_vector_and_reports_cosine_similarity(backend, server):
    server.search_results = [_result(7, 3, distance=0.25)]
    hits = backend.vector_search(vector=np.ones(8, dtype=np.float32), filters=SearchFilters(principals=frozenset({"public"})), limit=3)
    kind, _, arguments = server.search_calls[0]
    assert kind == "near_vector" and arguments["target_vector"] == "chunk"
    assert arguments["near_vector"] == [1.0] * 8 and arguments["return_metadata"].distance is True
    assert hits[0].score == pytest.approx(0.75)


def test_hybrid_is_fused_in_our_code_from_two_legs(backend, server):
    server.search_results = [_result(1, 1, score=3.0, distance=0.1), _result(2, 2, score=1.0, distance=0.5)]
    query = SearchQuery(filters=SearchFilters(principals=frozenset({"public"})), limit=2, terms=["vpn"],
                        vector=np.ones(8, dtype=np.float32), alpha=0.5, lexical_languages=frozenset({"en"}))
    hits = backend.search(query)
    assert sorted(kind for kind, _, _ in server.search_calls) == ["bm25", "near_vector"]
    assert backend.capabilities.native_hybrid is False
    assert [hit.chunk_id for hit in hits] == [1, 2] and hits[0].score == pytest.approx(1.0)
