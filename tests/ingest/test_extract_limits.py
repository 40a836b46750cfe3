"""The limits every file read is held to: time (cooperative and hard stop), bytes, garbage text,
and the configured defaults."""
import functools
import signal
import threading
import time

import pytest

from kbsearch.ingest import extract
from kbsearch.ingest.extract import ExtractionFailed, Reader, blocks_from_file
from kbsearch.ingest.limits import Deadline, ExtractionLimits, extraction_limits, extraction_limits_configure
from kbsearch.ingest.parsers import Block

TIME_LIMIT_REASON = r"^reading took longer than the 0.3 s limit \(KBSEARCH_EXTRACT_SECONDS\)$"


class SteppedClock:
    """A clock that moves only when a reader takes a step, so the step the deadline stops is exact."""

    STEP = 0.125  # exact in binary: 0.125, 0.25, 0.375 - the third step is the first past 0.3 s

    def __init__(self):
        self.now = 0.0
        self.steps = 0

    def __call__(self):
        return self.now

    def step(self):
        self.steps += 1
        self.now += self.STEP


@pytest.fixture
def clock(monkeypatch):
    clock = SteppedClock()
    monkeypatch.setattr(extract, "Deadline", functools.partial(Deadline, clock=clock))
    return clock


def _checking_reader(clock):
    def read(data, limits, deadline):
        while True:  # a reader that works in small steps and checks the deadline between them
            clock.step()
            deadline.check()

    return read


_stuck_steps_finished = []


def _stuck_reader(data, limits, deadline):
    time.sleep(5)  # one long step with no check, like a pathological PDF page
    _stuck_steps_finished.append(True)
    return [Block("paragraph", "too late")]


def _crashing_reader(data, limits, deadline):
    raise RecursionError("maximum recursion depth exceeded")  # as a library may on a crafted file


@pytest.fixture
def slow_readers(monkeypatch, clock):
    _stuck_steps_finished.clear()
    readers = (
        Reader((), (".checks",), _checking_reader(clock)),
        Reader((), (".stuck",), _stuck_reader),
        Reader((), (".crash",), _crashing_reader),
    )
    monkeypatch.setattr(extract, "_readers", lambda: readers)


def test_reader_that_checks_is_stopped_at_the_deadline(slow_readers, clock):
    with pytest.raises(ExtractionFailed, match=TIME_LIMIT_REASON):
        blocks_from_file(b"x", filename="a.checks", limits=ExtractionLimits(seconds=0.3))
    # Not before the deadline (0.25 s is within it), and by the first check after it - the check,
    # not the signal timer: the stepped clock never reaches the timer's real 0.8 s in 3 steps.
    assert clock.steps == 3


def test_reader_stuck_inside_one_step_is_interrupted_on_the_main_thread(slow_readers):
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(ExtractionFailed, match=TIME_LIMIT_REASON):
        blocks_from_file(b"x", filename="a.stuck", limits=ExtractionLimits(seconds=0.3))
    assert _stuck_steps_finished == []  # interrupted inside the step, not failed after it
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_off_the_main_thread_the_deadline_checks_still_apply(slow_readers, clock):
    outcome = []

    def run():
        try:
            blocks_from_file(b"x", filename="a.checks", limits=ExtractionLimits(seconds=0.3))
        except ExtractionFailed as error:
            outcome.append(str(error))

    worker = threading.Thread(target=run, daemon=True)  # a broken check must not hang the run
    worker.start()
    worker.join(timeout=3)
    assert outcome == ["reading took longer than the 0.3 s limit (KBSEARCH_EXTRACT_SECONDS)"]
    assert clock.steps == 3


def test_reader_crashing_on_a_malformed_file_is_a_failure_not_a_crash(slow_readers):
    with pytest.raises(
        ExtractionFailed,
        match="^unreadable file: the reader failed with RecursionError: maximum recursion depth exceeded$",
    ):
        blocks_from_file(b"x", filename="a.crash")


def test_fast_file_leaves_no_timer_behind():
    before = signal.getsignal(signal.SIGALRM)
    assert blocks_from_file(b"Hello", filename="a.txt", limits=ExtractionLimits(seconds=0.3)) == [
        Block("paragraph", "Hello")
    ]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no timer armed to fire later
    assert signal.getsignal(signal.SIGALRM) is before


def test_file_over_the_byte_limit_is_refused_before_reading():
    with pytest.raises(ExtractionFailed, match=r"^file is 11 bytes; the limit is 10 \(KBSEARCH_EXTRACT_MAX_BYTES\)$"):
        blocks_from_file(b"hello world", filename="a.txt", limits=ExtractionLimits(max_bytes=10))


def test_text_mostly_of_replacement_characters_is_refused_as_garbage():
    data = ("\ufffd" * 20 + " word " + "\ufffd" * 20).encode("utf-8")
    with pytest.raises(ExtractionFailed, match="^text of 'broken.txt' is 91% replacement, control or unassigned"):
        blocks_from_file(data, filename="broken.txt")


def test_a_few_control_characters_are_dropped_from_readable_text():
    assert blocks_from_file("<p>Be\x07ll and\x1b escape 東京</p>".encode(), filename="a.html") == [
        Block("paragraph", "Bell and escape 東京")
    ]


def test_unreadable_share_counts_only_visible_characters():
    assert extract.unreadable_share("   \n\t") == 0.0
    assert extract.unreadable_share("ab\ufffd\x01") == 0.5
    assert extract.unreadable_share("日本語 text") == 0.0


@pytest.fixture
def configured_limits():
    previous = extraction_limits()
    yield
    extraction_limits_configure(previous)


def test_calls_without_limits_use_the_configured_ones(configured_limits):
    extraction_limits_configure(ExtractionLimits(max_bytes=4))
    with pytest.raises(ExtractionFailed, match="^file is 5 bytes; the limit is 4 "):
        blocks_from_file(b"Hello", filename="a.txt")
    assert blocks_from_file(b"Hello", filename="a.txt", limits=ExtractionLimits()) == [Block("paragraph", "Hello")]
