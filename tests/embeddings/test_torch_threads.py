"""PyTorch thread settings: one per CPU by default, a worker's share when told, one inside a block
that runs before a fork (a fork after a multi-threaded OpenMP region hangs the child)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from embeddings import encoder as encoder_module
from embeddings.encoder import configure_torch_threads, torch_single_threaded

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(encoder_module, "_threads_configured_in", None)
    yield
    torch.set_num_threads(before)


def test_the_default_is_one_thread_per_usable_cpu_once_per_process(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(1)
    assert configure_torch_threads() == len(os.sched_getaffinity(0))
    torch.set_num_threads(1)  # someone changes it later: the default is not imposed again
    assert configure_torch_threads() == 1


def test_an_explicit_count_wins_and_omp_num_threads_is_respected(monkeypatch):
    assert configure_torch_threads(1) == 1 and torch.get_num_threads() == 1
    with pytest.raises(ValueError):
        configure_torch_threads(0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(encoder_module, "_threads_configured_in", None)
    torch.set_num_threads(2)
    assert configure_torch_threads() == 2  # the operator's OMP_NUM_THREADS: PyTorch read it at start


def test_single_threaded_block_restores_the_configured_count():
    configure_torch_threads(2)
    with torch_single_threaded():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


FORK_AFTER_SINGLE_THREADED_WORK = """
import os, sys, time
import torch
from embeddings.encoder import configure_torch_threads, torch_single_threaded
configure_torch_threads(2)
x = torch.randn(600, 600)
with torch_single_threaded():
    (x @ x).sum()
pid = os.fork()
if pid == 0:
    (x @ x).sum()  # two threads in the child: hangs if the parent forked a live OpenMP pool
    os._exit(0)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
sys.exit("the child hung")
"""


def test_a_child_forked_after_single_threaded_work_computes_with_two_threads():
    result = subprocess.run([sys.executable, "-c", FORK_AFTER_SINGLE_THREADED_WORK], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
