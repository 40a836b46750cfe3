"""Applying a cursor connector's change stream and a permission sync's access lists.

A cursor stream (``CursorMixin.changes``) mixes document upserts, failures, deletions the source
reports, permission-only changes and checkpoints. Items are applied in the order the source gave
them, consecutive upserts in one ingest batch (which is what makes embedding fast); at each
``Checkpoint`` everything before it is committed (database and outbox; the index follows) and only
then is the cursor saved, on the source and on the run. A run killed anywhere resumes from the last
saved cursor: what it re-reads is unchanged and costs a hash comparison, nothing is lost, nothing
is duplicated (documents are keyed by source and external id).

A pass from an empty cursor is a full pass: every item the source has comes by, and the documents
it did not mention are deleted at its end. Which documents were mentioned is kept in the database
(``Document.seen_at`` = the pass's start, written per batch), not in memory, so a full pass that was
interrupted and resumed still knows; the pass's start is saved with the cursor.

The cursor moves past an item that failed in a way a retry could fix, so such items are kept in
the saved cursor (``retry``) and read again first thing next run through the connector's
``reload(external_ids)``, until they succeed, fail for good or are deleted.

A permission sync (``PermissionSyncMixin.access_lists``) only compares access lists and replaces the
ones that changed: no content is read, nothing is re-embedded. An ``AccessChanged`` that states
the item's place moves the document too (a Confluence page moved to another space), the same way.
"""
from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from connectors.base import (
    AccessChanged,
    Checkpoint,
    ConnectorError,
    DocumentDeleted,
    DocumentFailure,
    ItemNotice,
)
from connectors.models import SyncRun
from kbsearch.documents import faults
from kbsearch.documents.models import Document, Source
from kbsearch.documents.places import InvalidPlace, place_fields
from kbsearch.documents.services import (
    IngestReport,
    document_set_access,
    document_set_place,
    documents_delete,
    documents_ingest,
    documents_prune_unseen,
    principals_for_source,
)
from kbsearch.ingest.inputs import DocumentInput

# Items applied together when the connector checkpoints rarely (their cursor is saved only at the
# next checkpoint; re-reading them after a crash costs a hash comparison each).
_SEGMENT_ITEMS = 200
_ACCESS_BATCH = 500
# Run errors that are notices about items synced anyway (``ItemNotice``), not failures.
NOTICE_PREFIX = "notice: "


class SyncCancelled(Exception):
    """An admin asked the run to stop; what it committed stays and the next run resumes."""


def items_handled(report: IngestReport) -> int:
    """Items a run has dealt with so far, whatever the outcome (for progress bars)."""
    return (
        report.created + report.updated + report.unchanged + report.access_updated + report.place_updated
        + report.deleted + len(report.errors)
    )


def cancel_requested(run: SyncRun) -> bool:
    return SyncRun.objects.filter(pk=run.pk, cancel_requested=True).exists()


def cursor_pass_start(*, source: Source, full: bool) -> tuple[dict, datetime | None]:
    """The cursor to read from and, for a full pass, when the pass started (saved before reading)."""
    saved = source.cursor or {}
    resumed = parse_datetime(saved["full_pass_started_at"]) if saved.get("full_pass_started_at") else None
    if resumed is not None and not full:
        return dict(saved.get("connector") or {}), resumed
    if full or not saved.get("connector"):
        started = timezone.now()
        _save_cursor(source, None, {}, started)
        return {}, started
    return dict(saved["connector"]), None


def cursor_retry_ids(source: Source) -> list[str]:
    """Items that failed retryably in earlier runs, to read again before the stream."""
    return list((source.cursor or {}).get("retry") or [])


def cursor_stream_apply(
    *, source: Source, run: SyncRun, items: Iterable, pass_started: datetime | None, encoder, index,
    report: IngestReport, retried: Iterable = (), on_progress=None,
) -> None:
    """Apply a change stream, saving the cursor at each checkpoint; a full pass prunes at its end.

    ``retried`` are the items ``reload`` gave for ``cursor_retry_ids``: applied first.
    """
    retry = set(cursor_retry_ids(source))
    retried = list(retried)
    _segment_apply(source, retried, pass_started, encoder, index, report, retry)
    segment: list = []
    finished = False
    for item in items:
        if isinstance(item, Checkpoint):
            _segment_apply(source, segment, pass_started, encoder, index, report, retry)
            segment = []
            faults.point("connectors.cursor.segment_applied")
            _save_cursor(source, run, item.cursor, pass_started, retry)
            finished = True
            if on_progress:
                on_progress(items_handled(report))
            if cancel_requested(run):
                raise SyncCancelled()
            continue
        finished = False
        segment.append(item)
        if len(segment) >= _SEGMENT_ITEMS:
            _segment_apply(source, segment, pass_started, encoder, index, report, retry)
            segment = []
            if on_progress:
                on_progress(items_handled(report))
    if segment or not finished:
        # Applied for what they are worth, but with no checkpoint after them the stream is not
        # whole: the cursor stays where it was and a full pass does not prune.
        _segment_apply(source, segment, pass_started, encoder, index, report, retry)
        raise ConnectorError("the connector's change stream ended without a final checkpoint")
    if pass_started is not None:
        report.deleted += documents_prune_unseen(source=source, seen_since=pass_started, index=index)
        cursor = (source.cursor or {}).get("connector") or {}
        _save_cursor(source, run, cursor, None, retry)


