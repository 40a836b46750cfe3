"""Real Celery processes for the tests that need them: started against the test database and a real
Redis broker, and always stopped, with a slow exit on SIGTERM failing the test.

A process still alive 30 s after SIGTERM is killed before the test fails, so it cannot keep the test
database open and break the next run's setup (it did once, in CI, when beat deadlocked on shutdown;
kbsearch.liveness now prevents that, and tests/test_beat_shutdown.py checks it).
"""
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)
EXIT_SECONDS = 30


def shared_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.fail("this test shares its database with Celery processes: run it on PostgreSQL (make test does)")
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def redis_broker_url() -> str:
    broker = os.environ.get("KBSEARCH_TEST_REDIS_URL")
    if not broker:
        pytest.fail("KBSEARCH_TEST_REDIS_URL is unset: run the tests through scripts/with-test-services.sh")
    return broker


def celery_start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "kbsearch", *args],
        cwd=BASE_DIR, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


def celery_stop(process: subprocess.Popen, log: Path) -> str | None:
    """SIGTERM and wait; a process slow to exit is killed. Returns what went wrong, or None."""
    process.terminate()
    try:
        process.wait(timeout=EXIT_SECONDS)
        return None
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=EXIT_SECONDS)
        return (f"{' '.join(process.args[3:5])} did not exit within {EXIT_SECONDS} s of SIGTERM (killed). "
                f"Its log ends:\n{log.read_text()[-1500:]}")


@contextmanager
def celery_running(processes: dict[Path, subprocess.Popen]):
    """Stop every process (keyed by its log) when the block ends. A failure inside the block is the
    one reported; otherwise a slow exit fails the test."""
    try:
        yield
    finally:
        problems = [problem for log, process in processes.items() if (problem := celery_stop(process, log))]
    if problems:
        pytest.fail("\n\n".join(problems))
