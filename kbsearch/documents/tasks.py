"""Celery tasks of the documents app: thin wrappers around services.

Routing (``CELERY_TASK_ROUTES``): these go to the ``sync`` queue, except the re-embed, which takes
the ``embed`` queue so hours of encoding never hold up syncs.
"""
from celery import shared_task

from kbsearch.documents.consistency import index_check_and_repair
from kbsearch.documents.generations import index_reembed_execute
from kbsearch.documents.outbox import index_changes_replay_all
from kbsearch.index.registry import get_index_backend


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=60, max_retries=3)
def index_changes_replay_task() -> int:
    """Apply index work left pending by interrupted runs (scheduled in ``kbsearch.celery``)."""
    return index_changes_replay_all(index=get_index_backend())


@shared_task
def index_reembed_task(run_id: int) -> str:
    """Build the generation of one ``ReembedRun`` (queued by ``index_reembed_start``)."""
    return index_reembed_execute(run_id=run_id).status


@shared_task
def index_check_task() -> int:
    """Compare the database and the index and repair drift (daily, ``kbsearch.celery``)."""
    return index_check_and_repair().drifted
