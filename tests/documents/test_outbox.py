"""The index outbox on its own: replay reads the database, so it is idempotent and the latest state wins."""
import pytest

from connectors.services import source_create, source_sync
from kbsearch.documents import faults
from kbsearch.documents.models import Chunk, Document, PendingIndexChange
from kbsearch.documents.outbox import index_changes_record, index_changes_replay
from kbsearch.documents.tasks import index_changes_replay_task
from tests.connectors.sync_state import make_share, write
from tests.counting_encoder import CountingEncoder
from tests.documents.index_state import index_matches_database

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(tmp_path, tiny_encoder, index_backend):
    share = make_share(tmp_path / "share")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(share)})
    source_sync(source=source, encoder=tiny_encoder)
    return source


def test_periodic_task_replays_work_left_by_a_dead_run(source, tmp_path, tiny_encoder, index_backend):
    write(tmp_path / "share" / "welcome.md", "# Welcome\n\nThe cafeteria moved to building B.\n")
    faults.arm("documents.store.committed")
    try:
        with pytest.raises(faults.Killed):
            source_sync(source=source, encoder=tiny_encoder)
    finally:
        faults.disarm_all()
    assert not index_matches_database(index_backend)

    assert index_changes_replay_task.apply().get() == 1

    assert index_matches_database(index_backend)
    assert not PendingIndexChange.objects.exists()


def test_replay_is_idempotent_and_reembeds_only_what_the_index_lacks(source, tiny_encoder, index_backend):
    encoder = CountingEncoder(tiny_encoder)
    welcome = Document.objects.get(external_id="welcome.md")
    salary = Document.objects.get(external_id="hr/salary.md")
    index_backend.delete_documents([welcome.pk])  # the vectors of this one are gone
    index_backend.update_access(salary.pk, frozenset({"public"}))  # this one only has the wrong access
    for _ in range(2):  # several records for one document collapse into one piece of work
        index_changes_record(documents=[(welcome.pk, source.pk), (salary.pk, source.pk)], kind="upsert")

    assert index_changes_replay(source_id=source.pk, index=index_backend, encoder=encoder) == 2
    assert encoder.passages == Chunk.objects.filter(document=welcome).count()
    assert index_matches_database(index_backend)

    index_changes_record(documents=[(welcome.pk, source.pk), (salary.pk, source.pk)], kind="upsert")
    assert index_changes_replay(source_id=source.pk, index=index_backend, encoder=encoder) == 2
    assert encoder.passages == Chunk.objects.filter(document=welcome).count()  # nothing re-embedded
    assert not PendingIndexChange.objects.exists()


def test_a_later_state_supersedes_an_earlier_record(source, tiny_encoder, index_backend):
    """An upsert record for a document deleted since is applied as the deletion it now is."""
    welcome = Document.objects.get(external_id="welcome.md")
    index_changes_record(documents=[(welcome.pk, source.pk)], kind="upsert")
    Document.objects.filter(pk=welcome.pk).delete()
    index_changes_record(documents=[(welcome.pk, source.pk)], kind="delete")

    index_changes_replay(source_id=source.pk, index=index_backend, encoder=tiny_encoder)

    assert welcome.pk not in index_backend.document_ids()
    assert index_matches_database(index_backend)


def test_records_of_a_deleted_source_are_replayed_without_it(source, index_backend):
    welcome = Document.objects.get(external_id="welcome.md")
    Document.objects.filter(pk=welcome.pk).delete()
    index_changes_record(documents=[(welcome.pk, 987654)], kind="delete")  # no such source any more

    assert index_changes_replay_task.apply().get() == 1

    assert welcome.pk not in index_backend.document_ids()
    assert not PendingIndexChange.objects.exists()


class PoisonEncoder(CountingEncoder):
    """The tiny encoder, except that passages mentioning "poison" get a NaN vector the index refuses."""

    def __init__(self, inner, *, poisoned: bool = True) -> None:
        super().__init__(inner)
        self.poisoned = poisoned

    def encode_passages(self, texts):
        vectors = super().encode_passages(texts).copy()
        for row, text in enumerate(texts):
            if self.poisoned and "poison" in text:
                vectors[row] = float("nan")
        return vectors


def test_chunks_the_index_refuses_are_document_errors_kept_for_replay(source, tmp_path, tiny_encoder, index_backend):
    write(tmp_path / "share" / "welcome.md", "# Welcome\n\nA poison pill for the index.\n")
    write(tmp_path / "share" / "fresh.md", "# Fresh\n\nA healthy new page.\n")
    encoder = PoisonEncoder(tiny_encoder)

    run = source_sync(source=source, encoder=encoder)

    welcome = Document.objects.get(external_id="welcome.md")
    assert [error["external_id"] for error in run.errors] == ["welcome.md"]
    assert "non-finite vector" in run.errors[0]["reason"]
    assert set(PendingIndexChange.objects.values_list("document_id", flat=True)) == {welcome.pk}
    fresh = Document.objects.get(external_id="fresh.md")
    assert index_backend.indexed_documents([fresh.pk])[fresh.pk].chunk_ids == set(
        fresh.chunks.values_list("pk", flat=True)
    )
    # A replay that the index refuses again keeps the record; once the vectors are sound it clears.
    assert index_changes_replay(source_id=source.pk, index=index_backend, encoder=encoder) == 0
    assert PendingIndexChange.objects.filter(document_id=welcome.pk).exists()
    encoder.poisoned = False
    assert index_changes_replay(source_id=source.pk, index=index_backend, encoder=encoder) == 1
    assert not PendingIndexChange.objects.exists()
    assert index_matches_database(index_backend)
