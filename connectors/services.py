"""Syncing a source: pick the connector's cheapest capable path, ingest, prune, record the run.

Paths, cheapest first: a permission sync (access lists only, ``permissions=True``); a cursor
connector's changes since its saved cursor (``connectors.cursor_sync``); a poll of a time window
plus an id listing to find deletions; a full load. Each run is a ``SyncRun`` with counts (added,
changed, removed, access changed, unchanged, failed), per-item errors and the last checkpoint; an
admin can cancel one (``sync_run_cancel``), which stops it at its next checkpoint or batch.

A sync holds the source's lock (``kbsearch.documents.locks``) from start to end, so one source has
one writer at a time, and a run still recorded as ``running`` when the lock is free belonged to a
process that died: it is marked failed. Each run first replays the index work an interrupted run
left in the outbox (``kbsearch.documents.outbox``), then ingests; a full run also checks every
document against what the index really holds and repairs what differs.
"""
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from connectors.base import (
    ConnectorConfigError,
    ConnectorError,
    CursorMixin,
    DocumentFailure,
    FullLoadMixin,
    IdListingMixin,
    LoadItem,
    PermissionSyncMixin,
    PollMixin,
    ResyncRequired,
    get_connector_class,
)
from connectors.cursor_sync import (
    NOTICE_PREFIX,
    SyncCancelled,
    cancel_requested,
    cursor_pass_start,
    cursor_retry_ids,
    cursor_stream_apply,
    failure_record,
    permissions_apply,
)
from connectors.models import SyncRun
from kbsearch.documents import faults
from kbsearch.documents.credentials import source_credentials
from kbsearch.documents.locks import source_lock
from kbsearch.documents.models import Source
from kbsearch.documents.outbox import documents_index_verify, index_changes_replay
from kbsearch.documents.scoping import source_access_rescope
from kbsearch.documents.services import IngestReport, documents_ingest, documents_prune
from kbsearch.index.registry import get_index_backend
from kbsearch.ingest.inputs import DocumentInput
from kbsearch.ops.metrics import sync_run_finished

logger = logging.getLogger(__name__)
# Polling windows overlap by this much so a change written during the previous run is not missed.
_POLL_OVERLAP = timedelta(minutes=5)
# A sync started while another holds the source waits this long, then gives up (SourceBusy).
_LOCK_WAIT_SECONDS = 5.0
_ABANDONED = "abandoned: the process running this sync stopped before it finished"
# A full or poll load checks for a cancellation request this often (items).
_CANCEL_CHECK_ITEMS = 200


class SourceDisabled(RuntimeError):
    """The source is switched off (``enabled=False``); it is not synced until switched on."""


def source_create(*, key: str, name: str, connector: str, config: dict) -> Source:
    """Register a source after checking that its connector accepts the configuration.

    A new source is scheduled with the default intervals (``connectors.schedules``).
    """
    get_connector_class(connector)(config=config)
    with transaction.atomic():
        source, created = Source.objects.update_or_create(
            key=key, defaults={"name": name, "connector": connector, "config": config}
        )
        if created:  # a reconfigured source keeps the schedule its admins may have changed
            from connectors.schedules import source_schedule_set

            source_schedule_set(source=source)
    return source


def _inputs(
    items: Iterable[LoadItem], seen: set[str], report: IngestReport, source: Source, index, run: SyncRun, on_progress
) -> Iterator[DocumentInput]:
    for count, item in enumerate(items, start=1):
        if on_progress:
            on_progress(count)
        if count % _CANCEL_CHECK_ITEMS == 0 and cancel_requested(run):
            raise SyncCancelled()
        seen.add(item.external_id)
        if isinstance(item, DocumentFailure):
            failure_record(source=source, failure=item, index=index, report=report)
            continue
        yield item


def sync_run_cancel(*, run_id: int) -> bool:
    """Ask a running sync to stop at its next checkpoint or batch; False when it is not running."""
    return bool(SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.RUNNING).update(cancel_requested=True))


