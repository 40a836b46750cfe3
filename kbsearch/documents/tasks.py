"""Celery tasks of the documents app: thin wrappers around services."""
from celery import shared_task

from kbsearch.documents.outbox import index_changes_replay_all
from kbsearch.index.registry import get_index_backend


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=60, max_retries=3)
def index_changes_replay_task() -> int:
    """Apply index work left pending by interrupted runs (scheduled in ``kbsearch.celery``)."""
    return index_changes_replay_all(index=get_index_backend())
