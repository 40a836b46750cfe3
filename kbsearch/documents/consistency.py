"""The consistency check: the database against the index, over every source, and the repair of drift
(``manage.py index check [--repair]``, and daily from Celery beat).

What is compared, document by document (a batch at a time, reading the index's real state through
``indexed_documents``):
- missing: the database has chunks for a document the index does not hold at all;
- extra: the index holds a document the database no longer has (a deletion it never took);
- chunks: both hold the document, with other chunk ids (a count or a content change it missed);
- access: same chunks, another access list;
- place: same chunks and access list, another place (a move the index never took);
- metadata: the serving generation was built by another model or analyzer than the configured one
  (reported, never repaired here: a rollback may be deliberate, and the cure is a re-embed).

Repair goes through the outbox: each drifted document gets a ``repair`` record and the records are
replayed (``index_changes_replay_all``), which re-reads the database and makes the index hold exactly
that, under each source's lock. A source being synced right now is skipped: its writer replays its
records before writing. So the repair path is the one crash recovery already uses, nothing new.
"""
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction

from kbsearch.documents.models import Chunk, Document, DocumentAccess
from kbsearch.documents.outbox import index_changes_record, index_changes_replay_all
from kbsearch.documents.places import place_value
from kbsearch.index.base import BaseIndexBackend
from kbsearch.index.registry import get_index_backend
from kbsearch.ops.metrics import index_drift_found

logger = logging.getLogger(__name__)

_BATCH_DOCUMENTS = 500
DRIFT_KINDS = ("missing", "extra", "chunks", "access", "place")


@dataclass
class IndexCheckReport:
    """What differs, as document ids by kind, and what was done about it."""

    documents_checked: int = 0
    missing: list[int] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    access: list[int] = field(default_factory=list)
    place: list[int] = field(default_factory=list)
    metadata_problems: list[str] = field(default_factory=list)
    repaired: int = 0

    @property
    def drifted(self) -> int:
        return sum(len(getattr(self, kind)) for kind in DRIFT_KINDS)

    def summary(self) -> str:
        counts = ", ".join(f"{kind} {len(getattr(self, kind))}" for kind in DRIFT_KINDS)
        text = f"index check: {self.documents_checked} documents checked; drift: {counts}; repaired {self.repaired}"
        if self.metadata_problems:
            text += "; metadata: " + " | ".join(self.metadata_problems)
        return text


def index_check(*, repair: bool = False, index: BaseIndexBackend | None = None, configured=None) -> IndexCheckReport:
    """Compare every document with the index; with ``repair``, bring drifted ones back in step.

    ``configured``: the encoder whose metadata the serving generation should have (default: the
    configured model, ``get_encoder``).
    """
    index = index or get_index_backend()
    report = IndexCheckReport()
    report.metadata_problems = _metadata_problems(index, configured)
    document_ids = Document.objects.order_by("pk").values_list("pk", flat=True)
    batch: list[int] = []
    for document_id in document_ids.iterator(chunk_size=_BATCH_DOCUMENTS):
        batch.append(document_id)
        if len(batch) >= _BATCH_DOCUMENTS:
            _compare(batch, index, report)
            batch = []
    if batch:
        _compare(batch, index, report)
    for in_index in index.iter_document_ids(batch_size=_BATCH_DOCUMENTS):
        known = set(Document.objects.filter(pk__in=in_index).values_list("pk", flat=True))
        report.extra.extend(document_id for document_id in in_index if document_id not in known)
    drifted = report.missing + report.chunks + report.access + report.place
    sources = dict(Document.objects.filter(pk__in=drifted).values_list("pk", "source_id"))
    _count_drift(report)
    if repair and report.drifted:
        with transaction.atomic():
            index_changes_record(documents=[(document_id, sources.get(document_id)) for document_id in drifted],
                                 kind="repair")
            # Gone from the database: records of no source, replayed without a lock.
            index_changes_record(documents=[(document_id, None) for document_id in report.extra], kind="repair")
        report.repaired = index_changes_replay_all(index=index)
    return report


def _compare(document_ids: Sequence[int], index: BaseIndexBackend, report: IndexCheckReport) -> None:
    chunks: dict[int, set[int]] = {}
    for chunk_id, document_id in Chunk.objects.filter(document_id__in=document_ids).values_list("pk", "document_id"):
        chunks.setdefault(document_id, set()).add(chunk_id)
    access: dict[int, set[str]] = {}
    for document_id, principal in DocumentAccess.objects.filter(document_id__in=document_ids).values_list(
        "document_id", "principal"
    ):
        access.setdefault(document_id, set()).add(principal)
    places = {
        document_id: place_value(source_key, place_key)
        for document_id, source_key, place_key in Document.objects.filter(pk__in=document_ids).values_list(
            "pk", "source__key", "place_key"
        )
    }
    held = index.indexed_documents(document_ids)
    report.documents_checked += len(document_ids)
    for document_id in document_ids:
        wanted = frozenset(chunks.get(document_id, ()))
        entry = held.get(document_id)
        if entry is None:
            if wanted:
                report.missing.append(document_id)
        elif entry.chunk_ids != wanted:
            report.chunks.append(document_id)  # includes a document whose chunks are all gone
        elif entry.principals != frozenset(access.get(document_id, ())):
            report.access.append(document_id)
        elif wanted and entry.places != {places.get(document_id, "")}:
            report.place.append(document_id)


def _metadata_problems(index: BaseIndexBackend, configured) -> list[str]:
    problems = []
    serving = index.serving_metadata()
    if serving is None:
        if Chunk.objects.exists():
            problems.append("the database has chunks but the index has no generation yet")
        return problems
    if configured is None:
        from embeddings.loading import get_encoder

        configured = get_encoder()
    wanted = getattr(configured, "index_metadata", None)
    differences = serving.mismatches(wanted) if wanted is not None else []
    if differences:
        # Searches and writes still work (they follow the serving generation's model and
        # precision); the operator decides whether to re-embed with the configured model or change
        # the setting.
        keep = f"configure {serving.model_id}"
        if serving.precision != wanted.precision:
            keep += f" with KBSEARCH_EMBED_PRECISION={serving.precision}"
        problems.append(
            f"the serving generation was built with other settings than the configured model "
            f"(serving != configured: {'; '.join(differences)}): re-embed (manage.py index reembed "
            f"--model {wanted.model_id}) or {keep}"
        )
    return problems


def _count_drift(report: IndexCheckReport) -> None:
    for kind in DRIFT_KINDS:
        index_drift_found(kind=kind, count=len(getattr(report, kind)))


def index_check_and_repair() -> IndexCheckReport:
    """The scheduled run: check everything, repair the drift, log one summary line."""
    report = index_check(repair=True)
    (logger.warning if report.drifted or report.metadata_problems else logger.info)(report.summary())
    return report
