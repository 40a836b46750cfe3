"""A re-embed whose worker died is failed by the next request instead of blocking re-embeds for
good; one whose worker is alive (it holds the run's lock) is left alone."""
import threading
import time

import pytest
from django.db import connection

from access.liveness import run_is_alive, run_lock_try
from kbsearch.documents.generations import ABANDONED, ReembedBusy, index_reembed_start
from kbsearch.documents.models import ReembedRun

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 20


def _hold_lock(run_id: int, held: threading.Event, release_now: threading.Event) -> None:
    release = run_lock_try(run_id, kind="reembed")
    assert release is not None
    held.set()
    release_now.wait(WAIT)
    connection.close()  # the worker dies: its session ends without unlocking


def test_a_running_reembed_with_no_live_worker_is_failed_and_no_longer_blocks(index_backend):
    dead = ReembedRun.objects.create(model_spec="some-model", status=ReembedRun.Status.RUNNING)
    fresh = index_reembed_start(model_spec="another-model", enqueue=False)
    dead.refresh_from_db()
    assert (dead.status, dead.error) == (ReembedRun.Status.FAILED, ABANDONED)
    assert fresh.status == ReembedRun.Status.QUEUED


def test_a_running_reembed_whose_worker_is_alive_still_blocks(index_backend):
    live = ReembedRun.objects.create(model_spec="some-model", status=ReembedRun.Status.RUNNING)
    held, die = threading.Event(), threading.Event()
    worker = threading.Thread(target=_hold_lock, args=(live.pk, held, die))
    worker.start()
    try:
        assert held.wait(WAIT)
        with pytest.raises(ReembedBusy):
            index_reembed_start(model_spec="another-model", enqueue=False)
        live.refresh_from_db()
        assert live.status == ReembedRun.Status.RUNNING
    finally:
        die.set()
        worker.join(WAIT)
    # PostgreSQL frees a closed session's advisory locks when its backend process exits, a moment
    # after the disconnect; the next request must not be asked before that has happened.
    deadline = time.monotonic() + WAIT
    while run_is_alive(live.pk, kind="reembed") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not run_is_alive(live.pk, kind="reembed")
    index_reembed_start(model_spec="another-model", enqueue=False)  # the worker died: now it goes
    live.refresh_from_db()
    assert live.status == ReembedRun.Status.FAILED
