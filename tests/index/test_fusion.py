"""Relative-score fusion as Weaviate defines it."""
import pytest

from kbsearch.index.base import ChunkHit
from kbsearch.index.fusion import relative_score_fusion


def hits(*pairs):
    return [ChunkHit(chunk_id=c, document_id=c, score=s) for c, s in pairs]


def test_min_max_normalises_each_leg_and_weights_by_alpha():
    fused = relative_score_fusion(
        vector_hits=hits((1, 0.9), (2, 0.7), (3, 0.5)), bm25_hits=hits((3, 12.0), (4, 2.0)), alpha=0.75
    )
    scores = {hit.chunk_id: hit.score for hit in fused}
    assert scores == pytest.approx({1: 0.75, 2: 0.375, 3: 0.25, 4: 0.0})
    assert [hit.chunk_id for hit in fused] == [1, 2, 3, 4]
    assert fused[2].vector_score == pytest.approx(0.5) and fused[2].bm25_score == pytest.approx(12.0)


def test_alpha_one_is_pure_vector_and_zero_pure_bm25():
    vector, bm25 = hits((1, 0.9), (2, 0.1)), hits((2, 5.0), (1, 1.0))
    assert [h.chunk_id for h in relative_score_fusion(vector_hits=vector, bm25_hits=bm25, alpha=1.0)] == [1, 2]
    assert [h.chunk_id for h in relative_score_fusion(vector_hits=vector, bm25_hits=bm25, alpha=0.0)] == [2, 1]


def test_single_candidate_leg_normalises_to_one_and_empty_leg_adds_nothing():
    fused = relative_score_fusion(vector_hits=hits((1, 0.3)), bm25_hits=[], alpha=0.5)
    assert [(h.chunk_id, h.score) for h in fused] == [(1, 0.5)]


def test_alpha_out_of_range_is_rejected():
    with pytest.raises(ValueError):
        relative_score_fusion(vector_hits=[], bm25_hits=[], alpha=1.5)


def lang_hits(*triples):
    return [ChunkHit(chunk_id=c, document_id=c, score=s, language=lang) for c, s, lang in triples]


def test_bm25_scale_comes_from_the_query_languages_and_others_are_placed_on_it():
    bm25 = lang_hits((1, 10.0, "en"), (2, 4.0, "en"), (3, 6.0, "zh"), (4, 1.0, "zh"))
    fused = relative_score_fusion(vector_hits=[], bm25_hits=bm25, alpha=0.0, bm25_scale_languages=frozenset({"en"}))
    scores = {hit.chunk_id: hit.score for hit in fused}
    # en sets the scale 4..10; zh's 6.0 lands at 1/3 and its 1.0 below the scale clips to 0.
    assert scores == pytest.approx({1: 1.0, 2: 0.0, 3: 1 / 3, 4: 0.0})


def test_bm25_leg_without_a_same_language_match_carries_no_evidence():
    vector = lang_hits((1, 0.9, "zh"), (2, 0.8, "zh"))
    bm25 = lang_hits((2, 9.0, "zh"), (3, 3.0, "zh"))  # stray digits matched across languages
    fused = relative_score_fusion(vector_hits=vector, bm25_hits=bm25, alpha=0.5, bm25_scale_languages=frozenset({"en"}))
    assert [(h.chunk_id, h.score) for h in fused] == [(1, 0.5), (2, 0.0)]
