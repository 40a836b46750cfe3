"""Celery tasks for syncing sources: thin wrappers that take ids and own retries."""
import logging

from celery import shared_task
from django.db import transaction

from connectors.base import ConnectorError
from connectors.services import SourceDisabled, source_sync
from kbsearch.documents.locks import SourceBusy
from kbsearch.documents.models import Source

logger = logging.getLogger(__name__)


@shared_task(
    bind=True, autoretry_for=(ConnectorError, SourceBusy), retry_backoff=60, retry_backoff_max=3600, max_retries=5
)
def sync_source_task(self, source_id: int, full: bool = False, permissions: bool = False) -> int | None:
    source = Source.objects.filter(pk=source_id).first()
    if source is None or not source.enabled:
        # Deleted or switched off after this was queued: nothing to do, and nothing to retry.
        logger.info("not syncing source %s: %s", source_id, "deleted" if source is None else "disabled")
        return None
    try:
        run = source_sync(source=source, full=full, permissions=permissions)
    except SourceDisabled:
        logger.info("not syncing source %s: disabled while queued", source.key)
        return None
    return run.pk


def enqueue_source_sync(*, source: Source, full: bool = False, permissions: bool = False) -> None:
    """Queue a sync once the surrounding transaction commits (the worker must see the source)."""
    transaction.on_commit(lambda: sync_source_task.delay(source.pk, full, permissions))
