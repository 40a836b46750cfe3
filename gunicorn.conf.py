"""gunicorn settings for kbsearch's web process: ``gunicorn -c gunicorn.conf.py`` (``make serve-prod``).

Every value comes from the environment, with defaults measured on a 2-core machine
(docs/benchmarks.md, bench/bench_api.py):

- ``KBSEARCH_WEB_BIND`` (127.0.0.1:8000; the image sets 0.0.0.0:8000), ``KBSEARCH_WEB_WORKERS`` (2:
  one process per core), ``KBSEARCH_WEB_THREADS`` (2 per worker: a probe or a slow request still
  gets a thread while a search runs; more threads only contend for the worker's GIL, which cost
  throughput and doubled the p95 at 8 clients), ``KBSEARCH_WEB_WORKER_CONNECTIONS`` (as many as
  the threads: a worker takes no connection it has no free thread for, see below).
- ``KBSEARCH_WEB_TIMEOUT`` (60 s: a worker silent this long is killed), ``KBSEARCH_WEB_GRACEFUL_TIMEOUT``
  (30 s: on SIGTERM a worker stops accepting, finishes its requests within this, then exits; keep
  Kubernetes' terminationGracePeriodSeconds above it), ``KBSEARCH_WEB_KEEPALIVE`` (5 s, only when
  the connections exceed the threads: by default connections close after each response).
- ``KBSEARCH_WEB_TORCH_THREADS`` (the usable CPUs divided by the workers, at least 1): PyTorch
  threads per worker for encoding queries. Workers encode at the same time, so more would only
  oversubscribe the cores; on a busy machine a two-thread forward waits for both threads at each of
  its ~200 operations, and measured up to ten times slower than one thread (docs/benchmarks.md).
- ``KBSEARCH_WEB_PRELOAD`` (on): the application and the serving generation's embedding model are
  loaded once in the master before the workers fork, so the model's weights (about 450 MB) are
  shared copy-on-write instead of loaded per worker; the master runs PyTorch single-threaded (the
  precision probe and one warm-up query), so no OpenMP pool is forked. Off: each worker loads its
  own copy in the background after it starts, and ``/readyz`` stays 503 until then.

Prometheus: each worker writes its samples under ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary
folder unless set; it is emptied at start, since samples of a previous run would be added in), and a
dead worker's live gauges are dropped. gunicorn's access log is off: kbsearch.ops writes one JSON
line per request with its id and route; gunicorn's own messages are JSON lines too.
"""
import os
import shutil
import tempfile
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    number = int(value)
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def _metrics_directory() -> tuple[str, bool]:
    """Set PROMETHEUS_MULTIPROC_DIR before anything imports prometheus_client, and empty it.

    Returns the folder and whether it was made here (then it is removed on exit).
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if folder:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        for leftover in path.glob("*.db"):
            leftover.unlink()
        return folder, False
    folder = tempfile.mkdtemp(prefix="kbsearch-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder, True


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as kbsearch/wsgi.py: idle OpenMP threads sleep
METRICS_DIRECTORY, _METRICS_DIRECTORY_MADE_HERE = _metrics_directory()

wsgi_app = "kbsearch.wsgi:application"
bind = [address.strip() for address in os.environ.get("KBSEARCH_WEB_BIND", "127.0.0.1:8000").split(",") if address.strip()]
workers = _env_int("KBSEARCH_WEB_WORKERS", 2)
threads = _env_int("KBSEARCH_WEB_THREADS", 2)
worker_class = "gthread" if threads > 1 else "sync"
# Connections a worker holds at once, kept-alive ones included. gunicorn's default (1000) lets one
# worker accept more searches than its threads serve while the other idles, and those wait behind
# each other; bounded by the threads, the rest stay in the kernel's accept queue, which whichever
# worker frees a thread first takes from (docs/benchmarks.md: p95 at 8 clients 109 -> 59-76 ms).
worker_connections = _env_int("KBSEARCH_WEB_WORKER_CONNECTIONS", threads)
timeout = _env_int("KBSEARCH_WEB_TIMEOUT", 60)
graceful_timeout = _env_int("KBSEARCH_WEB_GRACEFUL_TIMEOUT", 30)
# A kept-alive connection holds one of the worker's connections while it idles, so it is only
# offered when there are connections beyond the threads (gunicorn warns otherwise); behind the
# ingress, a closed connection costs the proxy one TCP handshake inside the cluster.
keepalive = _env_int("KBSEARCH_WEB_KEEPALIVE", 5) if worker_connections > threads else 0
preload_app = _env_bool("KBSEARCH_WEB_PRELOAD", True)
# Worker heartbeats in memory, not on a (possibly read-only) root filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicorn 27's runtime control socket lives in $HOME by default: not on a read-only root
# filesystem, and two servers on one machine would share it.
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = os.environ.get("KBSEARCH_LOG_LEVEL", "info").lower()
# X-Forwarded-Proto and friends are believed only from these addresses (gunicorn's setting).
forwarded_allow_ips = os.environ.get("KBSEARCH_WEB_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "kbsearch.ops.logging.KbsearchJsonFormatter"}},
    "filters": {"request_id": {"()": "kbsearch.ops.logging.RequestIdFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"], "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": [], "propagate": False},
    },
}


def when_ready(server) -> None:
    """In the master, after the application is loaded and before any worker forks."""
    if preload_app and _env_bool("KBSEARCH_WEB_PRELOAD_MODEL", True):
        from kbsearch.index.registry import reset_index_backend
        from kbsearch.ops.warmup import encoder_warmup

        server.log.info("loading the embedding model before forking the workers")
        encoder_warmup.load_now()
        # The load read the serving generation through the index backend: its SQLite connections
        # must not cross the fork (each worker opens its own).
        reset_index_backend()


def _torch_threads_per_worker() -> int:
    return _env_int("KBSEARCH_WEB_TORCH_THREADS", max(1, len(os.sched_getaffinity(0)) // workers))


def post_fork(server, worker) -> None:
    # A connection opened in the master (an app's ready()) must not be shared by the workers.
    from django.db import connections

    connections.close_all()
    from embeddings.encoder import configure_torch_threads

    configure_torch_threads(_torch_threads_per_worker())


def post_worker_init(worker) -> None:
    """Start loading the model (a no-op when the master loaded it); /readyz says when it is done."""
    from kbsearch.ops.warmup import encoder_warmup

    encoder_warmup.start()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _METRICS_DIRECTORY_MADE_HERE:
        shutil.rmtree(METRICS_DIRECTORY, ignore_errors=True)
