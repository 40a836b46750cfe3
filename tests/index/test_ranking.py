"""Document ranking: one hit per document, stable pagination, query validation, fail-closed."""
import numpy as np
import pytest

from kbsearch.index.base import IndexChunk, SearchFilters
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.index.ranking import rank_documents
from kbsearch.text.analysis import index_terms
from kbsearch.text.query import MAX_QUERY_CHARS, InvalidQuery, clean_query

DIM = 8
PUBLIC = SearchFilters(principals=frozenset({"public"}))


@pytest.fixture
def index(tmp_path):
    backend = EmbeddedIndexBackend(path=str(tmp_path / "index.sqlite3"))
    backend.ensure_index(dimension=DIM)
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