def _save_cursor(
    source: Source, run: SyncRun | None, cursor: dict, pass_started: datetime | None, retry: set[str] = frozenset()
) -> None:
    value = {
        "connector": cursor,
        "full_pass_started_at": pass_started.isoformat() if pass_started else None,
        "retry": sorted(retry),
    }
    Source.objects.filter(pk=source.pk).update(cursor=value)
    source.cursor = value
    if run is not None:
        SyncRun.objects.filter(pk=run.pk).update(checkpoint=cursor)
        run.checkpoint = cursor


def _segment_apply(source: Source, items: list, pass_started, encoder, index, report: IngestReport, retry: set[str]) -> None:
    """Apply items in order, consecutive upserts as one ingest batch; mark them seen in a full pass."""
    pending: list[DocumentInput] = []
    for item in items:
        if isinstance(item, DocumentFailure) and item.retryable:
            retry.add(item.external_id)
        elif not isinstance(item, Checkpoint | ItemNotice):
            retry.discard(item.external_id)

    def flush() -> None:
        if pending:
            report.merge(documents_ingest(source=source, items=list(pending), encoder=encoder, index=index))
            pending.clear()

    for item in items:
        if isinstance(item, DocumentInput):
            pending.append(item)
            continue
        flush()
        if isinstance(item, DocumentDeleted):
            document = Document.objects.filter(source=source, external_id=item.external_id).first()
            if document is not None:
                report.deleted += documents_delete(documents=[document], index=index)
        elif isinstance(item, AccessChanged):
            access_apply(source=source, changes=[item], index=index, report=report)
        elif isinstance(item, DocumentFailure):
            failure_record(source=source, failure=item, index=index, report=report)
        elif isinstance(item, ItemNotice):
            report.errors.append((item.external_id, NOTICE_PREFIX + item.message))
        else:
            raise ConnectorError(f"the connector yielded {type(item).__name__}, which a change stream cannot hold")
    flush()
    if pass_started is not None:
        mentioned = {item.external_id for item in items if not isinstance(item, DocumentDeleted | ItemNotice)}
        Document.objects.filter(source=source, external_id__in=mentioned).update(seen_at=pass_started)


def failure_record(*, source: Source, failure: DocumentFailure, index, report: IngestReport) -> None:
    """Report an item that could not be read; hide it when its permissions are unknown."""
    report.errors.append((failure.external_id, failure.reason))
    report.retryable_errors += int(failure.retryable)
    if failure.revoke_access:
        document = Document.objects.filter(source=source, external_id=failure.external_id).first()
        if document is not None and document.access.exists():
            document_set_access(document=document, principals=(), index=index)
            report.access_updated += 1


def access_apply(*, source: Source, changes: list[AccessChanged], index, report: IngestReport) -> None:
    """Replace the access lists (and stated places) that differ from what is stored; unknown ids are skipped."""
    documents = {
        document.external_id: document
        for document in Document.objects.filter(
            source=source, external_id__in=[change.external_id for change in changes]
        ).select_related("source").prefetch_related("access")
    }
    for change in changes:
        document = documents.get(change.external_id)
        if document is None:
            continue  # not (yet) indexed: its content sync brings it with its access list
        moved = _place_apply(document, change, index, report)
        stored = {row.principal for row in document.access.all()}
        try:
            wanted = set(principals_for_source(source=source, principals=change.principals))
        except ValueError as error:
            # The source changed who may read it, to something kbsearch cannot store: the old list
            # may be wider than the new one, so nobody keeps access until a valid list comes.
            report.errors.append((change.external_id, f"access list rejected, document hidden: {error}"))
            if stored:
                document_set_access(document=document, principals=(), index=index)
                report.access_updated += 1
            continue
        if stored == wanted:
            report.unchanged += int(not moved)
            continue
        document_set_access(document=document, principals=change.principals, index=index)
        report.access_updated += 1


def _place_apply(document: Document, change: AccessChanged, index, report: IngestReport) -> bool:
    """Move the document to the place the change states, if it states one; True when it changed."""
    if change.place is None:
        return False
    try:
        key, label = place_fields(change.place)
    except InvalidPlace as error:
        report.errors.append((change.external_id, f"place rejected, kept as it was: {error}"))
        return False
    moved = document_set_place(document=document, key=key, label=label, index=index)
    report.place_updated += int(moved)
    return moved


def permissions_apply(*, source: Source, run: SyncRun, items: Iterable, index, report: IngestReport, on_progress=None) -> None:
    """A permission sync: compare every listed access list with the stored one, in batches."""
    batch: list[AccessChanged] = []
    for item in items:
        if isinstance(item, DocumentFailure):
            failure_record(source=source, failure=item, index=index, report=report)
            continue
        if not isinstance(item, AccessChanged):
            raise ConnectorError(f"a permission sync yielded {type(item).__name__}; only access lists belong there")
        batch.append(item)
        if len(batch) >= _ACCESS_BATCH:
            access_apply(source=source, changes=batch, index=index, report=report)
            batch = []
            if on_progress:
                on_progress(items_handled(report))
            if cancel_requested(run):
                raise SyncCancelled()
    if batch:
        access_apply(source=source, changes=batch, index=index, report=report)
