"""The embedded index: BM25 maths, filters inside each leg, change-log catch-up, tombstones (the
contract every backend passes is in tests/index/contract)."""
import math

import numpy as np
import pytest

from kbsearch.index.base import IndexedDocument, IndexMismatch, SearchFilters
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.text.analysis import query_terms
from tests.index.entries import DIM, chunk, meta, public, unit


@pytest.fixture
def index(tmp_path):
    backend = EmbeddedIndexBackend(path=str(tmp_path / "index.sqlite3"))
    backend.ensure_index(metadata=meta(DIM))
    yield backend
    backend.close()


def test_bm25_scores_follow_weaviate_formula(index):
    index.upsert_chunks(
        [
            chunk(1, 1, "alpha beta beta", {"public"}),
            chunk(2, 2, "alpha gamma delta epsilon", {"public"}),
            chunk(3, 3, "zeta", {"public"}),
        ]
    )
    hits = index.bm25_search(terms=["beta"], filters=public(), limit=10)
    assert [hit.chunk_id for hit in hits] == [1]
    n, df, tf, length, average = 3, 1, 2, 3, (3 + 4 + 1) / 3
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    expected = idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * length / average))
    assert hits[0].score == pytest.approx(expected, rel=1e-5)


def test_permission_filter_applies_before_ranking_in_both_legs(index):
    query_vector = unit(99)
    # Fifty hidden chunks that match better than the one visible chunk in both legs.
    hidden = [chunk(i, i, "budget budget budget", {"group:hr"}, vector=query_vector) for i in range(1, 51)]
    visible = chunk(100, 100, "budget report for everyone", {"public"}, vector=unit(5))
    index.upsert_chunks([*hidden, visible])
    assert [h.chunk_id for h in index.bm25_search(terms=["budget"], filters=public(), limit=1)] == [100]
    assert [h.chunk_id for h in index.vector_search(vector=query_vector, filters=public(), limit=1)] == [100]
    assert len(index.bm25_search(terms=["budget"], filters=public("group:hr"), limit=100)) == 51


def test_a_second_process_view_catches_up_with_writes(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    writer, reader = EmbeddedIndexBackend(path=path), EmbeddedIndexBackend(path=path)
    writer.ensure_index(metadata=meta(DIM))
    writer.upsert_chunks([chunk(1, 1, "first", {"public"})])
    assert len(reader.bm25_search(terms=["first"], filters=public(), limit=5)) == 1
    writer.upsert_chunks([chunk(2, 2, "second", {"group:x"})])
    writer.update_access(2, frozenset({"public"}))
    writer.delete_documents([1])
    assert reader.bm25_search(terms=["first"], filters=public(), limit=5) == []
    assert [h.chunk_id for h in reader.bm25_search(terms=["second"], filters=public(), limit=5)] == [2]
    writer.close()
    reader.close()


def test_filters_on_language_and_source(index):
    index.upsert_chunks([
        chunk(1, 1, "wiki page", {"public"}, language="en", source="confluence"),
        chunk(2, 2, "wiki page", {"public"}, language="ja", source="files"),
    ])
    only_ja = SearchFilters(principals=frozenset({"public"}), languages=frozenset({"ja"}))
    assert [h.chunk_id for h in index.bm25_search(terms=["wiki"], filters=only_ja, limit=5)] == [2]
    only_confluence = SearchFilters(principals=frozenset({"public"}), source_keys=frozenset({"confluence"}))
    assert [h.chunk_id for h in index.vector_search(vector=unit(3), filters=only_confluence, limit=5)] == [1]
    unknown = SearchFilters(principals=frozenset({"public"}), source_keys=frozenset({"nope"}))
    assert index.bm25_search(terms=["wiki"], filters=unknown, limit=5) == []


def test_rejects_wrong_dimension_and_non_finite_vectors(index, tmp_path):
    result = index.upsert_chunks([
        chunk(1, 1, "x", {"public"}, vector=np.ones(3, dtype=np.float32)),
        chunk(2, 2, "x", {"public"}, vector=np.full(DIM, np.nan, dtype=np.float32)),
    ])
    assert result.written == 0
    assert [(f.chunk_id, f.document_id, f.retryable) for f in result.failures] == [(1, 1, False), (2, 2, False)]
    assert "shape" in result.failures[0].reason and "non-finite" in result.failures[1].reason
    assert index.chunk_count() == 0
    with pytest.raises(IndexMismatch, match="dimension 8 != 9"):
        index.ensure_index(metadata=meta(DIM + 1))


def test_many_rows_and_tombstone_rebuild_keep_results_exact(index):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(3000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.upsert_chunks([chunk(i + 1, i + 1, f"word{i % 50}", {"public"}, vector=vectors[i]) for i in range(3000)])
    index.delete_documents(list(range(1, 1501)))  # past the tombstone threshold: rebuild
    query = unit(1234)
    hits = index.vector_search(vector=query, filters=public(), limit=10)
    expected = np.argsort(-(vectors[1500:] @ query))[:10] + 1501
    assert [h.chunk_id for h in hits] == [int(i) for i in expected]


@pytest.mark.parametrize(
    "text, query, language",
    [
        ("公司的大数据平台今年上线", "数据", "zh"),  # two-character Chinese word inside a longer run
        ("新しいテストケースを追加しました", "テスト", "ja"),  # katakana word without spaces
        ("회사에서 휴가를 신청하세요", "휴가", "ko"),  # Korean word with a particle attached
    ],
)
def test_cjk_terms_are_found_inside_unspaced_text(index, text, query, language):
    index.upsert_chunks([chunk(1, 1, text, {"public"}, language=language), chunk(2, 2, "unrelated words", {"public"})])
    hits = index.bm25_search(terms=query_terms(query), filters=public(), limit=5)
    assert [hit.chunk_id for hit in hits] == [1]


def test_indexed_documents_reads_chunks_and_access_lists(index):
    index.upsert_chunks([chunk(1, 10, "salary bands", {"group:hr"}), chunk(2, 10, "bonus", {"group:hr"})])
    index.upsert_chunks([chunk(3, 11, "vpn", {"public"})])
    index.update_access(12, frozenset({"user:bob"}))  # an access list with no chunks is reported too
    assert index.indexed_documents([10, 11, 12, 99]) == {
        10: IndexedDocument(frozenset({1, 2}), frozenset({"group:hr"})),
        11: IndexedDocument(frozenset({3}), frozenset({"public"})),
        12: IndexedDocument(frozenset(), frozenset({"user:bob"})),
    }
    index.delete_documents([10])
    assert 10 not in index.indexed_documents([10])


def test_commits_are_as_durable_as_the_database(index):
    """PostgreSQL's default synchronous_commit=on: a committed write survives a power loss."""
    assert index.store.pragma("journal_mode") == "wal"
    assert index.store.pragma("synchronous") == 2  # FULL; NORMAL (1) can drop the last commits
