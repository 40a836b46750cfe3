"""Named fault points, so tests can kill a sync at each write point and prove it converges.

Production code marks each place where a crash would leave the database and the index out of step::

    faults.point("documents.store.committed")

Nothing is armed in production, so a point costs one dictionary truth test. Tests arm a point with
``arm(name, action)``: ``raise_killed`` simulates a death inside the process (``Killed`` is a
``BaseException``, so no ``except Exception`` on the way up can swallow it and carry on), and
``exit_process`` ends the process on the spot with ``os._exit``, skipping every ``finally``, as a
``kill -9`` would.
"""
import os
from collections.abc import Callable

_armed: dict[str, Callable[[str], None]] = {}


class Killed(BaseException):
    """Raised at an armed fault point: the process is to be treated as dead from here on."""


def point(name: str) -> None:
    """Mark a write point; does nothing unless a test armed ``name``."""
    if _armed:
        action = _armed.get(name)
        if action is not None:
            action(name)


def raise_killed(name: str) -> None:
    raise Killed(name)


def exit_process(name: str) -> None:
    os._exit(137)  # what a shell reports for SIGKILL; nothing is flushed or rolled back


def arm(name: str, action: Callable[[str], None] = raise_killed) -> None:
    _armed[name] = action


def disarm_all() -> None:
    _armed.clear()
