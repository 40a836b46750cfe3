"""Simulated use of a BEIR set, so the real extraction path builds training data from it.

The measurement of the relevance loop (docs/relevance.md) needs clicks where no users exist yet.
This module loads a BEIR set's corpus as the documents of a source readable by ``public`` and turns
a chosen half of its questions into what a user would have left behind: a search through
``search_page_run`` (so a ``QueryLog`` row exactly as the search page writes it) and a ``Click`` on
a gold passage through ``click_record``. ``manage.py training_data`` then builds from those rows
like from any others.

- **Rank of the click.** ``rank=None`` (the default): the rank at which the current hybrid search
  shows the best-placed gold passage among the first ``depth`` results; a question whose gold
  passage is not among them gets its search logged and no click, as a real user would leave it.
  ``rank=N``: a click at rank N on the first gold passage (by id), without searching, so every
  question of the half becomes a click of known position-bias weight.
- **Time.** The searches are spread ``spacing`` apart (one hour by default, so each is its own
  session), ending now, in the order of a hash of the question id: the held-out slice the build
  takes (the most recent queries) is then a fixed pseudo-random part of the click half.
- **Splits** (``questions_split``): ``question``: a hash of the question id sends each question to
  the click half or the test half. ``passage``: a hash of the passage id sends each passage to a
  half; a question whose gold passages all fall in the first half is a click question, all in the
  second half a test question, mixed ones are left out. The second half's passages go to a second
  source ``<key>-test``, which the build must exclude (``--exclude-source``) so that no test
  passage appears in training at all (not as a positive, a negative nor a heading pair).

The simulated user is ``simulation-<key>``, a local account without a password; its earlier
searches and clicks are deleted when the simulation runs again.
"""
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from kbsearch.analytics.models import Click, QueryLog
from kbsearch.analytics.services import click_record, query_log_create
from kbsearch.documents.models import Document, Source
from kbsearch.documents.selectors import document_visible_ids
from kbsearch.documents.services import documents_ingest, documents_prune
from kbsearch.evaluation.beir import BeirSet
from kbsearch.ingest.inputs import DocumentInput
from kbsearch.ingest.parsers import blocks_from_text
from kbsearch.search.pages import search_page_run
from kbsearch.text.query import clean_query

SPLITS = ("question", "passage")
SIMULATION_CONNECTOR = "simulation"  # not a registered connector: such a source is never synced


class SimulationError(ValueError):
    """The simulation cannot run as asked (the message says why)."""


def _first_half(key: str) -> bool:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 2 == 0


def questions_split(beir: BeirSet, *, by: str = "question") -> tuple[list[str], list[str], set[str]]:
    """(click questions, test questions, test passages) of the questions that have gold passages.

    ``test passages`` is empty for the question split (every passage may appear in training).
    """
    if by not in SPLITS:
        raise SimulationError(f"split must be one of {SPLITS}, got {by!r}")
    judged = sorted(qid for qid in beir.queries if beir.qrels.get(qid))
    if by == "question":
        clicks = [qid for qid in judged if _first_half(qid)]
        return clicks, [qid for qid in judged if not _first_half(qid)], set()
    test_passages = {pid for pid in beir.corpus if not _first_half(pid)}
    clicks = [qid for qid in judged if not beir.qrels[qid] & test_passages]
    test = [qid for qid in judged if beir.qrels[qid] <= test_passages]
    return clicks, test, test_passages


def simulation_corpus_load(
    *, beir: BeirSet, source_key: str, test_passages: set[str] = frozenset(), encoder=None, index=None
) -> dict[str, Document]:
    """Every passage as a document readable by ``public`` (test passages in ``<key>-test``);
    returns {passage id: Document}. Unchanged passages are not embedded again; documents an earlier
    run left in either source that this split does not put there are deleted, so switching splits
    cannot leave a test passage in the training source."""
    groups = {source_key: sorted(set(beir.corpus) - set(test_passages)), f"{source_key}-test": sorted(test_passages)}
    sources = {}
    for key in groups:
        existing = Source.objects.filter(key=key).first()
        if existing is not None and existing.connector != SIMULATION_CONNECTOR:
            raise SimulationError(f"source {key!r} exists and is not a simulation; choose another source key")
        sources[key] = existing
    for key, passage_ids in groups.items():
        source = sources[key]
        if source is None and not passage_ids:
            continue
        if source is None:
            source = Source.objects.create(key=key, name=f"Simulation: {beir.name}", connector=SIMULATION_CONNECTOR,
                                           config={"beir_set": beir.name})
        documents_prune(source=source, keep_external_ids=set(passage_ids), index=index)
        items = (
            DocumentInput(
                external_id=pid, title=beir.corpus[pid]["title"], blocks=blocks_from_text(beir.corpus[pid]["text"]),
                principals=["public"], language=beir.corpus[pid].get("lang") or None,
            )
            for pid in passage_ids
        )
        report = documents_ingest(source=source, items=items, encoder=encoder, index=index)
        if report.errors:
            raise SimulationError(f"{len(report.errors)} passages were refused, e.g. {report.errors[:3]}")
    documents = Document.objects.filter(source__key__in=list(groups)).only("pk", "external_id", "source")
    return {document.external_id: document for document in documents}


