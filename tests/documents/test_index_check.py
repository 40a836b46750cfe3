"""``manage.py index check [--repair]`` and the daily task: every kind of drift between the database
and the index is reported by document id, and repaired through the outbox so the index then holds
exactly what the database holds."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from connectors.services import source_create, source_sync
from kbsearch.documents.consistency import index_check
from kbsearch.documents.models import Chunk, Document, DocumentAccess, PendingIndexChange
from kbsearch.documents.tasks import index_check_task
from kbsearch.ops.metrics import INDEX_DRIFT
from tests.documents.index_state import database_state

pytestmark = pytest.mark.django_db

FILES = {
    "_access.yaml": "principals: [public]\n",
    "a.en.md": "# A\n\nAlpha text.\n",
    "b.en.md": "# B\n\nBravo text.\n",
    "c.en.md": "# C\n\nCharlie text.\n",
    "d.en.md": "# D\n\nDelta text.\n",
    "e.en.md": "# E\n\nEcho text.\n",
}


@pytest.fixture
def docs(tmp_path, index_backend):
    root = tmp_path / "share"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(root)})
    assert not source_sync(source=source).errors
    return {document.external_id[0]: document for document in Document.objects.all()}


def drift(docs, index_backend) -> dict[str, int]:
    """One drift of each kind, made behind the outbox's back (as a lost write would)."""
    index_backend.delete_documents([docs["a"].pk])  # missing from the index
    gone = docs["b"].pk
    Document.objects.filter(pk=gone).delete()  # extra in the index
    chunk = docs["c"].chunks.get()
    Chunk.objects.filter(pk=chunk.pk).update(ordinal=5)
    Chunk.objects.create(document=docs["c"], ordinal=0, text="Charlie again.", token_count=3)
    Chunk.objects.filter(pk=chunk.pk).delete()  # other chunk ids than the index holds
    DocumentAccess.objects.create(document=docs["d"], principal="group:hr")  # access list wider
    Document.objects.filter(pk=docs["e"].pk).update(place_key="Echo", place_label="Echo space")  # a move
    return {"missing": docs["a"].pk, "extra": gone, "chunks": docs["c"].pk, "access": docs["d"].pk,
            "place": docs["e"].pk}


def test_a_clean_index_has_no_drift(docs):
    report = index_check()
    assert (report.drifted, report.metadata_problems, report.documents_checked) == (0, [], 5)
    out = StringIO()
    call_command("index", "check", stdout=out)
    assert "drift: missing 0, extra 0, chunks 0, access 0, place 0; repaired 0" in out.getvalue()


def test_each_kind_of_drift_is_reported_then_repaired(docs, index_backend):
    made = drift(docs, index_backend)
    before = {kind: INDEX_DRIFT.labels(kind=kind)._value.get() for kind in made}

    report = index_check()
    assert {kind: getattr(report, kind) for kind in made} == {kind: [document_id] for kind, document_id in made.items()}
    assert report.repaired == 0 and index_backend.indexed_documents(sorted(database_state())) != database_state()
    assert {kind: INDEX_DRIFT.labels(kind=kind)._value.get() - before[kind] for kind in made} == dict.fromkeys(made, 1)
    out = StringIO()
    with pytest.raises(CommandError, match="--repair fixes it"):
        call_command("index", "check", stdout=out)
    assert f"extra: 1 document(s): {made['extra']}" in out.getvalue()

    out = StringIO()
    call_command("index", "check", "--repair", stdout=out)
    assert "repaired 5" in out.getvalue()
    assert index_backend.document_ids() == set(database_state())
    assert index_backend.indexed_documents(sorted(database_state())) == database_state()
    assert not PendingIndexChange.objects.exists()
    assert index_check().drifted == 0


def test_the_daily_task_repairs_and_logs_a_summary(docs, index_backend, caplog):
    drift(docs, index_backend)
    with caplog.at_level("WARNING", logger="kbsearch.documents.consistency"):
        assert index_check_task.delay().get() == 5
    assert ("index check: 4 documents checked; drift: missing 1, extra 1, chunks 1, access 1, place 1; repaired 5"
            in caplog.text)
    assert index_check().drifted == 0


def test_the_daily_check_is_scheduled():
    from kbsearch.celery import app

    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "kbsearch.documents.tasks.index_check_task" in scheduled


def test_a_serving_generation_of_another_model_is_reported(docs, index_backend, second_model_dir):
    from embeddings.loading import encoder_for_spec

    second = encoder_for_spec(str(second_model_dir))
    report = index_check(configured=second)
    [problem] = report.metadata_problems
    assert "model_id" in problem and "dimension 32 != 48" in problem and f"--model {second_model_dir}" in problem
    assert report.drifted == 0
