"""A sync killed at any write point converges on the next run, whatever the source did meanwhile.

Each case changes the share, kills the sync at one named write point (``kbsearch.documents.faults``),
then either leaves the share as it is or undoes the change (an author reverts an edit, a deleted file
comes back, an admin reverts an ``_access.yaml`` that granted too much), and syncs again. The result
must equal, in the database and in the index, an uninterrupted sync of the final share into a clean
index. Most kills raise inside the process; the subprocess cases end a real ``manage.py``-style
process with ``os._exit`` at the point, as ``kill -9`` would.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from connectors.models import SyncRun
from connectors.services import source_create, source_sync
from kbsearch.documents import faults
from kbsearch.documents.models import PendingIndexChange
from tests.connectors.sync_state import make_share, other_index, source_state, write

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WIDENED = "principals: [group:hr, user:mallory]\n"


def _edit(root):
    write(root / "welcome.md", "# Welcome\n\nThe cafeteria moved to building B.\n")


def _revert_edit(root):
    write(root / "welcome.md", "# Welcome\n\nThe cafeteria opens at 8am. 食堂は8時に開きます。\n")


def _widen(root):
    write(root / "hr" / "_access.yaml", WIDENED)


def _narrow_again(root):
    write(root / "hr" / "_access.yaml", "principals: [group:hr]\n")


def _remove(root):
    (root / "eng" / "deploy.txt").unlink()


def _restore(root):
    write(root / "eng" / "deploy.txt", "Deploy runbook\n\nRun the deployment pipeline. 배포 절차를 따르세요.\n")


def _add(root):
    write(root / "new.md", "# New page\n\nA page that appears and may vanish again.\n")


def _unadd(root):
    (root / "new.md").unlink()


CHANGES = {"edit": (_edit, _revert_edit), "widen": (_widen, _narrow_again), "remove": (_remove, _restore), "add": (_add, _unadd)}
KILL_POINTS = [
    ("edit", "documents.store.committed"),  # database has the new text, index the old
    ("edit", "documents.store.index_cleared"),  # old chunks gone from the index, new ones not there
    ("edit", "documents.store.indexed"),  # index done, outbox record not cleared
    ("add", "documents.store.committed"),
    ("widen", "documents.access.committed"),  # access-only change: database widened, index not
    ("widen", "documents.access.indexed"),
    ("remove", "documents.delete.committed"),  # prune: row deleted, index still holds it
    ("remove", "documents.delete.indexed"),
    ("edit", "connectors.sync.ingested"),  # ingest done, prune and run record not
]


@pytest.fixture
def share(tmp_path):
    return make_share(tmp_path / "share")


@pytest.fixture
def armed():
    yield faults.arm
    faults.disarm_all()


def _baseline(share, tmp_path, encoder):
    """An uninterrupted sync of the share as it is now, into its own source and a clean index."""
    index = other_index(tmp_path / "baseline" / "embedded.sqlite3")
    source = source_create(key="baseline", name="Baseline", connector="filesystem", config={"root": str(share)})
    run = source_sync(source=source, encoder=encoder, index=index)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    state = source_state(source, index, encoder)
    index.close()
    return state


def _assert_converged(source, share, tmp_path, encoder, index):
    state = source_state(source, index, encoder)
    assert state["index_documents"], "the index holds documents the database does not, or lacks some"
    for external_id, (same_chunks, principals) in state["index"].items():
        assert same_chunks is True, f"{external_id}: index chunks differ from the database's"
        assert principals == state["database"][external_id][-1], f"{external_id}: index access differs"
    assert not PendingIndexChange.objects.exists()
    assert state == _baseline(share, tmp_path, encoder)


@pytest.mark.django_db
@pytest.mark.parametrize("final", ["unchanged", "undone"])
@pytest.mark.parametrize(("change", "point"), KILL_POINTS)
def test_killed_sync_converges(change, point, final, share, tmp_path, tiny_encoder, index_backend, armed):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})
    assert source_sync(source=source, encoder=tiny_encoder).status == SyncRun.Status.SUCCEEDED
    apply_change, undo_change = CHANGES[change]
    apply_change(share)
    armed(point)
    with pytest.raises(faults.Killed):
        source_sync(source=source, encoder=tiny_encoder)
    faults.disarm_all()
    killed_run = SyncRun.objects.filter(source=source).order_by("-pk").first()
    assert killed_run.status == SyncRun.Status.RUNNING  # as a dead process leaves it
    if final == "undone":
        undo_change(share)

    run = source_sync(source=source, encoder=tiny_encoder)

    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    killed_run.refresh_from_db()
    assert killed_run.status == SyncRun.Status.FAILED and "abandoned" in killed_run.errors[0]["reason"]
    _assert_converged(source, share, tmp_path, tiny_encoder, index_backend)


@pytest.mark.django_db
def test_killed_replay_is_resumed(share, tmp_path, tiny_encoder, index_backend, armed):
    """A run dies after committing, the next dies while replaying it, the third converges."""
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})
    source_sync(source=source, encoder=tiny_encoder)
    _edit(share)
    _widen(share)
    armed("documents.store.committed")
    with pytest.raises(faults.Killed):
        source_sync(source=source, encoder=tiny_encoder)
    faults.disarm_all()
    armed("documents.replay.indexed")
    with pytest.raises(faults.Killed):
        source_sync(source=source, encoder=tiny_encoder)
    faults.disarm_all()
    _revert_edit(share)
    run = source_sync(source=source, encoder=tiny_encoder)
    assert run.counts["replayed"] == 1
    assert SyncRun.objects.filter(source=source, status=SyncRun.Status.FAILED).count() == 2
    _assert_converged(source, share, tmp_path, tiny_encoder, index_backend)


def _sync_in_child(source_key: str, point: str, index_path: str, model_dir: str) -> subprocess.CompletedProcess:
    """Run ``manage.py sync_source`` in a new process that ends itself with ``os._exit`` at ``point``."""
    database = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = (
        f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
    )
    harness = (
        "import json, sys, django\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "from django.core.management import call_command\n"
        "from kbsearch.documents import faults\n"
        "config = json.loads(sys.argv[1])\n"
        "settings.KBSEARCH_INDEX = config['index']\n"
        "settings.KBSEARCH_EMBEDDING_MODEL = config['model']\n"
        "faults.arm(config['point'], faults.exit_process)\n"
        "call_command('sync_source', config['source'])\n"
    )
    config = {
        "index": {"BACKEND": "kbsearch.index.embedded.EmbeddedIndexBackend", "OPTIONS": {"path": index_path}},
        "model": model_dir,
        "point": point,
        "source": source_key,
    }
    env.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
    return subprocess.run(
        [sys.executable, "-c", harness, json.dumps(config)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("change", "point"),
    [("edit", "documents.store.committed"), ("widen", "documents.access.committed"), ("remove", "documents.delete.committed")],
)
def test_process_killed_mid_sync_converges_after_the_change_is_undone(
    change, point, share, tmp_path, tiny_encoder, tiny_model_dir, index_backend, settings
):
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})
    source_sync(source=source, encoder=tiny_encoder)
    apply_change, undo_change = CHANGES[change]
    apply_change(share)

    child = _sync_in_child("share", point, settings.KBSEARCH_INDEX["OPTIONS"]["path"], str(tiny_model_dir))

    assert child.returncode == 137, child.stderr
    assert SyncRun.objects.filter(source=source, status=SyncRun.Status.RUNNING).count() == 1
    assert PendingIndexChange.objects.count() == 1  # committed with the change, never cleared
    if change == "widen":
        # The dead process widened the database; search re-checks it, the index was never widened.
        assert index_backend.indexed_documents(
            list(source.documents.filter(external_id="hr/salary.md").values_list("pk", flat=True))
        ).popitem()[1].principals == {"group:hr"}
    undo_change(share)

    run = source_sync(source=source, encoder=tiny_encoder)

    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert not SyncRun.objects.filter(source=source, status=SyncRun.Status.RUNNING).exists()
    _assert_converged(source, share, tmp_path, tiny_encoder, index_backend)
