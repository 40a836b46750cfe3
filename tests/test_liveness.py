"""The Celery heartbeat file behind the chart's worker and beat liveness probes (kbsearch.liveness)."""
import os
import time

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.utils.imports import symbol_by_name
from django.conf import settings

from kbsearch import liveness


@pytest.fixture
def heartbeat_file(tmp_path, monkeypatch):
    path = tmp_path / "run" / "heartbeat"
    monkeypatch.setenv(liveness.HEARTBEAT_FILE_ENV, str(path))
    return path


def test_probe_fails_without_a_heartbeat(heartbeat_file, capsys):
    assert liveness.main(["60"]) == 1
    assert f"no heartbeat at {heartbeat_file}" in capsys.readouterr().err


def test_probe_passes_on_a_fresh_heartbeat_and_fails_on_a_stale_one(heartbeat_file, capsys):
    liveness.heartbeat_touch()
    assert liveness.main(["60"]) == 0
    two_minutes_ago = time.time() - 120
    os.utime(heartbeat_file, (two_minutes_ago, two_minutes_ago))
    assert liveness.main(["60"]) == 1
    assert "is 120 s old (limit 60 s)" in capsys.readouterr().err
    assert liveness.main(["300"]) == 0


def test_a_running_worker_keeps_the_heartbeat_fresh(heartbeat_file):
    app = Celery("liveness-test", broker="memory://", backend="cache+memory://")
    app.steps["worker"].add(liveness.WorkerHeartbeat)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        deadline = time.monotonic() + 10
        while liveness.heartbeat_age() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert liveness.heartbeat_age() is not None
        assert liveness.main(["5"]) == 0


def test_the_project_worker_and_beat_carry_the_heartbeat():
    from django_celery_beat.schedulers import DatabaseScheduler

    from kbsearch.celery import app

    assert liveness.WorkerHeartbeat in app.steps["worker"]
    scheduler = symbol_by_name("kbsearch.liveness:HeartbeatDatabaseScheduler")
    assert issubclass(scheduler, DatabaseScheduler)
    assert "tick" in vars(scheduler) and "sync" in vars(scheduler)  # heartbeat; shutdown mid-query
    assert settings.CELERY_BEAT_SCHEDULER == "kbsearch.liveness:HeartbeatDatabaseScheduler"
