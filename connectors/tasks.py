"""Celery tasks for syncing sources: thin wrappers that take ids and own retries."""
from celery import shared_task
from django.db import transaction

from connectors.base import ConnectorError
from connectors.services import source_sync
from kbsearch.documents.models import Source


@shared_task(bind=True, autoretry_for=(ConnectorError,), retry_backoff=60, retry_backoff_max=3600, max_retries=5)
def sync_source_task(self, source_id: int, full: bool = False) -> int:
    source = Source.objects.get(pk=source_id, enabled=True)
    run = source_sync(source=source, full=full)
    return run.pk


def enqueue_source_sync(*, source: Source, full: bool = False) -> None:
    """Queue a sync once the surrounding transaction commits (the worker must see the source)."""
    transaction.on_commit(lambda: sync_source_task.delay(source.pk, full))
