"""Simulated use: a BEIR set's corpus as documents, half its questions as logged searches and clicks
that the real extraction path turns into training data."""
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from kbsearch.analytics.models import Click, QueryLog
from kbsearch.evaluation.beir import load_beir
from kbsearch.relevance.simulation import (
    SimulationError,
    questions_split,
    simulation_clicks_record,
    simulation_corpus_load,
    simulation_test_set_write,
    simulation_user,
)

PASSAGES = {
    "p1": ("VPN", "The VPN client connects through the gateway."),
    "p2": ("Printer", "The printer on floor two prints in colour."),
    "p3": ("Wifi", "The wifi in the lobby is open to guests."),
    "p4": ("Mail", "Mail reaches the phone within a minute."),
    "p5": ("Salary", "Salary is paid on the last workday."),
    "p6": ("Install", "Install the client before the first login."),
}
QUESTIONS = {
    "q1": ("how does the vpn connect", "p1"), "q2": ("which gateway for vpn", "p1"),
    "q3": ("printer colour", "p2"), "q4": ("printer floor", "p2"),
    "q5": ("lobby wifi", "p3"), "q6": ("wifi for guests", "p3"),
    "q7": ("mail on the phone", "p4"), "q8": ("phone mail delay", "p4"),
    "q9": ("salary day", "p5"), "q10": ("when is salary paid", "p5"),
    "q11": ("install the client", "p6"), "q12": ("client install before login", "p6"),
}


@pytest.fixture
def beir_dir(tmp_path) -> Path:
    folder = tmp_path / "toy-set"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": pid, "title": title, "text": text}) + "\n" for pid, (title, text) in PASSAGES.items()))
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": qid, "text": text}) + "\n" for qid, (text, _) in QUESTIONS.items()))
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{qid}\t{pid}\t1\n" for qid, (_, pid) in QUESTIONS.items()))
    return folder


def test_question_split_halves_by_a_hash_of_the_id(beir_dir):
    beir = load_beir(beir_dir)
    clicks, test, test_passages = questions_split(beir, by="question")
    assert not set(clicks) & set(test) and set(clicks) | set(test) == set(QUESTIONS)
    assert clicks and test and test_passages == set()
    assert questions_split(beir, by="question")[0] == clicks  # the same split every time


def test_passage_split_keeps_test_passages_out_of_the_click_half(beir_dir):
    beir = load_beir(beir_dir)
    clicks, test, test_passages = questions_split(beir, by="passage")
    assert test_passages and test_passages < set(PASSAGES)
    assert all(not beir.qrels[qid] & test_passages for qid in clicks)
    assert all(beir.qrels[qid] <= test_passages for qid in test)


def test_clicks_at_a_fixed_rank_become_click_rows(kb, beir_dir, build):
    beir = load_beir(beir_dir)
    clicks, test, _ = questions_split(beir, by="question")
    documents = simulation_corpus_load(beir=beir, source_key="sim-toy")
    user = simulation_user(source_key="sim-toy")
    report = simulation_clicks_record(beir=beir, question_ids=clicks, documents=documents, user=user, rank=3)
    assert report.clicks == len(clicks) == QueryLog.objects.filter(user=user).count()
    assert set(Click.objects.filter(user=user).values_list("rank", flat=True)) == {3}
    # Running again replaces the simulated searches rather than doubling them.
    simulation_clicks_record(beir=beir, question_ids=clicks, documents=documents, user=user, rank=3)
    assert Click.objects.filter(user=user).count() == len(clicks)
    _, rows = build(negatives_per_pair=2)
    assert {row["query"] for row in rows} == {QUESTIONS[qid][0] for qid in clicks}
    assert {row["origin"] for row in rows} == {"click"} and {row["source"] for row in rows} == {"sim-toy"}
    for row in rows:
        (qid,) = [qid for qid in clicks if QUESTIONS[qid][0] == row["query"]]
        assert row["document_id"] == documents[QUESTIONS[qid][1]].pk
    folder = simulation_test_set_write(beir=beir, question_ids=test, folder=beir_dir.parent / "toy-test")
    assert set(load_beir(folder).queries) == set(test)


