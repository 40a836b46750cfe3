"""``manage.py evaluate`` on a tiny BEIR set whose rankings are known in advance.

Four passages, two queries. Under the keyword geometry (``tests.keyword_encoder``) and BM25 alike,
"zephyr" finds its relevant passage d1 first; "quokka" finds d2 first (the word alone, in a shorter
passage) and its relevant passage d3 second (the word once among three "wombat"s). So every mode
gives q1 nDCG = MRR = Recall = 1 and q2 nDCG 1/log2(3), MRR 1/2, Recall 1.
"""
import json
import math

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from kbsearch.evaluation.beir import load_beir
from kbsearch.evaluation.runner import Evaluator
from tests.keyword_encoder import KeywordEncoder
from tests.knowledge_base import use_encoder

CORPUS = [
    {"_id": "d1", "title": "", "text": "zephyr winds over the hills", "lang": "en"},
    {"_id": "d2", "title": "", "text": "quokka island", "lang": "en"},
    {"_id": "d3", "title": "", "text": "wombat wombat wombat quokka", "lang": "en"},
    {"_id": "d4", "title": "", "text": "nothing to see here", "lang": "en"},
]
QUERIES = [{"_id": "q1", "text": "zephyr"}, {"_id": "q2", "text": "quokka"}, {"_id": "q3", "text": "unjudged"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq2\td4\t0\n"
EXPECTED = {
    "ndcg@10": (1 + 1 / math.log2(3)) / 2,
    "mrr@10": (1 + 0.5) / 2,
    "recall@10": 1.0,
    "recall@100": 1.0,
    "queries": 2,
}


def write_set(directory):
    directory.mkdir(parents=True)
    (directory / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in CORPUS))
    (directory / "queries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in QUERIES))
    (directory / "qrels.tsv").write_text(QRELS)
    return directory


@pytest.fixture
def keyword_geometry(monkeypatch):
    use_encoder(monkeypatch, KeywordEncoder(["zephyr", "quokka", "wombat"]))


def test_every_mode_reports_the_known_answers(tmp_path, keyword_geometry, capsys):
    beir = write_set(tmp_path / "sets" / "animals")
    output = tmp_path / "results.json"
    call_command(
        "evaluate", str(tmp_path / "sets"), "--mode", "bm25", "--mode", "vector", "--mode", "hybrid",
        "--work-dir", str(tmp_path / "work"), "--output", str(output),
    )
    results = json.loads(output.read_text())
    assert [(r["set_name"], r["mode"]) for r in results] == [("animals", m) for m in ("bm25", "vector", "hybrid")]
    for result in results:
        assert result["metrics"] == pytest.approx(EXPECTED), result["mode"]
    printed = capsys.readouterr().out
    assert printed.count("nDCG@10 0.8155  MRR@10 0.7500  R@10 1.0000  R@100 1.0000  (2 queries, all)") == 3
    assert f"wrote {output}" in printed
    # A second run reuses the index and the embedding cache, and reports the same.
    call_command("evaluate", str(beir), "--mode", "bm25", "--work-dir", str(tmp_path / "work"), "--output", str(output))
    assert json.loads(output.read_text())[0]["metrics"] == pytest.approx(EXPECTED)


def test_bad_input_is_a_command_error_with_a_clear_message(tmp_path, keyword_geometry):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="holds no BEIR set"):
        call_command("evaluate", str(tmp_path / "empty"), "--work-dir", str(tmp_path / "work"))
    beir = write_set(tmp_path / "animals")
    with pytest.raises(CommandError, match="--alpha must be between 0 and 1"):
        call_command("evaluate", str(beir), "--alpha", "2", "--work-dir", str(tmp_path / "work"))
    (beir / "qrels.tsv").write_text("q1\tnowhere\t1\n")
    with pytest.raises(CommandError, match="missing from the corpus"):
        call_command("evaluate", str(beir), "--work-dir", str(tmp_path / "work"))
    with pytest.raises(CommandError, match="invalid choice: 'fuzzy'"):
        call_command("evaluate", str(beir), "--mode", "fuzzy")


def test_queries_are_encoded_one_at_a_time_as_search_encodes_them(tmp_path, tiny_encoder, monkeypatch):
    """Evaluation measures the search path: each query alone, through the lean forward."""
    assert tiny_encoder.lean_queries
    seen = []
    monkeypatch.setattr(tiny_encoder, "encode_queries", lambda texts: pytest.fail("batched query encoding"))
    original = tiny_encoder.encode_queries_as_searched
    monkeypatch.setattr(tiny_encoder, "encode_queries_as_searched", lambda texts: seen.append(list(texts)) or original(texts))
    evaluator = Evaluator(load_beir(write_set(tmp_path / "animals")), encoder=tiny_encoder, work_dir=tmp_path / "work")
    evaluator.evaluate(mode="vector", alpha=1.0)
    assert seen == [["zephyr", "quokka"]]
    single = np.vstack([tiny_encoder._embed_queries(tiny_encoder._token_ids([text], "query: ")) for text in seen[0]])
    np.testing.assert_array_equal(original(seen[0]), single)
    evaluator.evaluate(mode="hybrid", alpha=0.5)  # the vectors are cached under their own kind
    assert len(seen) == 1
