"""A SharePoint sync killed at a random write point, then run again, ends exactly where an
uninterrupted sync of the same tenant ends: same documents, chunks, access lists and vectors, no
duplicates. The kill points are the seam's (after a page is committed, before its checkpoint is
saved) and the store's (between the database commit and the index write)."""
import random

import pytest

from connectors.models import SyncRun
from connectors.services import source_sync
from kbsearch.documents import faults
from kbsearch.documents.models import Document
from tests.connectors.sync_state import other_index, source_state

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _disarmed():
    yield
    faults.disarm_all()

POINTS = ("connectors.cursor.segment_applied", "documents.store.committed", "documents.store.index_cleared",
          "documents.store.indexed")


def _kill_at(occurrence: int, point: str) -> None:
    seen = {"count": 0}

    def action(name: str) -> None:
        seen["count"] += 1
        if seen["count"] == occurrence:
            raise faults.Killed(name)

    faults.arm(point, action)


def _sync_killed_then_resumed(source, rng, encoder, index, *, most: int) -> None:
    _kill_at(rng.randint(1, most), rng.choice(POINTS))
    with pytest.raises(faults.Killed):
        source_sync(source=source, encoder=encoder, index=index)
    faults.disarm_all()
    source.refresh_from_db()
    run = source_sync(source=source, encoder=encoder, index=index)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_killed_runs_converge_to_an_uninterrupted_sync(hr, sharepoint_source, tiny_encoder, index_backend, tmp_path,
                                                       seed):
    rng = random.Random(seed)
    t = hr.tenant
    extra = [t.file_add(parent=hr.policies if n % 2 else hr.root, name=f"note-{n}.txt",
                        content=f"Note {n} about parking, badges and the cafeteria.") for n in range(5)]
    # With site pages on, the first run passes each kill point at least five times, the second at
    # least twice (the store's points once per ingest batch, the seam's once per page).
    source = sharepoint_source(include_pages=True)
    _sync_killed_then_resumed(source, rng, tiny_encoder, index_backend, most=4)

    t.file_edit(extra[0], content="Note zero now covers salary bands.")
    t.item_move(extra[1], parent=hr.root, name="moved.txt")
    t.item_delete(extra[2])
    t.file_add(parent=hr.private, name="bonus.txt", content="Bonus rules for deploy weeks.")
    t.permission_remove(hr.leave, next(p for p in hr.leave.permissions if p.group is hr.payroll))
    _sync_killed_then_resumed(source, rng, tiny_encoder, index_backend, most=2)

    clean_index = other_index(tmp_path / "clean" / "embedded.sqlite3")
    clean = sharepoint_source("clean", include_pages=True)
    assert source_sync(source=clean, encoder=tiny_encoder, index=clean_index).status == SyncRun.Status.SUCCEEDED
    assert source_state(source, index_backend, tiny_encoder) == source_state(clean, clean_index, tiny_encoder)
    ids = list(Document.objects.filter(source=source).values_list("external_id", flat=True))
    assert len(ids) == len(set(ids)) == 8  # 3 + 5 notes - 1 deleted + bonus.txt
