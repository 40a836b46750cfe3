"""Beat's shutdown when SIGTERM lands inside a database query (kbsearch.liveness).

Celery saves the schedule from its SIGTERM handler. In a CI run beat got the signal while
django-celery-beat was reading the schedule's change stamp; the save then waited for the psycopg
connection the interrupted read still held, and beat hung until SIGKILL. Here the read is held
open on purpose: another connection locks the stamp's table, the test waits until beat's query is
seen waiting on that lock in pg_stat_activity, and only then sends SIGTERM.
"""
import os
import signal
import time

import psycopg
import pytest
import redis
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tests.celery_processes import EXIT_SECONDS, celery_start, redis_broker_url, shared_database_url

QUEUE = "beat-shutdown-test"  # consumed by nobody: beat only has to send
STAMP_TABLE = "django_celery_beat_periodictasks"


def _wait_for(condition, what: str, log, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds:.0f} s; beat's log ends:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def _beat_waits_on_the_lock(blocker: psycopg.Connection) -> bool:
    waiting = blocker.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND wait_event_type = 'Lock' AND query LIKE %s", (f"%{STAMP_TABLE}%",),
    ).fetchone()[0]
    return waiting > 0


@pytest.mark.django_db(transaction=True)
def test_beat_exits_promptly_when_sigterm_interrupts_a_query(tmp_path):
    broker = redis_broker_url()
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    # A due entry gives beat unsaved last-run times, which is what its shutdown tries to save. Beat
    # saves right after its first send and then only every few minutes, so from the second send on
    # there is something to save.
    PeriodicTask.objects.create(name="due-every-second", task="kbsearch.tests.nothing", interval=every_second,
                                queue=QUEUE)
    env = {**os.environ, "DATABASE_URL": shared_database_url(), "KBSEARCH_BROKER_URL": broker,
           "KBSEARCH_VAR_DIR": str(tmp_path / "var"), "KBSEARCH_SECRET_KEY": "beat-shutdown-test-" * 3,
           "KBSEARCH_HEARTBEAT_FILE": str(tmp_path / "heartbeat")}
    log = tmp_path / "beat.log"
    beat = celery_start(["beat", "--loglevel", "INFO", "--max-interval", "1"], env, log)
    try:
        _wait_for(lambda: log.read_text().count("Sending due task due-every-second") >= 2,
                  "beat did not send the task twice", log)
        with psycopg.connect(shared_database_url()) as blocker:
            blocker.execute(f"LOCK TABLE {STAMP_TABLE} IN ACCESS EXCLUSIVE MODE")
            _wait_for(lambda: _beat_waits_on_the_lock(blocker), "beat's query never waited on the lock", log)
            beat.send_signal(signal.SIGTERM)
            beat.wait(timeout=EXIT_SECONDS)  # before the fix: TimeoutExpired, beat deadlocked
            blocker.rollback()
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
        redis.Redis.from_url(broker).delete(QUEUE)

    output = log.read_text()
    assert "schedule not saved on shutdown: the signal interrupted a database query" in output
    assert (tmp_path / "heartbeat").exists()  # the project's scheduler ran, with its heartbeat