def test_clicks_at_the_rank_search_shows(kb, beir_dir):
    beir = load_beir(beir_dir)
    documents = simulation_corpus_load(beir=beir, source_key="sim-toy")
    user = simulation_user(source_key="sim-toy")
    report = simulation_clicks_record(beir=beir, question_ids=sorted(QUESTIONS), documents=documents, user=user,
                                      depth=3)
    assert report.clicks + report.not_found == len(QUESTIONS) and report.clicks > 0
    for recorded in Click.objects.filter(user=user).select_related("query_log"):
        shown = {row["document"]: row["rank"] for row in recorded.query_log.results}
        assert shown[recorded.document_id] == recorded.rank <= 3
        assert recorded.document.source.key == "sim-toy"


def test_passage_split_keeps_test_passages_out_of_training_entirely(kb, beir_dir, build):
    beir = load_beir(beir_dir)
    clicks, _, test_passages = questions_split(beir, by="passage")
    documents = simulation_corpus_load(beir=beir, source_key="sim-toy", test_passages=test_passages)
    assert {documents[pid].source.key for pid in test_passages} == {"sim-toy-test"}
    simulation_clicks_record(beir=beir, question_ids=clicks, documents=documents,
                             user=simulation_user(source_key="sim-toy"), rank=1)
    snapshot, rows = build(exclude_sources=("sim-toy-test",), corpus_per_document=3, negatives_per_pair=5,
                           heldout_fraction=0.3, heldout_distractors=100)
    written = "".join(path.read_text() for path in Path(snapshot.path).rglob("*") if path.is_file())
    assert rows
    for pid in test_passages:
        assert PASSAGES[pid][1] not in written


def test_commands_simulate_then_build(kb, beir_dir, tmp_path):
    out = StringIO()
    call_command("simulate_use", str(beir_dir), "--rank", "2", "--split", "passage",
                 "--test-set-dir", str(tmp_path / "test-half"), stdout=out)
    printed = out.getvalue()
    assert "next: manage.py training_data --exclude-source sim-toy-set-test" in printed
    assert (tmp_path / "test-half" / "qrels.tsv").is_file()
    out = StringIO()
    call_command("training_data", "--output-dir", str(tmp_path / "training"), "--exclude-source",
                 "sim-toy-set-test", "--negatives", "1", "--heldout-fraction", "0.25", stdout=out)
    printed = out.getvalue()
    assert "train.jsonl:" in printed and "by origin: " in printed and "heldout/:" in printed
    out = StringIO()
    call_command("training_data", "--output-dir", str(tmp_path / "training"), "--json", "--days", "1", stdout=out)
    data = json.loads(out.getvalue())
    lines = (Path(data["path"]) / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == data["summary"]["train_rows"]
    for bad in (["--heldout-fraction", "2"], ["--days", "1", "--since", "2026-01-01"], ["--since", "yesterday"]):
        with pytest.raises(CommandError):
            call_command("training_data", "--output-dir", str(tmp_path / "training"), *bad)
    with pytest.raises(CommandError, match="--rank"):
        call_command("simulate_use", str(beir_dir), "--rank", "zero")


def test_switching_splits_moves_passages_and_never_takes_a_real_source(kb, beir_dir):
    beir = load_beir(beir_dir)
    simulation_corpus_load(beir=beir, source_key="sim-toy")
    _, _, test_passages = questions_split(beir, by="passage")
    documents = simulation_corpus_load(beir=beir, source_key="sim-toy", test_passages=test_passages)
    assert len(documents) == len(PASSAGES)
    keys = {pid: document.source.key for pid, document in documents.items()}
    assert {pid for pid, key in keys.items() if key == "sim-toy-test"} == test_passages
    back = simulation_corpus_load(beir=beir, source_key="sim-toy")
    assert {document.source.key for document in back.values()} == {"sim-toy"} and len(back) == len(PASSAGES)
    with pytest.raises(SimulationError, match="not a simulation"):
        simulation_corpus_load(beir=beir, source_key="share")  # the knowledge base's real source
