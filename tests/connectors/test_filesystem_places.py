"""File-share places: a file is in the top-level folder it lives under, files at the root in none;
documents synced before places existed get theirs from one ``--full`` sync, without re-embedding,
and a move lost on the way to the index is put right by the outbox or the consistency check."""
from pathlib import Path

import pytest

from connectors.models import SyncRun
from connectors.services import source_create, source_sync
from kbsearch.documents import faults
from kbsearch.documents.models import Document, PendingIndexChange
from kbsearch.documents.outbox import documents_index_verify, index_changes_replay
from tests.counting_encoder import CountingEncoder

pytestmark = pytest.mark.django_db

FILES = {
    "_access.yaml": "principals: [public]\n",
    "welcome.md": "# Welcome\n\nThe cafeteria opens at 8am.\n",
    "hr/salary.md": "# Salary bands\n\nBand 3 pays between 60k and 80k.\n",
    "hr/managers/reorg.md": "# Reorganisation\n\nThe robotics team merges in May.\n",
    "eng/deploy.md": "# Deploy\n\nRun the deployment pipeline.\n",
}


@pytest.fixture
def share(tmp_path, tiny_encoder, index_backend):
    root = tmp_path / "share"
    for relative, text in FILES.items():
        path = Path(root, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    source = source_create(key="files", name="Files", connector="filesystem", config={"root": str(root)})
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    return source


def stored_places() -> dict[str, tuple[str, str]]:
    return {d.external_id: (d.place_key, d.place_label) for d in Document.objects.all()}


def indexed_places(index) -> dict[str, frozenset[str]]:
    documents = dict(Document.objects.values_list("pk", "external_id"))
    return {documents[pk]: entry.places for pk, entry in index.indexed_documents(list(documents)).items()}


WANTED = {"welcome.md": ("", ""), "hr/salary.md": ("hr", "hr"), "hr/managers/reorg.md": ("hr", "hr"),
          "eng/deploy.md": ("eng", "eng")}
INDEXED = {"welcome.md": frozenset({""}), "hr/salary.md": frozenset({"files:hr"}),
           "hr/managers/reorg.md": frozenset({"files:hr"}), "eng/deploy.md": frozenset({"files:eng"})}


def test_a_file_is_in_its_top_folder(share, index_backend):
    assert stored_places() == WANTED
    assert indexed_places(index_backend) == INDEXED


def test_documents_from_before_places_get_them_from_a_full_sync_without_re_embedding(share, tiny_encoder, index_backend):
    # As an upgrade finds them: no place in the database, none in the index.
    Document.objects.update(place_key="", place_label="")
    index_backend.update_places_many(dict.fromkeys(Document.objects.values_list("pk", flat=True), ""))
    counting = CountingEncoder(tiny_encoder)
    run = source_sync(source=share, encoder=counting, index=index_backend, full=True)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert run.counts["place_updated"] == 3 and run.counts["unchanged"] == 1
    assert counting.passages == 0
    assert stored_places() == WANTED and indexed_places(index_backend) == INDEXED


def test_a_move_killed_before_the_index_took_it_is_replayed(share, tiny_encoder, index_backend):
    Document.objects.update(place_key="", place_label="")
    index_backend.update_places_many(dict.fromkeys(Document.objects.values_list("pk", flat=True), ""))
    faults.arm("documents.place.committed")
    try:
        with pytest.raises(faults.Killed):
            source_sync(source=share, encoder=tiny_encoder, index=index_backend, full=True)
    finally:
        faults.disarm_all()
    assert PendingIndexChange.objects.filter(kind=PendingIndexChange.Kind.PLACE).count() == 1
    index_changes_replay(source_id=share.pk, index=index_backend)
    moved = {external_id for external_id, places in indexed_places(index_backend).items() if places != {""}}
    assert len(moved) == 1 and indexed_places(index_backend)[next(iter(moved))] == INDEXED[next(iter(moved))]
    assert not PendingIndexChange.objects.exists()


def test_a_move_the_index_lost_is_found_and_repaired(share, index_backend):
    deploy = Document.objects.get(external_id="eng/deploy.md")
    index_backend.update_places_many({deploy.pk: "files:elsewhere"})  # behind the outbox's back
    assert documents_index_verify(source=share, index=index_backend) == 1
    assert indexed_places(index_backend) == INDEXED
