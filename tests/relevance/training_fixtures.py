"""Fixtures for the training, gate and promotion tests: small snapshots in the training-data format.

A snapshot folder holds ``train.jsonl`` (one row per pair: query, positive, negatives, origin,
weight, language, source, document_id, chunk_id, query_time; texts without e5 prefixes) and
``heldout/``, a BEIR set of pairs never trained on. The data here is learnable by the tiny model:
each topic has a code word that appears in its questions but never in its passage, so ranking the
passage for a held-out question about the code needs what training taught (an untrained tiny model
ranks them by chance).

The regression set asks for each passage with its own text: an unrelated task both models should
get right, so a model that learned its lesson without forgetting everything passes it.
"""
import json
from pathlib import Path

import pytest

from kbsearch.relevance.models import TrainingDataSnapshot

TOPICS = {
    "password": "Reset it from the login page; the new one must have twelve characters.",
    "vpn": "The remote gateway needs the client installed and a token from the service desk.",
    "leave": "Annual holidays are requested in the HR portal and approved by your manager.",
    "expense": "Receipts are uploaded within thirty days and paid with the next salary.",
    "travel": "Flights and hotels are booked through the agency, economy class below six hours.",
    "onboarding": "New employees get a laptop, a badge and a buddy during their first week.",
    "security": "Report phishing mails with the button in the mail client; never forward them.",
    "knowledge": "Articles are written in the wiki and reviewed every year by their owners.",
}
TRAIN_QUESTIONS = ("how does {} work", "where do I find {} rules", "{} help", "question about {}")
HELDOUT_QUESTIONS = ("{} process", "explain {} to me")


def write_beir(folder: Path, corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for key, text in corpus.items():
            handle.write(json.dumps({"_id": key, "title": "", "text": text, "lang": "en"}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as handle:
        for key, text in queries.items():
            handle.write(json.dumps({"_id": key, "text": text}) + "\n")
    (folder / "qrels.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{qid}\t{doc}\t1\n" for qid, doc in qrels.items()), encoding="utf-8"
    )
    return folder


def train_rows() -> list[dict]:
    codes = list(TOPICS)
    rows = []
    for number, (code, passage) in enumerate(TOPICS.items()):
        negative = TOPICS[codes[(number + 1) % len(codes)]]
        for position, question in enumerate(TRAIN_QUESTIONS):
            rows.append({
                "query": question.format(code), "positive": passage, "negatives": [negative],
                "origin": "click" if position % 2 else "corpus", "weight": 1.0 + position % 2,
                "language": "en", "source": "wiki", "document_id": number + 1, "chunk_id": number + 1,
                "query_time": "2026-11-01T10:00:00Z",
            })
    return rows


def write_snapshot(folder: Path, rows: list[dict] | None = None, *, heldout: bool = True) -> TrainingDataSnapshot:
    folder.mkdir(parents=True, exist_ok=True)
    rows = train_rows() if rows is None else rows
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    if heldout:
        corpus = {f"c{number}": passage for number, passage in enumerate(TOPICS.values())}
        queries, qrels = {}, {}
        for number, code in enumerate(TOPICS):
            for variant, question in enumerate(HELDOUT_QUESTIONS):
                queries[f"q{number}-{variant}"] = question.format(code)
                qrels[f"q{number}-{variant}"] = f"c{number}"
        write_beir(folder / "heldout", corpus, queries, qrels)
    return TrainingDataSnapshot.objects.create(
        path=str(folder), sha256="ab" * 32, summary={"pairs": len(rows)}, params={}
    )


def write_echo_set(folder: Path) -> Path:
    """The regression set: every passage asked for with its own text."""
    passages = [
        "The cafeteria on floor two serves lunch from noon.",
        "Printers are configured by scanning the code on the device.",
        "Parking permits are renewed each January at reception.",
        "The library lends books for four weeks.",
        "Fire drills take place twice a year without notice.",
        "Meeting rooms are booked in the calendar of the building.",
    ]
    corpus = {f"e{number}": text for number, text in enumerate(passages)}
    return write_beir(folder, corpus, {f"q{k}": text for k, text in corpus.items()}, {f"q{k}": k for k in corpus})


@pytest.fixture
def relevance_settings(settings, tmp_path):
    """Trained models, gate caches and the regression set in the test's folder; vector mode gates
    (the tiny model's BM25 leg is the same before and after, and would only dilute the signal)."""
    settings.KBSEARCH_RELEVANCE_MODELS_DIR = tmp_path / "trained"
    settings.KBSEARCH_RELEVANCE_EVAL_DIR = tmp_path / "gate"
    settings.KBSEARCH_RELEVANCE_REGRESSION_SETS = [str(write_echo_set(tmp_path / "regression" / "echo"))]
    settings.KBSEARCH_RELEVANCE_GATE_MODES = ["vector", "hybrid"]
    settings.KBSEARCH_RELEVANCE_GATE_MODE = "vector"
    settings.KBSEARCH_RELEVANCE_GATE_MAX_QUERIES = 0
    settings.KBSEARCH_RELEVANCE_TRAIN_MAX_SECONDS = 600
    settings.KBSEARCH_RELEVANCE_TRAIN_MAX_STEPS = 0
    return settings


# Enough for the tiny model to learn the codes (measured: about 2 s on two cores). The whole update
# is kept: these tests follow a model that clearly learned through the gate; keeping a share of
# the update is tested on its own (test_update_fraction.py).
TINY_PARAMS = {"epochs": 8, "batch_size": 8, "learning_rate": 2e-3, "warmup_ratio": 0.0, "update_fraction": 1.0}
