"""Progress bars for long management commands (tqdm), quiet unless a person is watching.

Services report progress through plain callbacks (``on_progress(done)`` or ``on_progress(done,
total)``) and know nothing of bars; a command makes a bar with ``progress_bar`` and passes its
``update`` as the callback. A bar is drawn only when its stream is a terminal and the command was
not run with ``--no-progress`` or ``--verbosity 0``, so cron jobs, Celery logs and pipes get the
summary lines alone. With a total it shows rate and ETA; without one (a sync does not know how many
documents a source holds), the count and rate.

Plain Python (no Django), at the bottom of the import layers, so every app's commands can use it.
"""
from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

NO_PROGRESS_OPTION = "--no-progress"


def add_progress_argument(parser) -> None:
    """Add ``--no-progress`` to a command's argument parser."""
    parser.add_argument(NO_PROGRESS_OPTION, action="store_true", help="never draw progress bars")


def progress_wanted(options: dict, stream: TextIO | None = None) -> bool:
    """Whether a command run with ``options`` should draw bars on ``stream`` (default stderr)."""
    if options.get("no_progress") or options.get("verbosity", 1) == 0:
        return False
    return _is_terminal(_raw(stream if stream is not None else sys.stderr))


class ProgressBar:
    """A tqdm bar fed with absolute counts; does nothing at all when disabled."""

    def __init__(self, *, description: str, unit: str, total: int | None = None, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self._bar = None
        if enabled:
            self._bar = tqdm(
                total=total, desc=description, unit=unit, file=_raw(stream if stream is not None else sys.stderr),
                dynamic_ncols=True, smoothing=0.1, leave=True,
            )

    def update(self, done: int, total: int | None = None) -> None:
        """Show ``done`` items of ``total`` (a total may be learnt, or change, on the way)."""
        if self._bar is None:
            return
        if total is not None and total != self._bar.total:
            self._bar.total = total
            self._bar.refresh()
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class StagedProgress:
    """Bars for work reported as ``(stage, done, total)``: a new bar each time the stage changes."""

    def __init__(self, options: dict, *, unit: str, stream: TextIO | None = None) -> None:
        self._enabled = progress_wanted(options, stream)
        self._unit, self._stream = unit, stream
        self._stage: str | None = None
        self._bar = ProgressBar(description="", unit=unit, enabled=False)

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        if stage != self._stage:
            self._bar.close()
            self._stage = stage
            self._bar = ProgressBar(description=stage, unit=self._unit, total=total, enabled=self._enabled,
                                    stream=self._stream)
        self._bar.update(done, total)

    def close(self) -> None:
        """Close the current bar; the next report opens a new one, even for the same stage."""
        self._bar.close()
        self._stage = None

    def __enter__(self) -> StagedProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def progress_bar(options: dict, *, description: str, unit: str, total: int | None = None,
                 stream: TextIO | None = None) -> ProgressBar:
    """The bar a command run with ``options`` should show (a silent one when nobody is watching)."""
    return ProgressBar(description=description, unit=unit, total=total, enabled=progress_wanted(options, stream),
                       stream=stream)


def _raw(stream: TextIO) -> TextIO:
    # Django's OutputWrapper (a command's self.stderr) ends every write with a newline, which would
    # print each redraw of a bar on a line of its own; tqdm needs the stream underneath.
    return getattr(stream, "_out", stream)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
