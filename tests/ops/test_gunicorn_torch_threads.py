"""gunicorn.conf.py gives each web worker its share of the cores for PyTorch (KBSEARCH_WEB_TORCH_THREADS)."""
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.settings.test_deploy_check import production_env

ROOT = Path(__file__).resolve().parents[2]
FORKED_WORKER = """
import importlib.util, json
import torch
spec = importlib.util.spec_from_file_location("conf", "gunicorn.conf.py")
conf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conf)
torch.set_num_threads(8)  # what the master had
conf.post_fork(None, None)
print(json.dumps({"share": conf._torch_threads_per_worker(), "threads": torch.get_num_threads()}))
"""


def worker_threads(tmp_path: Path, **values: str) -> dict:
    env = production_env(tmp_path / "var", **values)
    result = subprocess.run([sys.executable, "-c", FORKED_WORKER], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_each_worker_gets_its_share_of_the_cores(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    assert worker_threads(tmp_path, KBSEARCH_WEB_WORKERS="2") == {"share": max(1, cpus // 2), "threads": max(1, cpus // 2)}
    assert worker_threads(tmp_path, KBSEARCH_WEB_WORKERS=str(cpus + 4))["threads"] == 1


def test_the_operator_sets_the_worker_threads(tmp_path):
    assert worker_threads(tmp_path, KBSEARCH_WEB_WORKERS="2", KBSEARCH_WEB_TORCH_THREADS="3")["threads"] == 3
