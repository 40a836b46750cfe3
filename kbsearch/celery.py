"""The Celery app. Without a broker URL (the embedded default) tasks run inline."""
import os

from celery import Celery

from kbsearch.liveness import WorkerHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
# Idle OpenMP threads must sleep, not spin: spinning starves the other core (see embeddings/).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = Celery("kbsearch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# A heartbeat file for the Kubernetes liveness probe of workers (kbsearch.liveness explains why).
app.steps["worker"].add(WorkerHeartbeat)

# Index work left in the outbox by an interrupted run is also replayed by every sync of its source;
# this covers sources that are rarely synced (and deleted ones), within minutes.
INDEX_REPLAY_INTERVAL_SECONDS = 300.0
# Directories: an incremental sync this often (a full one when a directory's full_sync_interval has
# passed), so a membership removed in the directory stops granting access within minutes.
DIRECTORY_SYNC_INTERVAL_SECONDS = 300.0
# The consistency check (database against index, with repair) once a day.
INDEX_CHECK_INTERVAL_SECONDS = 24 * 3600.0
# Audit events past KBSEARCH_AUDIT_RETENTION_DAYS are deleted once a day.
AUDIT_PRUNE_INTERVAL_SECONDS = 24 * 3600.0


@app.on_after_configure.connect
def _schedule_periodic_tasks(sender, **_kwargs) -> None:
    sender.add_periodic_task(
        INDEX_REPLAY_INTERVAL_SECONDS,
        sender.signature("kbsearch.documents.tasks.index_changes_replay_task"),
        name="replay pending index changes",
    )
    sender.add_periodic_task(
        DIRECTORY_SYNC_INTERVAL_SECONDS,
        sender.signature("access.tasks.directories_sync_due_task"),
        name="sync directories",
    )
    sender.add_periodic_task(
        INDEX_CHECK_INTERVAL_SECONDS,
        sender.signature("kbsearch.documents.tasks.index_check_task"),
        name="check the index against the database",
    )
    sender.add_periodic_task(
        AUDIT_PRUNE_INTERVAL_SECONDS,
        sender.signature("access.tasks.audit_events_prune_task"),
        name="prune audit events",
    )
