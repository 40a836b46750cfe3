"""The sync task through a real Redis broker and an in-process Celery worker on the sync queue."""
import os
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction

from connectors.models import SyncRun
from connectors.services import source_create
from connectors.tasks import enqueue_source_sync
from kbsearch.celery import app
from kbsearch.documents.models import Document


def _reset_connection_pool() -> None:
    # The pool was built for the previous broker URL; Celery builds a new one on next use.
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    # The producer pool wraps the connection pool it was built on (an eager .delay builds it too).
    app.amqp._producer_pool = None


@pytest.fixture
def redis_celery():
    url = os.environ.get("KBSEARCH_TEST_REDIS_URL")
    if not url:
        pytest.fail("KBSEARCH_TEST_REDIS_URL is unset: run the tests through scripts/with-test-services.sh")
    saved = {key: app.conf.get(key) for key in ("broker_url", "result_backend", "task_always_eager")}
    app.conf.update(broker_url=url, result_backend=url, task_always_eager=False)
    _reset_connection_pool()
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("sync")
    with start_worker(app, pool="threads", concurrency=1, queues=["sync", "celery"], perform_ping_check=False):
        yield app
    app.conf.update(saved)
    _reset_connection_pool()


@pytest.mark.django_db(transaction=True)
def test_sync_is_enqueued_on_commit_and_run_by_a_worker(redis_celery, tmp_path, index_backend):
    root = tmp_path / "share"
    root.mkdir()
    (root / "_access.yaml").write_text("principals: [public]\n")
    (root / "note.md").write_text("# Note\n\nQueued through Redis.\n")
    with transaction.atomic():
        source = source_create(key="queued", name="Queued", connector="filesystem", config={"root": str(root)})
        enqueue_source_sync(source=source)
        assert not SyncRun.objects.exists()  # nothing runs before the commit
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = SyncRun.objects.filter(source=source).exclude(status=SyncRun.Status.RUNNING).first()
        if run is not None:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the worker did not finish the sync within 60 s")
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert Document.objects.filter(source=source, external_id="note.md").exists()