def source_sync(
    *, source: Source, full: bool = False, permissions: bool = False, encoder=None, index=None, on_progress=None
) -> SyncRun:
    """Bring a source up to date: by cursor, polled, or fully loaded; or only its access lists.

    ``on_progress(items_handled)`` is called as items are read (the command's progress bar). Raises
    ``SourceDisabled`` for a disabled source and ``SourceBusy`` when another process holds it. The run ends ``failed`` when the source failed as a whole (nothing is pruned then),
    ``partial`` when the listing completed but some items failed, else ``succeeded``.

    ``last_synced_at`` (the start of the next poll window) and the connector's state advance only
    when the run completed: the listing succeeded and no item failed in a way a retry could fix.
    Items rejected for their content (no text, binary, too large: ``retryable=False``) do not hold
    them back, since reading them again unchanged gives the same answer and a change to them is one
    the next poll sees. Any other failure keeps the old window, so the next poll reads the failed
    item again however old its modification time; items stored meanwhile cost a hash comparison.
    """
    if not source.enabled:
        raise SourceDisabled(f"source {source.key} is disabled")
    index = index or get_index_backend()
    if encoder is None:
        from embeddings.loading import encoder_for

        encoder = encoder_for(index.serving_metadata())  # the serving generation's model
    with source_lock(source, wait_seconds=_LOCK_WAIT_SECONDS):
        source.refresh_from_db()  # as it is now that we hold it (a deletion may have waited before us)
        if not source.enabled:
            raise SourceDisabled(f"source {source.key} is disabled")
        SyncRun.objects.filter(source=source, status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.FAILED,
            finished_at=timezone.now(),
            errors=[{"external_id": "", "reason": _ABANDONED}],
        )
        connector = get_connector_class(source.connector)(
            config=source.config, state=source.checkpoint, credentials=source_credentials(source)
        )
        if permissions:
            return _permission_run(source, connector, index, on_progress)
        return _run(source, connector, full, encoder, index, on_progress)


def _mode(source: Source, connector, full: bool) -> str:
    if isinstance(connector, CursorMixin):
        return "cursor"
    can_poll = isinstance(connector, PollMixin) and isinstance(connector, IdListingMixin)
    if can_poll and not full and source.last_synced_at:
        return "poll"
    if not isinstance(connector, FullLoadMixin):
        raise ConnectorConfigError(f"connector {source.connector} cannot load a source fully")
    return "full"


def _run(source: Source, connector, full: bool, encoder, index, on_progress) -> SyncRun:
    started = timezone.now()
    mode = _mode(source, connector, full)
    run = SyncRun.objects.create(source=source, mode=mode)
    report = IngestReport()
    seen: set[str] = set()

    def work() -> None:
        report.replayed = index_changes_replay(source_id=source.pk, index=index, encoder=encoder)
        # A mapping created while the source was busy: its documents' names are still unscoped.
        report.access_updated += source_access_rescope(source=source, index=index)
        if mode == "cursor":
            _cursor_work(source, connector, run, full, encoder, index, report, on_progress)
        else:
            if mode == "poll":
                items = connector.poll(start=source.last_synced_at - _POLL_OVERLAP, end=started)
            else:
                items = connector.load_all()
            inputs = _inputs(items, seen, report, source, index, run, on_progress)
            report.merge(documents_ingest(source=source, items=inputs, encoder=encoder, index=index))
            faults.point("connectors.sync.ingested")
            # Prune only after the whole listing succeeded: a partial listing would delete live documents.
            keep = set(connector.list_ids()) if mode == "poll" else seen
            report.deleted += documents_prune(source=source, keep_external_ids=keep, index=index)
        if full:
            report.repaired = documents_index_verify(source=source, index=index, encoder=encoder)

    if not _attempted(run, report, work):
        return run
    if not report.retryable_errors:
        with transaction.atomic():
            Source.objects.filter(pk=source.pk).update(last_synced_at=started, checkpoint=connector.state)
            source.last_synced_at, source.checkpoint = started, connector.state
    _finish(run, SyncRun.Status.PARTIAL if _failed(report) else SyncRun.Status.SUCCEEDED, report)
    return run


