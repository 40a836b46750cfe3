"""Whether a run recorded as ``running`` is really running: a lock per live run.

Used by directory syncs (kind ``directory``), by re-embeds of the index (kind ``reembed``,
``kbsearch.documents.generations``) and by training runs of the relevance loop (kind ``train``,
``kbsearch.relevance.training_runs``); each kind has its own lock names, so run ids never collide.


A sync holds a lock named after its run for as long as it runs. The lock belongs to the process
(PostgreSQL drops a session's advisory locks when its connection closes; the kernel drops a dead
process's ``flock`` on SQLite's single host), so a worker killed mid-sync releases it without
running any code. A ``running`` run whose lock can be taken therefore has no process behind it.

Why per run rather than per directory: syncs of one directory may overlap on purpose (the read
takes no lock; the apply serializes on the directory row and skips an older read), so a second
sync must not wait for the first, and must not declare it dead either.

This app sits below ``kbsearch.documents``, whose source lock works the same way; it cannot be
imported from here.
"""
import fcntl
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.db import connection

# The first key of PostgreSQL's two-key advisory locks, "kbd\0" (the documents' source locks use
# "kbs\0"): the two never collide, nor with other users of advisory locks in the database.
_NAMESPACES = {"directory": 0x6B626400, "reembed": 0x6B627200, "train": 0x6B627400}

Release = Callable[[], None]


def run_lock_try(run_id: int, *, kind: str = "directory") -> Release | None:
    """Take the lock of run ``run_id``; its release, or None when a live process holds it."""
    if connection.vendor == "postgresql":
        return _advisory_try(_NAMESPACES[kind], run_id)
    return _flock_try(kind, run_id)


def run_is_alive(run_id: int, *, kind: str = "directory") -> bool:
    """Whether a process still holds run ``run_id``'s lock (taking it to look, then letting go)."""
    release = run_lock_try(run_id, kind=kind)
    if release is None:
        return True
    release()
    return False


def _advisory_try(namespace: int, run_id: int) -> Release | None:
    key = (namespace, run_id & 0x7FFFFFFF)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        taken = cursor.fetchone()[0]
    if not taken:
        return None

    def release() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)

    return release


def _flock_try(kind: str, run_id: int) -> Release | None:
    # Beside the database file: every process writing that database sees the same lock files.
    database = str(connection.settings_dict.get("NAME") or "")
    in_memory = not database or database.startswith(("file:", ":memory:"))
    folder = (Path(tempfile.gettempdir()) if in_memory else Path(database).resolve().parent) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / f"{kind}-run-{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None

    def release() -> None:
        # Only the run's process, or a caller that found it dead, gets here: nobody needs the file again.
        (folder / f"{kind}-run-{run_id}.lock").unlink(missing_ok=True)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)

    return release
