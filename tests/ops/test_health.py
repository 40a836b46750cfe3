"""/healthz answers without touching anything; /readyz only once database, index and model answer."""
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.test import Client

from kbsearch.ops import warmup
from kbsearch.ops.warmup import encoder_warmup

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_answers_without_database_host_check_or_https(settings):
    # No db fixture: any database query here would fail the test. The Host header is a pod IP no
    # ALLOWED_HOSTS lists and the request is plain HTTP with the HTTPS redirect on, as a kubelet sends it.
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_readyz_is_503_until_the_encoder_is_loaded_then_200(db, index_backend, monkeypatch):
    release = threading.Event()
    loads = []

    def slow_load():
        loads.append(1)
        assert release.wait(10), "the test never released the fake model load"

    monkeypatch.setattr(warmup, "_load_encoder", slow_load)
    client = Client()
    first = client.get("/readyz", HTTP_HOST="10.1.2.3:8000")
    assert first.status_code == 503
    assert first.json() == {
        "status": "not ready",
        "checks": {"database": "ok", "index": "ok", "model": "model loading"},
    }
    assert client.get("/readyz").status_code == 503  # still loading; no second load begun
    release.set()
    encoder_warmup._thread.join(10)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "index": "ok", "model": "ok"}}
    assert loads == [1]


def test_a_failed_model_load_is_reported_and_retried_by_the_next_probe(db, index_backend, monkeypatch):
    outcomes = [OSError("model files missing"), None]

    def flaky_load():
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(warmup, "_load_encoder", flaky_load)
    encoder_warmup.load_now()
    failed = Client().get("/readyz")
    assert failed.status_code == 503
    assert failed.json()["checks"]["model"] == "model failed to load: OSError: model files missing"
    encoder_warmup._thread.join(10)  # that probe started a new load, which succeeds
    assert Client().get("/readyz").status_code == 200


def test_readyz_reports_an_index_that_does_not_answer(db, index_backend, monkeypatch):
    monkeypatch.setattr(warmup, "_load_encoder", lambda: None)
    encoder_warmup.load_now()

    def broken():
        raise OSError("index file unreadable")

    monkeypatch.setattr(index_backend, "chunk_count", broken)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok", "index": "index unreachable: OSError: index file unreadable", "model": "ok",
    }


PROBE_WITHOUT_DATABASE = """
import json
import django
django.setup()
from django.test import Client
response = Client().get("/readyz", HTTP_HOST="10.1.2.3:8000")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def test_readyz_is_503_naming_the_database_when_it_is_down(tmp_path, tiny_model_dir):
    # A real connection attempt to a port nothing listens on, in a fresh process with production settings.
    from tests.settings.test_deploy_check import production_env

    env = production_env(
        tmp_path / "var",
        DATABASE_URL="postgres://postgres@127.0.0.1:9/kbsearch",
        KBSEARCH_EMBEDDING_MODEL=str(tiny_model_dir),
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE_WITHOUT_DATABASE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["status"] == "not ready"
    assert answer["body"]["checks"]["database"].startswith("database unreachable: OperationalError")
    assert answer["body"]["checks"]["index"] == "ok"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_need_no_sign_in(path, db, index_backend, monkeypatch):
    monkeypatch.setattr(warmup, "_load_encoder", lambda: None)
    encoder_warmup.load_now()
    response = Client().get(path)
    assert response.status_code == 200 and "login" not in response.get("Location", "")
