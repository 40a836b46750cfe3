"""Syncing a source: pick the connector's cheapest capable path, ingest, prune, record the run.

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
    DocumentFailure,
    FullLoadMixin,
    IdListingMixin,
    LoadItem,
    PollMixin,
    get_connector_class,
)
from connectors.models import SyncRun
from kbsearch.documents import faults
from kbsearch.documents.locks import source_lock
from kbsearch.documents.models import Document, Source
from kbsearch.documents.outbox import documents_index_verify, index_changes_replay
from kbsearch.documents.scoping import source_access_rescope
from kbsearch.documents.services import IngestReport, document_set_access, documents_ingest, documents_prune
from kbsearch.index.registry import get_index_backend
from kbsearch.ingest.inputs import DocumentInput

logger = logging.getLogger(__name__)
# Polling windows overlap by this much so a change written during the previous run is not missed.
_POLL_OVERLAP = timedelta(minutes=5)
# A sync started while another holds the source waits this long, then gives up (SourceBusy).
_LOCK_WAIT_SECONDS = 5.0
_ABANDONED = "abandoned: the process running this sync stopped before it finished"


class SourceDisabled(RuntimeError):
    """The source is switched off (``enabled=False``); it is not synced until switched on."""


def source_create(*, key: str, name: str, connector: str, config: dict) -> Source:
    """Register a source after checking that its connector accepts the configuration."""
    get_connector_class(connector)(config=config)
    source, _created = Source.objects.update_or_create(
        key=key, defaults={"name": name, "connector": connector, "config": config}
    )
    return source


def _inputs(items: Iterable[LoadItem], seen: set[str], report: IngestReport, source: Source, index) -> Iterator[DocumentInput]:
    for item in items:
        seen.add(item.external_id)
        if isinstance(item, DocumentFailure):
            report.errors.append((item.external_id, item.reason))
            report.retryable_errors += int(item.retryable)
            if item.revoke_access:
                document = Document.objects.filter(source=source, external_id=item.external_id).first()
                if document is not None and document.access.exists():
                    document_set_access(document=document, principals=(), index=index)
            continue
        yield item


def source_sync(*, source: Source, full: bool = False, encoder=None, index=None) -> SyncRun:
    """Bring a source up to date: polled if it can be and was synced before, else fully loaded.

    Raises ``SourceDisabled`` for a disabled source and ``SourceBusy`` when another process holds
    it. The run ends ``failed`` when the source failed as a whole (nothing is pruned then),
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
        from embeddings.loading import get_encoder

        encoder = get_encoder()
    with source_lock(source, wait_seconds=_LOCK_WAIT_SECONDS):
        source.refresh_from_db()  # as it is now that we hold it (a deletion may have waited before us)
        if not source.enabled:
            raise SourceDisabled(f"source {source.key} is disabled")
        SyncRun.objects.filter(source=source, status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.FAILED,
            finished_at=timezone.now(),
            errors=[{"external_id": "", "reason": _ABANDONED}],
        )
        return _run(source, full, encoder, index)


def _run(source: Source, full: bool, encoder, index) -> SyncRun:
    connector = get_connector_class(source.connector)(config=source.config, state=source.checkpoint)
    started = timezone.now()
    can_poll = isinstance(connector, PollMixin) and isinstance(connector, IdListingMixin)
    mode = "poll" if (can_poll and not full and source.last_synced_at) else "full"
    if mode == "full" and not isinstance(connector, FullLoadMixin):
        raise ConnectorConfigError(f"connector {source.connector} cannot load a source fully")
    run = SyncRun.objects.create(source=source, mode=mode)
    report = IngestReport()
    seen: set[str] = set()
    try:
        report.replayed = index_changes_replay(source_id=source.pk, index=index, encoder=encoder)
        # A mapping created while the source was busy: its documents' names are still unscoped.
        report.access_updated += source_access_rescope(source=source, index=index)
        if mode == "poll":
            items = connector.poll(start=source.last_synced_at - _POLL_OVERLAP, end=started)
        else:
            items = connector.load_all()
        report.merge(
            documents_ingest(
                source=source, items=_inputs(items, seen, report, source, index), encoder=encoder, index=index
            )
        )
        faults.point("connectors.sync.ingested")
        # Prune only after the whole listing succeeded: a partial listing would delete live documents.
        keep = set(connector.list_ids()) if mode == "poll" else seen
        report.deleted += documents_prune(source=source, keep_external_ids=keep, index=index)
        if mode == "full":
            report.repaired = documents_index_verify(source=source, index=index, encoder=encoder)
    except Exception as error:
        logger.exception("sync of %s failed", source.key)
        report.errors.append(("", f"sync failed: {error}"))
        _finish(run, SyncRun.Status.FAILED, report)
        raise
    if not report.retryable_errors:
        with transaction.atomic():
            Source.objects.filter(pk=source.pk).update(last_synced_at=started, checkpoint=connector.state)
            source.last_synced_at, source.checkpoint = started, connector.state
    _finish(run, SyncRun.Status.PARTIAL if report.errors else SyncRun.Status.SUCCEEDED, report)
    return run


def _finish(run: SyncRun, status: str, report: IngestReport) -> None:
    counts = asdict(report)
    counts.pop("errors")
    run.status = status
    run.counts = counts
    run.errors = [{"external_id": external_id, "reason": reason} for external_id, reason in report.errors]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "counts", "errors", "finished_at"])
