"""The held-out set: the most recent in-domain queries, in BEIR layout, and never in train.jsonl."""
import json
from datetime import timedelta
from pathlib import Path

from kbsearch.analytics.services import query_normalize
from kbsearch.evaluation.beir import load_beir
from kbsearch.evaluation.runner import Evaluator
from tests.relevance.conftest import search_and_click

QUERIES = [  # (query, file, user), oldest first
    ("vpn client", "vpn", "bob"),
    ("printer", "printer", "carol"),
    ("wifi", "wifi", "dave"),
    ("mail phone", "mail", "bob"),
    ("VPN gateway", "vpn", "carol"),
    ("vpn   GATEWAY", "mail", "dave"),  # same normalised query as the one before
    ("Printer guide > Add a printer", "wifi", "bob"),  # also the query of a heading pair
]


def test_latest_queries_are_held_out_and_never_trained_on(kb, users, doc, build, base_time, tmp_path, kb_encoder):
    for hour, (query, name, user) in enumerate(QUERIES):
        search_and_click(users[user], query, doc(name), rank=1, at=base_time + timedelta(hours=hour))
    snapshot, rows = build(heldout_fraction=0.5, corpus_per_document=3, negatives_per_pair=2)
    folder = Path(snapshot.path) / "heldout"
    beir = load_beir(folder)
    held = {query_normalize(text) for text in beir.queries.values()}
    # Six distinct normalised queries; half of them, the most recent, are held out.
    assert held == {"vpn gateway", "mail phone", "printer guide > add a printer"}
    assert not held & {query_normalize(row["query"]) for row in rows}
    assert {row["origin"] for row in rows} == {"click", "corpus"}
    assert snapshot.summary["heldout"] == {"queries": 3, "qrels": 4, "corpus": len(beir.corpus)}
    # The heading pair of the same query (other document) stays out of training too.
    assert snapshot.summary["dropped"]["row of a held-out query left out of training"] == 1
    # Judgements name passages of the held-out corpus, which holds positives, negatives and distractors.
    gold = {corpus_id for ids in beir.qrels.values() for corpus_id in ids}
    assert len(beir.corpus) > len(gold)
    # The evaluator scores it as it is.
    result = Evaluator(beir, encoder=kb_encoder, work_dir=tmp_path / "eval").evaluate(mode="vector", alpha=1.0)
    assert 0.0 < result.metrics["ndcg@10"] <= 1.0


def test_heldout_corpus_recreates_chunks_as_served(kb, users, doc, build, base_time):
    search_and_click(users["bob"], "connect gateway", doc("vpn"), rank=1, at=base_time)
    snapshot, rows = build(heldout_fraction=0.9)
    folder = Path(snapshot.path) / "heldout"
    entries = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    served = {chunk.pk: chunk.text for chunk in doc("vpn").chunks.all()}
    for entry in entries:
        chunk_id = int(entry["_id"][1:])
        if chunk_id in served:
            assert f"{entry['title']}\n{entry['text']}" == served[chunk_id]
    assert rows == []
