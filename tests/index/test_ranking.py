"""Document ranking: one hit per document, stable pagination, query validation, fail-closed."""
import numpy as np
import pytest

from kbsearch.index.base import IndexChunk, SearchFilters
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.index.ranking import rank_documents
from kbsearch.text.analysis import index_terms
from kbsearch.text.query import MAX_QUERY_CHARS, InvalidQuery, clean_query
from tests.index.entries import meta

DIM = 8
PUBLIC = SearchFilters(principals=frozenset({"public"}))


@pytest.fixture
def index(tmp_path):
    backend = EmbeddedIndexBackend(path=str(tmp_path / "index.sqlite3"))
    backend.ensure_index(metadata=meta(DIM))
    rng = np.random.default_rng(3)
    chunks = []
    for document_id in range(1, 41):
        for ordinal in range(5):  # five chunks a document, all mentioning the query term
            vector = rng.normal(size=DIM).astype(np.float32)
            chunks.append(IndexChunk(
                chunk_id=document_id * 10 + ordinal, document_id=document_id, source_key="s", language="en",
                terms=index_terms(f"handbook section {ordinal} " + "policy " * (document_id % 7 + 1)),
                vector=vector / np.linalg.norm(vector), principals=frozenset({"public"}),
            ))
    backend.upsert_chunks(chunks)
    yield backend
    backend.close()


@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
def test_one_hit_per_document_and_pages_partition_the_ranking(index, mode):
    query_vector = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
    full = rank_documents(index=index, query="policy handbook", query_vector=query_vector, filters=PUBLIC,
                          mode=mode, limit=40)
    ids = [hit.document_id for hit in full.hits]
    assert len(ids) == len(set(ids)) == 40
    paged = []
    for offset in range(0, 40, 7):
        page = rank_documents(index=index, query="policy handbook", query_vector=query_vector, filters=PUBLIC,
                              mode=mode, limit=7, offset=offset)
        paged.extend(hit.document_id for hit in page.hits)
    assert paged == ids
    beyond = rank_documents(index=index, query="policy handbook", query_vector=query_vector, filters=PUBLIC,
                            mode=mode, limit=10, offset=100)
    assert beyond.hits == [] and beyond.exhausted


def test_no_principals_returns_nothing_without_searching(index):
    page = rank_documents(index=index, query="policy", query_vector=np.ones(DIM, dtype=np.float32),
                          filters=SearchFilters(principals=frozenset()), mode="hybrid")
    assert page.hits == [] and page.pool == []


@pytest.mark.parametrize("raw, message", [("", "empty"), ("  \t\n ", "empty"), ("\x00\x07", "empty"),
                                          ("x" * (MAX_QUERY_CHARS + 1), "limit")])
def test_bad_queries_are_rejected_with_a_reason(raw, message):
    with pytest.raises(InvalidQuery, match=message):
        clean_query(raw)


def test_control_characters_and_whitespace_are_cleaned():
    assert clean_query(" VPN\x00 設定\r\n\tguide\u2028 ") == "VPN 設定 guide"


def test_bad_mode_and_alpha_are_rejected(index):
    with pytest.raises(InvalidQuery):
        rank_documents(index=index, query="x", query_vector=None, filters=PUBLIC, mode="fuzzy")
    with pytest.raises(InvalidQuery):
        rank_documents(index=index, query="x", query_vector=np.ones(DIM), filters=PUBLIC, alpha=2.0)


@pytest.fixture
def made_index(tmp_path):
    """Four documents whose vectors and terms are chosen so every mode's order is known.

    Against the query vector (1, 0, 0): cosines 1, 0.8, 0.6 and 0. For the query "alpha": term
    frequencies 1, 3, 2 and 0 in documents of one length (4 terms), so BM25 orders them by frequency.
    """
    backend = EmbeddedIndexBackend(path=str(tmp_path / "made.sqlite3"))
    backend.ensure_index(metadata=meta(3))
    made = {
        1: ((1.0, 0.0, 0.0), "alpha filler filler filler"),
        2: ((0.8, 0.6, 0.0), "alpha alpha alpha filler"),
        3: ((0.6, 0.8, 0.0), "alpha alpha filler filler"),
        4: ((0.0, 0.0, 1.0), "beta filler filler filler"),
    }
    backend.upsert_chunks([
        IndexChunk(chunk_id=document_id * 10, document_id=document_id, source_key="s", language="en",
                   terms=text.split(), vector=np.array(vector, dtype=np.float32), principals=frozenset({"public"}))
        for document_id, (vector, text) in made.items()
    ])
    yield backend
    backend.close()


def _ranked(index, mode, alpha=0.5):
    page = rank_documents(index=index, query="alpha", query_vector=np.array([1.0, 0.0, 0.0], dtype=np.float32),
                          filters=PUBLIC, mode=mode, alpha=alpha, limit=10)
    return [(hit.document_id, hit.score) for hit in page.hits]


def test_vector_order_is_the_cosine_order(made_index):
    ranked = _ranked(made_index, "vector")
    assert [document_id for document_id, _ in ranked] == [1, 2, 3, 4]
    assert [score for _, score in ranked] == pytest.approx([1.0, 0.8, 0.6, 0.0], abs=1e-6)


def test_bm25_order_is_the_term_frequency_order_and_non_matches_are_absent(made_index):
    assert [document_id for document_id, _ in _ranked(made_index, "bm25")] == [2, 3, 1]


def test_hybrid_scores_are_the_weighted_normalised_legs(made_index):
    # BM25 at one document length grows as tf * (k1 + 1) / (tf + k1) with k1 = 1.2: 1, 11/8 and 11/7
    # times the tf=1 score for tf 1, 2, 3; min-max over the matches gives 0, 21/32 and 1. The vector
    # leg, min-max over cosines 1, 0.8, 0.6 and 0, keeps the cosines. So at alpha 0.5: doc 2 =
    # 0.4 + 0.5, doc 3 = 0.3 + 21/64, doc 1 = 0.5 + 0, doc 4 = 0.
    ranked = _ranked(made_index, "hybrid", alpha=0.5)
    assert [document_id for document_id, _ in ranked] == [2, 3, 1, 4]
    assert [score for _, score in ranked] == pytest.approx([0.9, 0.3 + 21 / 64, 0.5, 0.0], abs=1e-6)
    assert [document_id for document_id, _ in _ranked(made_index, "hybrid", alpha=1.0)] == [1, 2, 3, 4]
    assert [document_id for document_id, _ in _ranked(made_index, "hybrid", alpha=0.0)] == [2, 3, 1]
