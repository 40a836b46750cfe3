"""A scheduled sync end to end: Celery beat reads the schedule from the database, a separate worker
process on the ``sync`` queue takes the task from a real Redis broker and syncs the source."""
import os
import time
from datetime import timedelta

import pytest
import redis
from django_celery_beat.models import PeriodicTask

from connectors.models import SyncRun
from connectors.schedules import source_schedule, source_schedule_set
from connectors.services import source_create
from kbsearch.documents.models import Document, Source
from tests.celery_processes import celery_running, celery_start, redis_broker_url, shared_database_url
from tests.connectors.sync_state import SHARE, make_share


@pytest.mark.django_db(transaction=True)
def test_beat_and_a_worker_process_run_a_scheduled_sync_through_redis(tmp_path, tiny_model_dir):
    broker = redis_broker_url()
    redis.Redis.from_url(broker).delete("sync")  # nothing left over from another test
    share = make_share(tmp_path / "share")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})
    assert source_schedule(source)["content"].interval.every == 15 * 60  # the default schedule
    assert source_schedule(source)["permissions"] is None  # the file share has no permission-only sync
    assert source_schedule(source)["full"] is None  # nor a cursor: each content sync lists every file
    source_schedule_set(source=source, content_every=timedelta(seconds=1))

    env = {
        **os.environ,
        "DATABASE_URL": shared_database_url(),
        "KBSEARCH_BROKER_URL": broker,
        "KBSEARCH_VAR_DIR": str(tmp_path / "var"),
        "KBSEARCH_INDEX_PATH": str(tmp_path / "index" / "embedded.sqlite3"),
        "KBSEARCH_EMBEDDING_MODEL": str(tiny_model_dir),
        "KBSEARCH_SECRET_KEY": "scheduled-sync-test-" * 3,
    }
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    worker = celery_start(["worker", "-Q", "sync", "--pool", "solo", "--loglevel", "INFO"], env, worker_log)
    beat = celery_start(["beat", "--loglevel", "INFO", "--max-interval", "1"], env, beat_log)
    with celery_running({beat_log: beat, worker_log: worker}):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if SyncRun.objects.filter(source=source, status=SyncRun.Status.SUCCEEDED).exists():
                break
            assert worker.poll() is None and beat.poll() is None, "a Celery process died: see the logs in tmp_path"
            time.sleep(0.5)
        else:
            pytest.fail("no scheduled sync succeeded within 120 s:\n" + worker_log.read_text()[-3000:])

    expected = {name for name in SHARE if not name.endswith("_access.yaml")}
    assert set(Document.objects.filter(source=source).values_list("external_id", flat=True)) == expected
    assert "connectors.tasks.sync_source_task" in (tmp_path / "worker.log").read_text()
    Source.objects.filter(pk=source.pk).delete()
    assert not PeriodicTask.objects.filter(name__contains="share").exists()  # the schedule goes with it
