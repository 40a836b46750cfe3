"""gunicorn.conf.py: settings from the environment, and a real gunicorn serving kbsearch with it."""
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.settings.test_deploy_check import production_env

ROOT = Path(__file__).resolve().parents[2]
READ_CONF = """
import importlib.util, json, os
spec = importlib.util.spec_from_file_location("conf", "gunicorn.conf.py")
conf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conf)
print(json.dumps({name: getattr(conf, name) for name in (
    "bind", "workers", "threads", "worker_class", "worker_connections", "keepalive", "timeout", "graceful_timeout",
    "preload_app", "wsgi_app", "control_socket_disable", "accesslog")} | {"metrics_dir": os.environ["PROMETHEUS_MULTIPROC_DIR"]}))
"""


def read_conf(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", READ_CONF], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_config_reads_workers_threads_and_timeouts_from_the_environment(tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_123.db").write_bytes(b"stale samples of a previous run")
    env = production_env(
        tmp_path / "var", KBSEARCH_WEB_WORKERS="3", KBSEARCH_WEB_THREADS="1", KBSEARCH_WEB_GRACEFUL_TIMEOUT="20",
        KBSEARCH_WEB_BIND="0.0.0.0:8000", KBSEARCH_WEB_PRELOAD="0", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    result = read_conf(env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "bind": ["0.0.0.0:8000"], "workers": 3, "threads": 1, "worker_class": "sync", "worker_connections": 1,
        "keepalive": 0, "timeout": 60,
        "graceful_timeout": 20, "preload_app": False, "wsgi_app": "kbsearch.wsgi:application",
        "control_socket_disable": True, "accesslog": None, "metrics_dir": str(metrics_dir),
    }
    assert list(metrics_dir.iterdir()) == []  # a previous run's samples would be added in


def test_the_config_defaults_and_a_bad_value(tmp_path):
    defaults = read_conf(production_env(tmp_path / "var"))
    assert defaults.returncode == 0, defaults.stderr
    values = json.loads(defaults.stdout)
    assert (values["bind"], values["workers"], values["threads"], values["worker_class"], values["preload_app"]) == (
        ["127.0.0.1:8000"], 2, 2, "gthread", True,
    )
    # A worker takes only the connections its threads serve; none is left to keep one alive.
    assert (values["worker_connections"], values["keepalive"]) == (2, 0)
    assert Path(values["metrics_dir"]).is_dir()
    Path(values["metrics_dir"]).rmdir()
    spare = json.loads(read_conf(production_env(tmp_path / "var", KBSEARCH_WEB_WORKER_CONNECTIONS="6")).stdout)
    assert (spare["threads"], spare["worker_connections"], spare["keepalive"]) == (2, 6, 5)
    Path(spare["metrics_dir"]).rmdir()
    bad = read_conf(production_env(tmp_path / "var", KBSEARCH_WEB_WORKERS="0"))
    assert bad.returncode != 0 and "KBSEARCH_WEB_WORKERS must be a positive integer" in bad.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_gunicorn_serves_probes_requests_and_metrics_then_stops_gracefully(tmp_path, tiny_model_dir):
    port = free_port()
    env = production_env(
        tmp_path / "var", KBSEARCH_EMBEDDING_MODEL=str(tiny_model_dir), KBSEARCH_WEB_WORKERS="2",
        KBSEARCH_WEB_THREADS="2", KBSEARCH_METRICS_TOKEN="scrape-secret", KBSEARCH_WEB_GRACEFUL_TIMEOUT="10",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status, _, body = get(base + "/readyz")
            except OSError:
                time.sleep(0.3)
        assert status == 200, body
        assert json.loads(body)["checks"] == {"database": "ok", "index": "ok", "model": "ok"}
        status, headers, body = get(base + "/healthz", {"Host": "10.1.2.3:8000"})
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        # Through the proxy's HTTPS header, as behind the ingress: the API answers (401 without a token).
        for _ in range(4):  # several requests, so that both workers are likely to serve some
            status, headers, _ = get(base + "/api/v1/search?q=vpn", {"Host": "kb.example.com", "X-Forwarded-Proto": "https"})
            assert status == 401 and len(headers["X-Request-ID"]) == 32
        assert get(base + "/metrics")[0] == 403
        status, _, body = get(base + "/metrics", {"Authorization": "Bearer scrape-secret"})
        assert status == 200
        searches = [
            line for line in body.decode().splitlines()
            if line.startswith('kbsearch_http_request_duration_seconds_count{') and 'route="api:search"' in line
        ]
        assert len(searches) == 1 and float(searches[0].rsplit(" ", 1)[1]) == 4.0  # summed over the workers
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "kbsearch.request"]
    assert len(access) == 4 and all(line["route"] == "api:search" and line["status"] == 401 for line in access)
    assert len({line["request_id"] for line in access}) == 4
    assert any(line["logger"] == "gunicorn.error" and "Shutting down" in line["message"] for line in lines)
