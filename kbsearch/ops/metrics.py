"""Prometheus metrics (prometheus-client): what is measured, and the exposition ``/metrics`` serves.

prometheus-client directly rather than django-prometheus: kbsearch needs a few families with labels
it chooses (route names, search legs, sync statuses, queue names), and django-prometheus would add
dozens of per-model and per-middleware families, patch the database and cache backends, and still
need prometheus-client's multiprocess mode under gunicorn. One library, set up here, is less to trust.

Under gunicorn each worker is a process: ``PROMETHEUS_MULTIPROC_DIR`` (set by gunicorn.conf.py
before anything is imported) makes every worker write its samples to files there, and a scrape of
any worker adds them up. Without it (runserver, tests, Celery) the process's own registry is served.
"""
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

# Seconds: from a cached query (a few ms) to a cold model or a saturated machine (seconds).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUEST_SECONDS = Histogram(
    "kbsearch_http_request_duration_seconds",
    "Time to answer an HTTP request, by route name (not path: ids would make unbounded series).",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
SEARCH_LEG_SECONDS = Histogram(
    "kbsearch_search_leg_duration_seconds",
    "Time spent in each leg of a search: encode (query vector), bm25, vector, fusion (a hybrid "
    "search's total less its two legs; a backend's native hybrid is all fusion), recheck "
    "(the database's access re-check, chunks and facets).",
    ["leg"],
    buckets=_LATENCY_BUCKETS,
)
SYNC_RUNS = Counter("kbsearch_sync_runs", "Connector sync runs that ended, by final status.", ["status"])

INDEX_DRIFT = Counter(
    "kbsearch_index_drift_documents",
    "Documents the consistency check found out of step with the database, by kind (missing, extra, "
    "chunks, access, place).",
    ["kind"],
)

SEARCH_LEGS = ("encode", "bm25", "vector", "fusion", "recheck")


@contextmanager
def search_leg(leg: str) -> Iterator[None]:
    """Time the enclosed block as one ``leg`` of a search."""
    started = time.perf_counter()
    try:
        yield
    finally:
        SEARCH_LEG_SECONDS.labels(leg=leg).observe(time.perf_counter() - started)


def sync_run_finished(*, status: str) -> None:
    """Count one sync run that ended with ``status`` (succeeded, partial, failed, cancelled)."""
    SYNC_RUNS.labels(status=status).inc()


def index_drift_found(*, kind: str, count: int) -> None:
    """Count ``count`` documents of drift ``kind`` found by one consistency check."""
    if count:
        INDEX_DRIFT.labels(kind=kind).inc(count)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def metrics_exposition(*extra_collectors) -> tuple[bytes, str]:
    """The text exposition of every metric (all gunicorn workers' together) plus ``extra_collectors``.

    Extra collectors (queue depth) are read at scrape time in the scraped process: they describe
    the outside world, not this process, so they are never summed over workers.
    """
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in extra_collectors:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    body = generate_latest(REGISTRY)
    if extra_collectors:
        extra = CollectorRegistry()
        for collector in extra_collectors:
            extra.register(collector)
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST
