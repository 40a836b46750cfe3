"""Progress bars (``kbsearch.progress``): drawn with rate and ETA on a terminal, silent otherwise.

Commands are run with their output captured (not a terminal), as cron, Celery and pipes run them:
their output must hold the summary lines and nothing of a bar.
"""
import io
import re

import pytest
from django.core.management import call_command

from kbsearch.progress import ProgressBar, StagedProgress, progress_bar, progress_wanted

# What tqdm draws and a log must never hold: carriage returns, the bar's "|" frame, rates.
BAR_TRACES = re.compile(r"\r|\d+%\||/s\]")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_counts_rate_and_eta():
    terminal = Terminal()
    with progress_bar({}, description="reindex", unit=" chunks", total=40, stream=terminal) as bar:
        for done in range(0, 41, 8):
            bar.update(done)
    drawn = terminal.getvalue()
    assert "reindex" in drawn and "40/40" in drawn and "100%" in drawn
    assert re.search(r"chunks/s", drawn)  # the rate
    assert re.search(r"<\d\d:\d\d", drawn)  # the ETA (remaining time)


def test_a_total_learnt_on_the_way_is_shown():
    terminal = Terminal()
    with progress_bar({}, description="re-embed", unit=" chunks", stream=terminal) as bar:
        bar.update(5, 10)
        bar.update(10, 10)
    assert "10/10" in terminal.getvalue()


@pytest.mark.parametrize(
    ("options", "stream", "wanted"),
    [
        ({}, Terminal(), True),
        ({"verbosity": 1}, Terminal(), True),
        ({}, io.StringIO(), False),  # a pipe, a file, a captured stream
        ({"no_progress": True}, Terminal(), False),
        ({"verbosity": 0}, Terminal(), False),
    ],
)
def test_bars_only_for_a_person_at_a_terminal(options, stream, wanted):
    assert progress_wanted(options, stream) is wanted


def test_a_silent_bar_writes_nothing():
    stream = io.StringIO()
    bar = ProgressBar(description="sync", unit=" docs", total=3, enabled=False, stream=stream)
    for done in range(4):
        bar.update(done, 3)
    bar.close()
    staged = StagedProgress({"no_progress": True}, unit=" items", stream=Terminal())
    staged("embed", 1, 2)
    staged.close()
    assert stream.getvalue() == ""


def test_stages_get_a_bar_each():
    terminal = Terminal()
    with StagedProgress({}, unit=" items", stream=terminal) as progress:
        progress("set: embed passages", 2, 2)
        progress("set: rank hybrid", 1, 3)
        progress("set: rank hybrid", 3, 3)
    drawn = terminal.getvalue()
    assert "set: embed passages" in drawn and "2/2" in drawn
    assert "set: rank hybrid" in drawn and "3/3" in drawn


@pytest.fixture
def share_source(tmp_path, tiny_encoder, index_backend, monkeypatch):
    from connectors.services import source_create
    from tests.knowledge_base import use_encoder

    use_encoder(monkeypatch, tiny_encoder)
    share = tmp_path / "share"
    share.mkdir()
    (share / "_access.yaml").write_text("principals: [public]\n")
    for number in range(3):
        (share / f"page{number}.md").write_text(f"# Page {number}\n\nThe cafeteria opens at {number + 7}am.\n")
    return source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})


@pytest.mark.django_db
def test_sync_reindex_and_reembed_output_is_clean_off_a_terminal(share_source, tiny_model_dir):
    commands = [
        ["sync_source", "share"],
        ["reindex"],
        ["index", "reembed", "--model", str(tiny_model_dir), "--foreground"],
    ]
    for command in commands:
        out, err = io.StringIO(), io.StringIO()
        call_command(*command, stdout=out, stderr=err)
        assert not BAR_TRACES.search(out.getvalue() + err.getvalue()), (command, out.getvalue(), err.getvalue())
        assert err.getvalue() == "", command
        assert out.getvalue().count("\n") >= 1, command  # the summary line is there


@pytest.mark.django_db
def test_a_command_on_a_terminal_draws_unless_told_not_to(share_source):
    call_command("sync_source", "share", stdout=io.StringIO(), stderr=io.StringIO())
    drawn = Terminal()
    out = io.StringIO()
    call_command("reindex", stdout=out, stderr=drawn)
    assert "reindex" in drawn.getvalue() and "chunks/s" in drawn.getvalue()
    assert not BAR_TRACES.search(out.getvalue())  # the bar goes to stderr; stdout keeps the summary alone
    for quiet in (["--no-progress"], ["--verbosity", "0"]):
        terminal = Terminal()
        call_command("reindex", *quiet, stdout=io.StringIO(), stderr=terminal)
        assert terminal.getvalue() == "", quiet
