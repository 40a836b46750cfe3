"""The limits every file read is held to: time (cooperative and hard stop), bytes, garbage text,
and the configured defaults."""
import signal
import threading
import time

import pytest

from kbsearch.ingest import extract
from kbsearch.ingest.extract import ExtractionFailed, Reader, blocks_from_file
from kbsearch.ingest.limits import ExtractionLimits, extraction_limits, extraction_limits_configure
from kbsearch.ingest.parsers import Block

TIME_LIMIT_REASON = r"^reading took longer than the 0.3 s limit \(KBSEARCH_EXTRACT_SECONDS\)$"


def _checking_reader(data, limits, deadline):
    while True:  # a reader that works in small steps and checks the deadline between them
        time.sleep(0.02)
        deadline.check()


def _stuck_reader(data, limits, deadline):
    time.sleep(5)  # one long step with no check, like a pathological PDF page
    return [Block("paragraph", "too late")]


def _crashing_reader(data, limits, deadline):
    raise RecursionError("maximum recursion depth exceeded")  # as a library may on a crafted file


@pytest.fixture
def slow_readers(monkeypatch):
    readers = (
        Reader((), (".checks",), _checking_reader),
        Reader((), (".stuck",), _stuck_reader),
        Reader((), (".crash",), _crashing_reader),
    )
    monkeypatch.setattr(extract, "_readers", lambda: readers)


def test_reader_that_checks_is_stopped_at_the_deadline(slow_readers):
    started = time.monotonic()
    with pytest.raises(ExtractionFailed, match=TIME_LIMIT_REASON):
        blocks_from_file(b"x", filename="a.checks", limits=ExtractionLimits(seconds=0.3))
    assert 0.3 <= time.monotonic() - started < 0.6


def test_reader_stuck_inside_one_step_is_interrupted_on_the_main_thread(slow_readers):
    before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    with pytest.raises(ExtractionFailed, match=TIME_LIMIT_REASON):
        blocks_from_file(b"x", filename="a.stuck", limits=ExtractionLimits(seconds=0.3))
    assert time.monotonic() - started < 1.5
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_off_the_main_thread_the_deadline_checks_still_apply(slow_readers):
    outcome = []

    def run():
        try:
            blocks_from_file(b"x", filename="a.checks", limits=ExtractionLimits(seconds=0.3))
        except ExtractionFailed as error:
            outcome.append(str(error))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=3)
    assert outcome == ["reading took longer than the 0.3 s limit (KBSEARCH_EXTRACT_SECONDS)"]


def test_reader_crashing_on_a_malformed_file_is_a_failure_not_a_crash(slow_readers):
    with pytest.raises(
        ExtractionFailed,
        match="^unreadable file: the reader failed with RecursionError: maximum recursion depth exceeded$",
    ):
        blocks_from_file(b"x", filename="a.crash")


def test_fast_file_leaves_no_timer_behind():
    assert blocks_from_file(b"Hello", filename="a.txt", limits=ExtractionLimits(seconds=0.3)) == [
        Block("paragraph", "Hello")
    ]
    time.sleep(0.9)  # past the hard stop: a timer left running would raise here
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


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
