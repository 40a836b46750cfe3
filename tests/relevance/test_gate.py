"""The evaluation gate with encoders whose geometry the test chooses (``tests.keyword_encoder``), so
every verdict follows from the vectors: the candidate knows the in-domain code words, the baseline
knows the regression set's animals.

In-domain: three passages, each named by a code word its question asks for. The baseline has no
axis for the codes, so every text points the same way and it ranks by chance; the candidate ranks
each passage first. Regression ("animals"): the other way round.
"""
from dataclasses import replace

import pytest

from kbsearch.evaluation.beir import load_beir
from kbsearch.relevance.gate import GateOptions, GateOptionsError, _sampled, gate_evaluate, regression_set_dirs
from tests.keyword_encoder import KeywordEncoder
from tests.relevance.training_fixtures import write_beir

pytestmark = pytest.mark.django_db

CODES = {"c1": "zephyr is the billing platform", "c2": "quokka runs the payroll", "c3": "wombat books travel"}
ANIMALS = {"a1": "the koala sleeps in a tree", "a2": "an emu cannot fly"}


@pytest.fixture
def sets(tmp_path):
    heldout = write_beir(tmp_path / "snapshot" / "heldout", CODES,
                         {"q1": "zephyr", "q2": "quokka", "q3": "wombat"}, {"q1": "c1", "q2": "c2", "q3": "c3"})
    write_beir(tmp_path / "regression" / "animals", ANIMALS, {"q1": "koala", "q2": "emu"}, {"q1": "a1", "q2": "a2"})
    return heldout, tmp_path / "regression"


@pytest.fixture
def options(settings, tmp_path, sets):
    settings.KBSEARCH_RELEVANCE_REGRESSION_SETS = [str(sets[1])]  # a folder of sets
    settings.KBSEARCH_RELEVANCE_EVAL_DIR = tmp_path / "gate"
    settings.KBSEARCH_RELEVANCE_GATE_MAX_QUERIES = 0
    settings.KBSEARCH_RELEVANCE_MIN_GAIN = 0.005
    settings.KBSEARCH_RELEVANCE_MAX_REGRESSION = 0.005
    return GateOptions.from_settings({"modes": ["vector"], "gate_mode": "vector"})


BASELINE = KeywordEncoder(["koala", "emu"])
CANDIDATE = KeywordEncoder(["zephyr", "quokka", "wombat"])


def scores(report, name):
    return next(entry for entry in report["sets"] if entry["name"] == name)["modes"]["vector"]


def test_a_regression_beyond_the_margin_refuses_and_is_named_first(sets, options):
    report = gate_evaluate(baseline=BASELINE, candidate=CANDIDATE, heldout_dir=sets[0], options=options)
    in_domain, animals = scores(report, "in-domain"), scores(report, "animals")
    assert in_domain["after"]["ndcg@10"] == 1.0 and in_domain["delta"]["ndcg@10"] > 0.005
    assert animals["before"]["ndcg@10"] == 1.0 and animals["delta"]["ndcg@10"] < -0.005
    assert report["verdict"]["passed"] is False
    first, second = report["verdict"]["reasons"]
    assert first.startswith("animals vector nDCG@10 1.0000 -> ") and first.endswith("may fall 0.0050)")
    assert second.startswith("in-domain vector nDCG@10 ") and "needs +0.0050" in second
    assert report["baseline"]["fingerprint"] == BASELINE.index_metadata.model_version


def test_within_the_margins_the_gate_passes(sets, options):
    lenient = replace(options, max_regression=1.0)
    report = gate_evaluate(baseline=BASELINE, candidate=CANDIDATE, heldout_dir=sets[0], options=lenient)
    assert report["verdict"]["passed"] is True
    assert report["verdict"]["summary"].startswith("passed: in-domain vector nDCG@10")


def test_no_gain_is_refused(sets, options):
    report = gate_evaluate(baseline=BASELINE, candidate=BASELINE, heldout_dir=sets[0],
                           options=replace(options, regression_sets=()))
    assert scores(report, "in-domain")["delta"] == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0}
    assert report["verdict"]["passed"] is False and "(+0.0000; needs +0.0050)" in report["verdict"]["summary"]


def test_a_set_that_cannot_be_read_refuses(sets, options, tmp_path):
    report = gate_evaluate(baseline=BASELINE, candidate=CANDIDATE, heldout_dir=sets[0],
                           options=replace(options, regression_sets=(str(tmp_path / "nowhere"),), max_regression=1.0))
    assert report["verdict"]["passed"] is False
    assert report["verdict"]["reasons"][0] == f"nowhere: not evaluated ({tmp_path / 'nowhere'} holds no BEIR set (no corpus.jsonl))"


def test_regression_sets_alone_have_no_in_domain_entry_and_log_no_failure(sets, options, caplog):
    report = gate_evaluate(baseline=BASELINE, candidate=CANDIDATE, heldout_dir=None, options=options, in_domain=False)
    assert [entry["name"] for entry in report["sets"]] == ["animals"]
    assert scores(report, "animals")["delta"]["ndcg@10"] < -0.005
    assert "could not be evaluated" not in caplog.text
    assert report["verdict"]["passed"] is False  # a measurement, never a pass: no in-domain set
    assert report["verdict"]["reasons"][0] == "in-domain: not evaluated (no in-domain set)"


def test_the_baselines_scores_are_cached(sets, options, monkeypatch):
    gate_evaluate(baseline=BASELINE, candidate=CANDIDATE, heldout_dir=sets[0], options=options)
    encoded = []
    for method in ("encode_queries", "encode_passages"):
        monkeypatch.setattr(BASELINE, method, lambda texts, method=method: encoded.append(method) or [])
    other = KeywordEncoder(["zephyr", "quokka"])
    report = gate_evaluate(baseline=BASELINE, candidate=other, heldout_dir=sets[0], options=options)
    assert encoded == []  # the baseline's scores came from the cache
    assert scores(report, "animals")["before"]["ndcg@10"] == 1.0


def test_large_sets_are_sampled_the_same_way_for_both_models(tmp_path):
    corpus = {f"d{n}": f"passage {n}" for n in range(20)}
    folder = write_beir(tmp_path / "big", corpus, {f"q{n}": f"question {n}" for n in range(20)},
                        {f"q{n}": f"d{n}" for n in range(20)})
    beir = load_beir(folder)
    sample = _sampled(beir, 5)
    assert len(sample.queries) == 5 and set(sample.qrels) == set(sample.queries) and sample.corpus == beir.corpus
    assert _sampled(beir, 5).queries == sample.queries and len(_sampled(beir, 0).queries) == 20


def test_options_are_checked(settings, sets):
    with pytest.raises(GateOptionsError, match="unknown gate options \\['min_gain'\\]"):
        GateOptions.from_settings({"min_gain": 0})  # policy comes from settings only
    with pytest.raises(GateOptionsError, match="gate modes must be some of"):
        GateOptions.from_settings({"modes": ["semantic"]})
    names = [(name, error) for name, _path, error in regression_set_dirs([str(sets[1]), str(sets[0])])]
    assert names == [("animals", ""), ("heldout", "")]
