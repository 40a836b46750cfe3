"""Index contract: ranking semantics from handmade vectors and terms, so every order is known in
advance (relative-score fusion, the lexical-language gate, CJK bigram terms)."""
import numpy as np
import pytest

from kbsearch.index.base import IndexChunk, SearchQuery
from kbsearch.text.analysis import index_terms, query_terms
from tests.index.entries import chunk, public

QUERY_VECTOR = np.array([1.0, 0.0, 0.0], dtype=np.float32)


def made(chunk_id, vector, terms, language="en"):
    return IndexChunk(
        chunk_id=chunk_id, document_id=chunk_id, source_key="s", language=language, terms=terms.split(),
        vector=np.array(vector, dtype=np.float32), principals=frozenset({"public"}),
    )


@pytest.fixture
def three_d(storage):
    from tests.index.entries import meta

    backend = storage.open()
    backend.ensure_index(metadata=meta(3))
    return backend


@pytest.fixture
def four_documents(three_d):
    """Cosines to the query vector 1, 0.8, 0.6 and 0; "alpha" 1, 3, 2 and 0 times in equally long
    chunks, so BM25 orders 2, 3, 1 with scores proportional to tf * 2.2 / (tf + 1.2)."""
    three_d.upsert_chunks([
        made(1, (1.0, 0.0, 0.0), "alpha filler filler filler"),
        made(2, (0.8, 0.6, 0.0), "alpha alpha alpha filler"),
        made(3, (0.6, 0.8, 0.0), "alpha alpha filler filler"),
        made(4, (0.0, 0.0, 1.0), "beta filler filler filler"),
    ]).raise_for_failures()
    return three_d


def ranked(index, alpha, terms=("alpha",), lexical_languages=None):
    hits = index.search(SearchQuery(
        filters=public(), limit=10, terms=list(terms), vector=QUERY_VECTOR, alpha=alpha,
        lexical_languages=lexical_languages,
    ))
    return [hit.chunk_id for hit in hits], [hit.score for hit in hits]


def test_alpha_one_is_the_cosine_order(four_documents):
    order, scores = ranked(four_documents, 1.0)
    assert order == [1, 2, 3, 4]
    assert scores == pytest.approx([1.0, 0.8, 0.6, 0.0], abs=1e-5)


def test_alpha_zero_is_the_bm25_order(four_documents):
    order, scores = ranked(four_documents, 0.0)
    assert order == [2, 3, 1]
    bm25 = [tf * 2.2 / (tf + 1.2) for tf in (3, 2, 1)]
    assert [score / scores[0] for score in scores] == pytest.approx([value / bm25[0] for value in bm25], rel=1e-4)


def test_alpha_half_fuses_min_max_normalised_legs(four_documents):
    order, scores = ranked(four_documents, 0.5)
    # BM25 normalised: chunk 2 -> 1, chunk 1 -> 0, chunk 3 -> (1.375 - 1) / (1.5714 - 1) = 0.65625.
    assert order == [2, 3, 1, 4]
    assert scores == pytest.approx([0.5 * 0.8 + 0.5, 0.5 * 0.6 + 0.5 * 0.65625, 0.5, 0.0], abs=1e-4)


def test_the_lexical_gate_scales_bm25_by_the_query_languages(three_d):
    three_d.upsert_chunks([
        made(1, (0.8, 0.6, 0.0), "vpn vpn 设置", language="zh"),  # the only lexical match, in Chinese
        made(2, (1.0, 0.0, 0.0), "remote access", language="en"),
        made(3, (0.0, 0.0, 1.0), "cafeteria menu", language="en"),
    ]).raise_for_failures()
    # Plain fusion: the Chinese chunk's BM25 match lifts it above the nearest vector.
    assert ranked(three_d, 0.5, terms=["vpn"])[0] == [1, 2, 3]
    # An English-only query has no English match: the BM25 leg carries no evidence.
    order, scores = ranked(three_d, 0.5, terms=["vpn"], lexical_languages=frozenset({"en"}))
    assert order == [2, 1, 3]
    assert scores == pytest.approx([0.5, 0.4, 0.0], abs=1e-5)
    # A query that can match Chinese lexically keeps the evidence.
    assert ranked(three_d, 0.5, terms=["vpn"], lexical_languages=frozenset({"zh", "en"}))[0] == [1, 2, 3]


def test_cjk_text_matches_through_its_bigrams(backend):
    backend.upsert_chunks([
        chunk(1, 1, "公司的数据库备份每天运行", {"public"}, language="zh"),
        chunk(2, 2, "新しいテストケースを追加", {"public"}, language="ja"),
        chunk(3, 3, "연차 휴가 신청 방법", {"public"}, language="ko"),
        chunk(4, 4, "database backup runs daily", {"public"}),
    ]).raise_for_failures()
    assert set(query_terms("数据库")) <= set(index_terms("公司的数据库备份每天运行"))

    def found(text):
        return {hit.document_id for hit in backend.bm25_search(terms=query_terms(text), filters=public(), limit=10)}

    assert found("数据库") == {1}
    assert found("备份") == {1}
    assert found("テスト") == {2}
    assert found("휴가") == {3}
    assert found("库存") == set()  # shares a character, not a bigram
    assert found("database") == {4}
