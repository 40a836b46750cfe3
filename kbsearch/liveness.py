"""Liveness of Celery processes as a heartbeat file, for Kubernetes exec probes (helm/kbsearch).

A worker touches the file from its own event loop (a timer of the worker's consumer), and beat from
each scheduler tick, so the file goes stale exactly when the process stops doing its job: a hung
event loop, a deadlocked scheduler. Chosen over ``celery inspect ping``, which restarts every
worker while the broker is briefly down (the ping goes through the broker) and costs a full Celery
start per probe. The probe is ``python -m kbsearch.liveness [MAX_AGE_SECONDS]``: exit 0 when the
file was touched within that many seconds, 1 otherwise, with the reason on stderr.

The path is ``KBSEARCH_HEARTBEAT_FILE`` (default ``/tmp/kbsearch-heartbeat``); the chart mounts an
emptyDir at /tmp, so the file is per pod and gone with it.

The same scheduler (the project's ``CELERY_BEAT_SCHEDULER``) also makes beat's shutdown safe: Celery
saves the schedule from its SIGTERM handler, and when the signal lands mid-query that save would
wait forever for the database connection the interrupted query still holds.
"""
import logging
import os
import sys
import time
from pathlib import Path

from celery import bootsteps

HEARTBEAT_FILE_ENV = "KBSEARCH_HEARTBEAT_FILE"
DEFAULT_HEARTBEAT_FILE = "/tmp/kbsearch-heartbeat"
HEARTBEAT_INTERVAL_SECONDS = 10.0
DEFAULT_MAX_AGE_SECONDS = 60.0

logger = logging.getLogger(__name__)


def heartbeat_path() -> Path:
    return Path(os.environ.get(HEARTBEAT_FILE_ENV, "") or DEFAULT_HEARTBEAT_FILE)


def heartbeat_touch(path: Path | None = None) -> None:
    target = path or heartbeat_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch()
    os.utime(target)  # touch() keeps the old mtime on some filesystems when the file exists


def heartbeat_age(path: Path | None = None, *, now: float | None = None) -> float | None:
    """Seconds since the last heartbeat, or None when there has been none."""
    try:
        modified = (path or heartbeat_path()).stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - modified


class WorkerHeartbeat(bootsteps.StartStopStep):
    """A worker bootstep: touch the heartbeat file every few seconds from the worker's timer."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self._entry = None

    def start(self, worker) -> None:
        heartbeat_touch()
        self._entry = worker.timer.call_repeatedly(HEARTBEAT_INTERVAL_SECONDS, heartbeat_touch)

    def stop(self, worker) -> None:
        if self._entry is not None:
            self._entry.cancel()
            self._entry = None


def database_connection_busy() -> bool:
    """Whether Django's default connection is inside a query (psycopg 3 holds its lock meanwhile).

    Beat is single-threaded, so a held lock seen from a signal handler belongs to the query the
    signal interrupted: waiting for it would wait forever.
    """
    from django.db import connection

    lock = getattr(connection.connection, "lock", None)  # None before the first query
    return lock is not None and lock.locked()


def _database_scheduler_class():
    # django_celery_beat's models need Django set up: imported only when beat builds its scheduler.
    from django_celery_beat.schedulers import DatabaseScheduler

    class HeartbeatDatabaseScheduler(DatabaseScheduler):
        """django-celery-beat's DatabaseScheduler that touches the heartbeat file on each tick and
        skips a save that would deadlock."""

        def tick(self, *args, **kwargs):
            heartbeat_touch()
            return super().tick(*args, **kwargs)

        def sync(self):
            # Celery's SIGTERM handler calls sync() wherever the main thread was. If that was inside
            # a query, the save would block on the connection's lock for good (seen in CI: beat hung
            # until SIGKILL). What is skipped is only the last-run times of entries that ran since
            # the last save, so after a restart an entry may run once early; syncs are idempotent.
            if database_connection_busy():
                logger.warning("beat: schedule not saved on shutdown: the signal interrupted a database "
                               "query on the same connection, and saving would wait for it forever")
                return
            super().sync()

    return HeartbeatDatabaseScheduler


def __getattr__(name: str):
    # ``celery beat -S kbsearch.liveness:HeartbeatDatabaseScheduler`` resolves the class lazily.
    if name == "HeartbeatDatabaseScheduler":
        return _database_scheduler_class()
    raise AttributeError(name)


def main(argv: list[str]) -> int:
    max_age = float(argv[0]) if argv else DEFAULT_MAX_AGE_SECONDS
    path = heartbeat_path()
    age = heartbeat_age(path)
    if age is None:
        print(f"no heartbeat at {path}", file=sys.stderr)
        return 1
    if age > max_age:
        print(f"heartbeat {path} is {age:.0f} s old (limit {max_age:.0f} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
