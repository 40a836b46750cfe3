"""Celery tasks for directory syncs (queue ``sync``): thin wrappers that take ids and own retries.

``directories_sync_due_task`` runs on a schedule (``kbsearch.celery``): it queues a full sync of
each enabled directory whose last full sync is older than its ``full_sync_interval`` (the full run
also re-reads what an incremental one cannot see), and an incremental sync of the others.
``audit_events_prune_task`` runs daily and deletes audit events past their retention.
"""
import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from access.audit import audit_events_prune
from access.directory.client import DirectoryUnavailable
from access.models import Directory
from access.services import directory_sync

logger = logging.getLogger(__name__)


@shared_task(bind=True, autoretry_for=(DirectoryUnavailable,), retry_backoff=60, retry_backoff_max=1800, max_retries=5)
def directory_sync_task(self, directory_id: int, full: bool = False) -> int | None:
    directory = Directory.objects.filter(pk=directory_id, enabled=True).first()
    if directory is None:
        logger.info("not syncing directory %s: deleted or disabled", directory_id)
        return None
    return directory_sync(directory=directory, full=full).pk


@shared_task
def directories_sync_due_task() -> int:
    """Queue a sync of every enabled directory; returns how many were queued."""
    now = timezone.now()
    queued = 0
    for directory in Directory.objects.filter(enabled=True):
        full = directory.last_full_success_at is None or now - directory.last_full_success_at >= directory.full_sync_interval
        directory_sync_task.delay(directory.pk, full)
        queued += 1
    return queued


def enqueue_directory_sync(*, directory: Directory, full: bool = False) -> None:
    """Queue a sync once the surrounding transaction commits (the worker must see the directory)."""
    transaction.on_commit(lambda: directory_sync_task.delay(directory.pk, full))


@shared_task
def audit_events_prune_task() -> int:
    """Delete audit events older than ``KBSEARCH_AUDIT_RETENTION_DAYS`` (daily, ``kbsearch.celery``)."""
    deleted = audit_events_prune()
    logger.info("pruned %d audit events past their retention", deleted)
    return deleted
