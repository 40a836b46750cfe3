"""Liveness and readiness checks: what ``/healthz`` and ``/readyz`` answer.

Liveness is only "this process answers": restarting a pod because the database is down would not
help, so nothing external is checked. Readiness is "a search sent here would work now": the
database answers, the index answers, and the model is in memory (see ``kbsearch.ops.warmup``).
Every check is cheap (one ``SELECT 1``, the index's chunk count) because probes run every few seconds.
"""
from dataclasses import dataclass, field

from django.db import connection

from kbsearch.index.registry import get_index_backend
from kbsearch.ops.warmup import encoder_warmup


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)  # check -> "ok" or the reason it failed


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:
        # A broken connection stays broken for the rest of this thread's life unless closed.
        connection.close_if_unusable_or_obsolete()
        return f"database unreachable: {type(error).__name__}: {error}".strip()
    return "ok"


def _index() -> str:
    try:
        get_index_backend().chunk_count()
    except Exception as error:
        return f"index unreachable: {type(error).__name__}: {error}".strip()
    return "ok"


def _model() -> str:
    loaded, reason = encoder_warmup.status()
    if loaded:
        return "ok"
    encoder_warmup.start()  # no-op while a load runs; retries a failed one
    return reason or "model loading"


def readiness() -> Readiness:
    checks = {"database": _database(), "index": _index(), "model": _model()}
    return Readiness(ready=all(value == "ok" for value in checks.values()), checks=checks)
