"""One training run at a time: a second is refused while one is queued or running; a run whose
worker died is failed by the next request instead of blocking training for good; a run another
live process holds is left to it. And the Celery task runs a queued run (inline without a broker)."""
import threading
import time

import pytest
from django.db import connection

from access.liveness import run_is_alive, run_lock_try
from embeddings.loading import clear_encoder_cache
from kbsearch.relevance.models import TrainingRun
from kbsearch.relevance.training_runs import ABANDONED, TrainingBusy, training_run_execute, training_run_start
from tests.relevance.training_fixtures import TINY_PARAMS, relevance_settings, write_snapshot  # noqa: F401

WAIT = 20
pytestmark = pytest.mark.usefixtures("relevance_settings")


def _hold_lock(run_id: int, held: threading.Event, die: threading.Event) -> None:
    release = run_lock_try(run_id, kind="train")
    assert release is not None
    held.set()
    die.wait(WAIT)
    connection.close()  # the worker dies: its session ends without unlocking


@pytest.mark.django_db
def test_a_second_run_is_refused_while_one_is_queued(tmp_path, index_backend):
    snapshot = write_snapshot(tmp_path / "snapshot")
    first = training_run_start(snapshot=snapshot, enqueue=False)
    with pytest.raises(TrainingBusy, match=f"training run #{first.pk} is queued"):
        training_run_start(snapshot=snapshot, enqueue=False)
    assert TrainingRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_dead_workers_run_is_failed_a_live_ones_is_left_alone(tmp_path, index_backend):
    snapshot = write_snapshot(tmp_path / "snapshot")
    dead = TrainingRun.objects.create(snapshot=snapshot, base_spec="m", status=TrainingRun.Status.RUNNING)
    fresh = training_run_start(snapshot=snapshot, enqueue=False)
    dead.refresh_from_db()
    assert (dead.status, dead.error, fresh.status) == (TrainingRun.Status.FAILED, ABANDONED, TrainingRun.Status.QUEUED)
    fresh.delete()

    live = TrainingRun.objects.create(snapshot=snapshot, base_spec="m", status=TrainingRun.Status.RUNNING)
    held, die = threading.Event(), threading.Event()
    worker = threading.Thread(target=_hold_lock, args=(live.pk, held, die))
    worker.start()
    try:
        assert held.wait(WAIT)
        with pytest.raises(TrainingBusy):
            training_run_start(snapshot=snapshot, enqueue=False)
        # A second execution of the same run (a redelivered task) leaves it to its process.
        assert training_run_execute(run_id=live.pk).status == TrainingRun.Status.RUNNING
    finally:
        die.set()
        worker.join(WAIT)
    # PostgreSQL frees a closed session's advisory locks when its backend process exits, a moment
    # after the disconnect; the next request must not be asked before that has happened.
    deadline = time.monotonic() + WAIT
    while run_is_alive(live.pk, kind="train") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not run_is_alive(live.pk, kind="train")
    training_run_start(snapshot=snapshot, enqueue=False)  # its worker died: now it goes
    live.refresh_from_db()
    assert live.status == TrainingRun.Status.FAILED


@pytest.mark.django_db
def test_the_task_runs_a_queued_run(tmp_path, index_backend, django_capture_on_commit_callbacks):
    clear_encoder_cache()
    with django_capture_on_commit_callbacks(execute=True):  # eager without a broker
        run = training_run_start(snapshot=write_snapshot(tmp_path / "snapshot"),
                                 params={**TINY_PARAMS, "max_steps": 2}, evaluate=False)
    run.refresh_from_db()
    assert (run.status, run.step, run.model_version.status) == (TrainingRun.Status.SUCCEEDED, 2, "trained")
    clear_encoder_cache()
