"""Celery tasks of the relevance loop: thin wrappers around services.

Routing (``CELERY_TASK_ROUTES``): the ``train`` queue, served by one worker with concurrency 1
(training takes every core it gets); the reconcile after a promotion goes to ``sync``, so a
promotion is marked done without waiting behind a training run. A promotion's re-embed itself is
the documents app's task on the ``embed`` queue, chained to the reconcile.
"""
from celery import chain, shared_task
from django.db import OperationalError

from kbsearch.documents.tasks import index_reembed_task
from kbsearch.relevance.models import ModelVersion
from kbsearch.relevance.registry import model_version_evaluate, model_versions_reconcile
from kbsearch.relevance.training_runs import training_run_execute


# A lost database connection before the run is claimed is worth a retry; after that the run is
# marked failed and a retry finds it not queued and returns.
@shared_task(autoretry_for=(OperationalError, ConnectionError), retry_backoff=60, max_retries=3)
def training_run_task(run_id: int) -> str:
    """Train and gate one ``TrainingRun`` (queued by ``training_run_start``)."""
    return training_run_execute(run_id=run_id).status


@shared_task(autoretry_for=(OperationalError, ConnectionError), retry_backoff=60, max_retries=3)
def model_version_evaluate_task(version_id: int) -> bool | None:
    """Run the evaluation gate for one model version again (against the model serving now)."""
    return model_version_evaluate(version=ModelVersion.objects.get(pk=version_id)).gate_passed


@shared_task(autoretry_for=(OperationalError, ConnectionError), retry_backoff=10, max_retries=5)
def model_versions_reconcile_task() -> str | None:
    """Make model versions' statuses follow the serving generation (after a promotion's switch)."""
    version = model_versions_reconcile()
    return version.name if version is not None else None


def promotion_enqueue(reembed_run_id: int) -> None:
    """Queue a promotion: the re-embed (``embed`` queue), then the reconcile once it switched."""
    chain(index_reembed_task.si(reembed_run_id), model_versions_reconcile_task.si()).delay()
