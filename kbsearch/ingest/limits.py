"""Limits on reading one file, and the deadline that enforces the time limit.

``ExtractionLimits`` holds the caps (bytes, unzipped bytes, PDF pages, slides, spreadsheet rows and
cells, seconds). kbsearch.ingest has no Django: the defaults here are the product defaults, and the
documents app replaces them from settings at start-up (``extraction_limits_configure``), so callers
that pass no limits still get the configured ones.

Every limit refuses the file rather than indexing part of it: a partial text would be silent (the
admin never learns the rest is missing) and, for the time limit, would differ from run to run. The
reason names the setting to raise.

The time limit is enforced two ways. Readers call ``Deadline.check()`` between units (pages,
paragraphs, rows, slides), which costs nothing and works on any thread. On the main thread (a
Celery prefork worker, ``manage.py sync_source``) a SIGALRM timer also interrupts a reader stuck
inside one unit, e.g. a single pathological PDF page; a worker process per file was measured and
rejected (see docs/architecture.md, "Files and attachments").
"""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class ExtractionFailed(ValueError):
    """The file gives no honest text; the message says why."""


@dataclass(frozen=True)
class ExtractionLimits:
    max_bytes: int = 50 * 1024 * 1024
    # Office files are zips; a 50 MB .docx of text inflates ~10-20x, a zip bomb by thousands.
    max_unzipped_bytes: int = 500 * 1024 * 1024
    max_pages: int = 2000
    max_slides: int = 1000
    max_rows: int = 100_000  # over all sheets of a workbook
    max_cells: int = 2_000_000  # over all sheets: a stray value in column XFD makes every row 16k cells
    seconds: float = 60.0


_configured = ExtractionLimits()


def extraction_limits_configure(limits: ExtractionLimits) -> None:
    """Make ``limits`` the default of every later ``blocks_from_file`` call without explicit limits."""
    global _configured
    _configured = limits


def extraction_limits() -> ExtractionLimits:
    return _configured


class _OutOfTime(BaseException):
    # BaseException so a library's own ``except Exception`` around a page cannot swallow it.
    pass


class Deadline:
    """Seconds left for one file; ``check()`` raises ExtractionFailed once they are spent."""

    def __init__(self, seconds: float, *, clock=time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends = clock() + seconds

    def failure(self) -> ExtractionFailed:
        return ExtractionFailed(
            f"reading took longer than the {self.seconds:g} s limit (KBSEARCH_EXTRACT_SECONDS)"
        )

    def check(self) -> None:
        if self._clock() > self._ends:
            raise self.failure()


def _raise_out_of_time(_signum, _frame) -> None:
    raise _OutOfTime


@contextmanager
def hard_stop(deadline: Deadline) -> Iterator[None]:
    """Interrupt the block when the deadline passes, if a signal timer can be used here.

    Only the main thread receives signals, and an outer timer (another user of SIGALRM) must not be
    clobbered; in either case the reader's own ``check()`` calls are the only guard.
    """
    usable = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if usable and signal.getitimer(signal.ITIMER_REAL)[0] == 0:
        previous = signal.signal(signal.SIGALRM, _raise_out_of_time)
        # A little after the cooperative deadline, so a reader that checks gets the clean path.
        signal.setitimer(signal.ITIMER_REAL, deadline.seconds + 0.5)
        try:
            yield
        except _OutOfTime:
            raise deadline.failure() from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    else:
        yield
