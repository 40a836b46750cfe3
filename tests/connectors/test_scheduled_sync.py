"""A scheduled sync end to end: Celery beat reads the schedule from the database, a separate worker
process on the ``sync`` queue takes the task from a real Redis broker and syncs the source."""
import os
import subprocess
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django_celery_beat.models import PeriodicTask

from connectors.models import SyncRun
from connectors.schedules import source_schedule, source_schedule_set
from connectors.services import source_create
from kbsearch.documents.models import Document, Source
from tests.connectors.sync_state import SHARE, make_share

BASE_DIR = Path(settings.BASE_DIR)


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.fail("this test shares its database with worker processes: run it on PostgreSQL (make test does)")
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _celery(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "kbsearch", *args],
        cwd=BASE_DIR, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


def _stop(process: subprocess.Popen, log: Path) -> None:
    """SIGTERM, then SIGKILL after 30 s, so a stuck process cannot hide the test's verdict.

    A slow exit is reported as a warning with the log's end. Seen once (a CI run on 2026-11-23):
    SIGTERM landed while beat was inside a database query; celery's shutdown handler then saved the
    schedule on the same psycopg connection, whose lock the interrupted query still held, and beat
    deadlocked (py-spy: DatabaseScheduler.sync under Cursor.execute). Left alive, it kept the
    test database open and the next run could not create it.
    """
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
        warnings.warn(f"{' '.join(process.args[3:5])} did not exit within 30 s of SIGTERM; killed. "
                      f"Its log ends:\n{log.read_text()[-1500:]}", stacklevel=2)


@pytest.mark.django_db(transaction=True)
def test_beat_and_a_worker_process_run_a_scheduled_sync_through_redis(tmp_path, tiny_model_dir):
    broker = os.environ.get("KBSEARCH_TEST_REDIS_URL")
    if not broker:
        pytest.fail("KBSEARCH_TEST_REDIS_URL is unset: run the tests through scripts/with-test-services.sh")
    redis.Redis.from_url(broker).delete("sync")  # nothing left over from another test
    share = make_share(tmp_path / "share")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})
    assert source_schedule(source)["content"].interval.every == 15 * 60  # the default schedule
    assert source_schedule(source)["permissions"] is None  # the file share has no permission-only sync
    assert source_schedule(source)["full"] is None  # nor a cursor: each content sync lists every file
    source_schedule_set(source=source, content_every=timedelta(seconds=1))

    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "KBSEARCH_BROKER_URL": broker,
        "KBSEARCH_VAR_DIR": str(tmp_path / "var"),
        "KBSEARCH_INDEX_PATH": str(tmp_path / "index" / "embedded.sqlite3"),
        "KBSEARCH_EMBEDDING_MODEL": str(tiny_model_dir),
        "KBSEARCH_SECRET_KEY": "scheduled-sync-test-" * 3,
    }
    worker = _celery(["worker", "-Q", "sync", "--pool", "solo", "--loglevel", "INFO"], env, tmp_path / "worker.log")
    beat = _celery(["beat", "--loglevel", "INFO", "--max-interval", "1"], env, tmp_path / "beat.log")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if SyncRun.objects.filter(source=source, status=SyncRun.Status.SUCCEEDED).exists():
                break
            assert worker.poll() is None and beat.poll() is None, "a Celery process died: see the logs in tmp_path"
            time.sleep(0.5)
        else:
            pytest.fail("no scheduled sync succeeded within 120 s:\n" + (tmp_path / "worker.log").read_text()[-3000:])
    finally:
        _stop(beat, tmp_path / "beat.log")
        _stop(worker, tmp_path / "worker.log")

    expected = {name for name in SHARE if not name.endswith("_access.yaml")}
    assert set(Document.objects.filter(source=source).values_list("external_id", flat=True)) == expected
    assert "connectors.tasks.sync_source_task" in (tmp_path / "worker.log").read_text()
    Source.objects.filter(pk=source.pk).delete()
    assert not PeriodicTask.objects.filter(name__contains="share").exists()  # the schedule goes with it
