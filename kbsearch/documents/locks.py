"""One writer per source at a time: a lock that dies with the process holding it.

Syncs, index replays and source deletion of one source must not interleave: two writers applying
different states of one document to the index could leave the older one there with nothing pending
to correct it. Because the lock is released when its holder dies (PostgreSQL drops a session's
advisory locks when its connection closes; the kernel drops a dead process's ``flock``), holding it
also proves that any run still recorded as ``running`` for the source belongs to a dead process.
"""
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from kbsearch.documents.models import Source

# The first key of PostgreSQL's two-key advisory locks: "kbs\0", so other users of advisory locks
# in the same database do not collide with ours.
_ADVISORY_NAMESPACE = 0x6B627300
_RETRY_SECONDS = 0.1


class SourceBusy(RuntimeError):
    """Another process is syncing, replaying or deleting this source right now."""


@contextmanager
def source_lock(source: Source, *, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the source's writer lock for the block; ``SourceBusy`` if it stays taken for ``wait_seconds``."""
    release = _acquire(source.pk, wait_seconds)
    try:
        yield
    finally:
        release()


def _acquire(source_id: int, wait_seconds: float):
    deadline = time.monotonic() + wait_seconds
    try_once = _try_advisory if connection.vendor == "postgresql" else _try_file_lock
    while True:
        release = try_once(source_id)
        if release is not None:
            return release
        if time.monotonic() >= deadline:
            raise SourceBusy(f"source {source_id} is being synced or deleted by another process")
        time.sleep(_RETRY_SECONDS)


def _try_advisory(source_id: int):
    key = (_ADVISORY_NAMESPACE, source_id & 0x7FFFFFFF)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        if not cursor.fetchone()[0]:
            return None

    def release() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)

    return release


def _lock_dir() -> Path:
    # SQLite means one host, so a file next to the database is seen by every process that writes it.
    name = str(connection.settings_dict.get("NAME") or "")
    if name and not name.startswith(("file:", ":memory:")):
        return Path(name).resolve().parent / "locks"
    return Path(tempfile.gettempdir()) / "kbsearch-locks"


def _try_file_lock(source_id: int):
    folder = _lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder / f"source-{source_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None

    def release() -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)

    return release
