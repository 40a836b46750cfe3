"""Syncing a source: pick the connector's cheapest capable path, ingest, prune, record the run."""
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
from kbsearch.documents.models import Document, Source
from kbsearch.documents.services import IngestReport, document_set_access, documents_ingest, documents_prune
from kbsearch.ingest.inputs import DocumentInput

logger = logging.getLogger(__name__)
# Polling windows overlap by this much so a change written during the previous run is not missed.
_POLL_OVERLAP = timedelta(minutes=5)


def source_create(*, key: str, name: str, connector: str, config: dict) -> Source:
    """Register a source after checking that its connector accepts the configuration."""
    get_connector_class(connector)(config=config)
    source, _created = Source.objects.update_or_create(
        key=key, defaults={"name": name, "connector": connector, "config": config}
    )
    return source


def _inputs(items: Iterable[LoadItem], seen: set[str], report: IngestReport, source: Source) -> Iterator[DocumentInput]:
    for item in items:
        seen.add(item.external_id)
        if isinstance(item, DocumentFailure):
            report.errors.append((item.external_id, item.reason))
            if item.revoke_access:
                document = Document.objects.filter(source=source, external_id=item.external_id).first()
                if document is not None:
                    document_set_access(document=document, principals=())
            continue
        yield item


def source_sync(*, source: Source, full: bool = False, encoder=None, index=None) -> SyncRun:
    """Bring a source up to date: polled if it can be and was synced before, else fully loaded."""
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
        if mode == "poll":
            items = connector.poll(start=source.last_synced_at - _POLL_OVERLAP, end=started)
        else:
            items = connector.load_all()
        report.merge(
            documents_ingest(
                source=source, items=_inputs(items, seen, report, source), encoder=encoder, index=index
            )
        )
        # Prune only after the whole listing succeeded: a partial listing would delete live documents.
        keep = set(connector.list_ids()) if mode == "poll" else seen
        report.deleted += documents_prune(source=source, keep_external_ids=keep, index=index)
    except Exception as error:
        logger.exception("sync of %s failed", source.key)
        report.errors.append(("", f"sync failed: {error}"))
        _finish(run, SyncRun.Status.FAILED, report)
        raise
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