@dataclass
class SimulationReport:
    questions: int = 0
    clicks: int = 0
    not_found: int = 0  # rank from search: gold passage not among the first ``depth`` results
    ranks: Counter = field(default_factory=Counter)


def simulation_user(*, source_key: str):
    user, created = get_user_model().objects.get_or_create(username=f"simulation-{source_key}"[:150])
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def simulation_clicks_record(
    *,
    beir: BeirSet,
    question_ids: list[str],
    documents: dict[str, Document],
    user,
    rank: int | None = None,
    depth: int = 10,
    spacing: timedelta = timedelta(hours=1),
    encoder=None,
) -> SimulationReport:
    """A logged search and a click on a gold passage for each question (see the module docstring)."""
    if rank is not None and rank < 1:
        raise SimulationError("rank must be 1 or more")
    if not 1 <= depth <= 50:
        raise SimulationError("depth must be between 1 and 50")
    probe = next(iter(documents.values()), None)
    if probe is None or not document_visible_ids(user=user, document_ids=[probe.pk]):
        raise SimulationError(f"user {user.username} cannot see the simulated documents (needs the public principal)")
    with transaction.atomic():  # a second run replaces the first
        Click.objects.filter(user=user).delete()
        QueryLog.objects.filter(user=user).delete()
    ordered = sorted(question_ids, key=lambda qid: hashlib.sha256(f"time:{qid}".encode()).hexdigest())
    start = timezone.now() - spacing * len(ordered)
    source_ids = {document.source_id for document in documents.values()}
    source_keys = sorted(Source.objects.filter(pk__in=source_ids).values_list("key", flat=True))
    report = SimulationReport()
    for position, qid in enumerate(ordered):
        gold = {documents[pid].pk for pid in beir.qrels.get(qid, ()) if pid in documents}
        if not gold:
            continue
        report.questions += 1
        text = clean_query(beir.queries[qid])
        if rank is None:
            page = search_page_run(user=user, query=text, channel=QueryLog.Channel.WEB, sources=source_keys,
                                   limit=depth, encoder=encoder)
            query_log = page.query_log
            hit = next((item for item in page.items if item.document.pk in gold), None)
            clicked = None if hit is None else (hit.document.pk, hit.rank)
        else:
            first = documents[sorted(pid for pid in beir.qrels[qid] if pid in documents)[0]].pk
            query_log = query_log_create(
                user=user, query=text, filters={}, mode="hybrid", channel=QueryLog.Channel.WEB, limit=depth,
                offset=0, results=[{"document": first, "rank": rank, "score": 0.0}], total=1, lexical_total=None,
                latency_ms=0.0,
            )
            clicked = (first, rank)
        searched_at = start + spacing * position
        QueryLog.objects.filter(pk=query_log.pk).update(created_at=searched_at)
        if clicked is None:
            report.not_found += 1
            continue
        click, _ = click_record(user=user, document_id=clicked[0], rank=clicked[1], query_id=query_log.pk)
        Click.objects.filter(pk=click.pk).update(created_at=searched_at + timedelta(seconds=20))
        report.clicks += 1
        report.ranks[clicked[1]] += 1
    return report


def simulation_test_set_write(*, beir: BeirSet, question_ids: list[str], folder: Path) -> Path:
    """The test half as a BEIR set (the whole corpus, the test questions and their judgements), for
    ``manage.py evaluate``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for pid, passage in beir.corpus.items():
            row = {"_id": pid, "title": passage["title"], "text": passage["text"]}
            if passage.get("lang"):
                row["lang"] = passage["lang"]
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"_id": qid, "text": beir.queries[qid]}, ensure_ascii=False) + "\n"
                          for qid in question_ids)
    with (folder / "qrels.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        handle.writelines(f"{qid}\t{pid}\t1\n" for qid in question_ids for pid in sorted(beir.qrels[qid]))
    return folder