def _cursor_work(source: Source, connector, run: SyncRun, full: bool, encoder, index, report: IngestReport,
                 on_progress) -> None:
    """Apply the connector's changes; an expired cursor (``ResyncRequired``) restarts as a full pass.

    What the incremental part committed before the restart stays: the full pass re-reads it (a hash
    comparison each) and, being full, prunes what the expired cursor could no longer report.
    """
    cursor, pass_started = cursor_pass_start(source=source, full=full)
    run.mode = "cursor full" if pass_started else "cursor"
    run.save(update_fields=["mode"])
    retry = cursor_retry_ids(source)
    try:
        cursor_stream_apply(
            source=source, run=run, items=connector.changes(cursor=cursor), pass_started=pass_started,
            encoder=encoder, index=index, report=report, on_progress=on_progress,
            retried=connector.reload(retry) if retry else (),
        )
    except ResyncRequired as resync:
        if pass_started is not None:
            raise ConnectorError(f"the source asked for a resync during a full pass: {resync}") from resync
        logger.warning("%s: %s; restarting as a full pass", source.key, resync)
        cursor, pass_started = cursor_pass_start(source=source, full=True)
        run.mode = "cursor full"
        run.save(update_fields=["mode"])
        cursor_stream_apply(
            source=source, run=run, items=connector.changes(cursor=cursor), pass_started=pass_started,
            encoder=encoder, index=index, report=report, on_progress=on_progress,
        )


def _failed(report: IngestReport) -> bool:
    return any(not reason.startswith(NOTICE_PREFIX) for _external_id, reason in report.errors)


def _permission_run(source: Source, connector, index, on_progress) -> SyncRun:
    if not isinstance(connector, PermissionSyncMixin):
        raise ConnectorConfigError(f"connector {source.connector} cannot sync permissions on their own")
    run = SyncRun.objects.create(source=source, mode="permissions")
    report = IngestReport()

    def work() -> None:
        permissions_apply(
            source=source, run=run, items=connector.access_lists(), index=index, report=report, on_progress=on_progress
        )

    if _attempted(run, report, work):
        _finish(run, SyncRun.Status.PARTIAL if report.errors else SyncRun.Status.SUCCEEDED, report)
    return run


def _attempted(run: SyncRun, report: IngestReport, work) -> bool:
    """Do a run's work: True when it ran to the end; False when cancelled (recorded as such).

    A failure is recorded on the run and raised: the Celery task owns retries.
    """
    try:
        work()
    except SyncCancelled:
        _finish(run, SyncRun.Status.CANCELLED, report)
        return False
    except Exception as error:
        logger.exception("%s sync of %s failed", run.mode, run.source.key)
        report.errors.append(("", f"sync failed: {error}"))
        _finish(run, SyncRun.Status.FAILED, report)
        raise
    return True


def sync_counts(report: IngestReport) -> dict[str, int]:
    """A run's counts: the admin's headline figures first, then the details."""
    counts = asdict(report)
    counts.pop("errors")
    return {
        "added": report.created,
        "changed": report.updated,
        "removed": report.deleted,
        "failed": len([1 for external_id, reason in report.errors if external_id and not reason.startswith(NOTICE_PREFIX)]),
        **counts,
    }


def _finish(run: SyncRun, status: str, report: IngestReport) -> None:
    counts = sync_counts(report)
    run.status = status
    run.counts = counts
    run.errors = [{"external_id": external_id, "reason": reason} for external_id, reason in report.errors]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "counts", "errors", "finished_at"])
    sync_run_finished(status=status)  # the Prometheus counter (kbsearch.ops.metrics)
