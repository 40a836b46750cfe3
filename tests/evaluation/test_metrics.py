"""Known answers for the ranking metrics, worked out by hand (binary relevance, as BEIR qrels are read).

nDCG@k: sum over relevant documents in the top k of 1/log2(position + 1), divided by the same sum
for an ideal ranking of min(|relevant|, k) relevant documents. MRR@k: 1/position of the first
relevant document in the top k. Recall@k: relevant documents in the top k over all relevant ones.
"""
import math

import pytest

from kbsearch.evaluation.beir import EvaluationSetError, load_beir
from kbsearch.evaluation.metrics import mrr_at, ndcg_at, recall_at, summarize

LOG2_3 = math.log2(3)  # the discount at position 2; position 1's is log2(2) = 1, position 3's is 2


@pytest.mark.parametrize(
    ("ranked", "relevant", "k", "ndcg", "mrr", "recall"),
    [
        # One relevant document, first: perfect.
        (["a", "x", "y"], {"a"}, 10, 1.0, 1.0, 1.0),
        # One relevant document, second: nDCG 1/log2(3) = 0.6309, MRR 1/2.
        (["x", "a", "y"], {"a"}, 10, 1 / LOG2_3, 0.5, 1.0),
        # One relevant document, third: discount log2(4) = 2.
        (["x", "y", "a"], {"a"}, 10, 0.5, 1 / 3, 1.0),
        # Two relevant at 1 and 3: DCG 1 + 1/2, ideal 1 + 1/log2(3).
        (["a", "x", "b"], {"a", "b"}, 10, 1.5 / (1 + 1 / LOG2_3), 1.0, 1.0),
        # Two relevant, one found at 2: DCG 1/log2(3), ideal 1 + 1/log2(3); half recalled.
        (["x", "b", "y"], {"a", "b"}, 10, (1 / LOG2_3) / (1 + 1 / LOG2_3), 0.5, 0.5),
        # The relevant document just past the cut-off counts for nothing.
        ([f"x{i}" for i in range(10)] + ["a"], {"a"}, 10, 0.0, 0.0, 0.0),
        # More relevant documents than k: the ideal has only k of them, so k hits are perfect.
        ([f"r{i}" for i in range(3)], {f"r{i}" for i in range(5)}, 3, 1.0, 1.0, 3 / 5),
        # Relevant documents nobody retrieved.
        (["x", "y"], {"a", "b", "c", "d"}, 10, 0.0, 0.0, 0.0),
        # An empty ranking.
        ([], {"a"}, 10, 0.0, 0.0, 0.0),
        # No relevant documents at all: nothing to find, every metric 0 (never a division by zero).
        (["a", "b"], set(), 10, 0.0, 0.0, 0.0),
    ],
)
def test_known_answers(ranked, relevant, k, ndcg, mrr, recall):
    assert ndcg_at(ranked, relevant, k) == pytest.approx(ndcg, abs=1e-12)
    assert mrr_at(ranked, relevant, k) == pytest.approx(mrr, abs=1e-12)
    assert recall_at(ranked, relevant, k) == pytest.approx(recall, abs=1e-12)


def test_the_decimal_values_of_the_worked_examples():
    # Spelled out once, so a change of log base or of position counting cannot hide in formulas.
    assert ndcg_at(["x", "a"], {"a"}, 10) == pytest.approx(0.63093, abs=1e-5)
    assert ndcg_at(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx(0.91972, abs=1e-5)
    assert ndcg_at(["x", "b", "y"], {"a", "b"}, 10) == pytest.approx(0.38685, abs=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_cut_off_k(k):
    ranked, relevant = ["x", "a", "b"], {"a", "b"}
    expected_ndcg = {1: 0.0, 2: (1 / LOG2_3) / (1 + 1 / LOG2_3), 3: (1 / LOG2_3 + 0.5) / (1 + 1 / LOG2_3)}
    assert ndcg_at(ranked, relevant, k) == pytest.approx(expected_ndcg[k])
    assert mrr_at(ranked, relevant, k) == {1: 0.0, 2: 0.5, 3: 0.5}[k]
    assert recall_at(ranked, relevant, k) == {1: 0.0, 2: 0.5, 3: 1.0}[k]


def test_ties_among_equally_relevant_documents_do_not_matter():
    """Relevance is binary: swapping two relevant (or two irrelevant) documents changes nothing."""
    relevant = {"a", "b"}
    for first, second in [(["a", "b", "x", "y"], ["b", "a", "y", "x"]), (["x", "a", "y", "b"], ["y", "b", "x", "a"])]:
        for metric in (ndcg_at, mrr_at, recall_at):
            assert metric(first, relevant, 10) == metric(second, relevant, 10)
    # ...while moving a relevant document down does.
    assert ndcg_at(["x", "a", "b"], relevant, 10) < ndcg_at(["a", "x", "b"], relevant, 10)


def test_summarize_averages_over_judged_queries_only():
    runs = {
        "q1": ["a", "x"],            # nDCG 1, MRR 1, R@10 1
        "q2": ["x", "y", "b"],       # relevant {b, c}: nDCG (1/2) / (1 + 1/log2 3), MRR 1/3, R@10 1/2
        "q3": ["a", "b"],            # no judgements: left out of every mean
    }
    qrels = {"q1": {"a"}, "q2": {"b", "c"}, "q3": set()}
    summary = summarize(runs, qrels)
    assert summary["queries"] == 2
    assert summary["ndcg@10"] == pytest.approx((1 + 0.5 / (1 + 1 / LOG2_3)) / 2)
    assert summary["mrr@10"] == pytest.approx((1 + 1 / 3) / 2)
    assert summary["recall@10"] == pytest.approx(0.75) and summary["recall@100"] == pytest.approx(0.75)


def test_summarize_refuses_a_run_without_judged_queries():
    with pytest.raises(ValueError, match="no judged queries"):
        summarize({"q1": ["a"]}, {"q2": {"a"}})


def test_graded_qrels_count_as_relevant_when_positive(tmp_path):
    """Graded judgements (0, 1, 2) are read as binary: any positive grade is relevant."""
    (tmp_path / "corpus.jsonl").write_text("".join(f'{{"_id": "{d}", "text": "t"}}\n' for d in "abc"))
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n')
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t2\nq1\tb\t1\nq1\tc\t0\n")
    assert load_beir(tmp_path).qrels == {"q1": {"a", "b"}}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"queries.jsonl": "", "qrels.tsv": ""}, "missing"),
        ({"corpus.jsonl": "{not json\n", "queries.jsonl": "", "qrels.tsv": ""}, "corpus.jsonl:1: not JSON"),
        ({"corpus.jsonl": '{"text": "no id"}\n', "queries.jsonl": "", "qrels.tsv": ""}, "expected an object with '_id'"),
        ({"corpus.jsonl": '{"_id": "a"}\n', "queries.jsonl": "", "qrels.tsv": "q1\ta\n"}, "expected query-id, corpus-id, score"),
        ({"corpus.jsonl": '{"_id": "a"}\n', "queries.jsonl": "", "qrels.tsv": "q1\tzz\t1\n"}, "missing from the corpus"),
    ],
)
def test_malformed_sets_are_refused_with_the_place_and_reason(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(EvaluationSetError, match=message):
        load_beir(tmp_path)
