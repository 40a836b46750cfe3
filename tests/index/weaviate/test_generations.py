"""Generations: builds in their own collection, the alias switch, replay of concurrent writes, drop."""
import pytest

from kbsearch.index.base import IndexBackendError, IndexMetadata, IndexMismatch
from kbsearch.index.weaviate import WeaviateIndexBackend
from tests.index.entries import chunk
from tests.index.weaviate.conftest import METADATA

NEW_MODEL = IndexMetadata(model_id="e5-small", model_version="v2", dimension=8, analyzer_version=2)


def _chunk_ids(server, collection):
    return sorted(obj.properties["chunk_id"] for obj in server.store[collection].objects.values())


def test_build_fills_a_new_collection_then_moves_the_alias(backend, server):
    backend.upsert_chunks([chunk(1, 10, "old", {"public"})])
    server.calls.clear()
    build = backend.generation_create(metadata=NEW_MODEL)
    assert server.aliases["KbTest"] == "KbTest_g1"  # still serving the old one while building
    build.write([chunk(1, 10, "new", {"public"})]).raise_for_failures()
    generation = build.switch(chunks_for_documents=lambda ids: [])
    assert [call[0] for call in server.calls] == ["create", "update_description", "alias_update"]
    assert server.calls[-1] == ("alias_update", "KbTest", "KbTest_g2")
    assert (generation.number, generation.chunk_count) == (2, 1)
    assert [(g.number, g.serving) for g in backend.generations()] == [(1, False), (2, True)]


def test_writes_during_a_build_are_logged_and_replayed_with_the_new_model(backend, server):
    backend.upsert_chunks([chunk(1, 10, "a", {"public"}), chunk(2, 11, "b", {"public"})])
    build = backend.generation_create(metadata=NEW_MODEL)
    build.write([chunk(1, 10, "a", {"public"}), chunk(2, 11, "b", {"public"})]).raise_for_failures()
    # Meanwhile, another process re-ingests document 10 (one chunk now) and deletes document 11.
    other = WeaviateIndexBackend(collection="KbTest", client=server)
    other.ensure_index(metadata=METADATA)
    other.upsert_chunks([chunk(5, 10, "a changed", {"group:hr"})])
    other.delete_documents([1 + 10])
    source = {10: [chunk(5, 10, "a changed", {"group:hr"})]}
    replayed = []

    def chunks_for_documents(ids):
        replayed.append(sorted(ids))
        return [c for document_id in ids for c in source.get(document_id, [])]

    build.switch(chunks_for_documents=chunks_for_documents)
    assert replayed == [[10, 11]]
    assert _chunk_ids(server, "KbTest_g2") == [5]  # the source now has chunk 5 only: 1 and 2 went
    assert server.store["KbTest_changes"].objects == {}  # the log is cleared


def test_replay_removes_chunks_the_source_no_longer_has(backend, server):
    build = backend.generation_create(metadata=NEW_MODEL)
    build.write([chunk(1, 10, "a", {"public"}), chunk(2, 10, "b", {"public"})]).raise_for_failures()
    backend.upsert_chunks([chunk(1, 10, "a", {"public"})])  # logged while building
    build.switch(chunks_for_documents=lambda ids: [chunk(1, 10, "a", {"public"})])
    assert _chunk_ids(server, "KbTest_g2") == [1]


def test_old_model_writers_are_refused_after_the_switch(backend, server):
    build = backend.generation_create(metadata=NEW_MODEL)
    build.switch(chunks_for_documents=lambda ids: [])
    with pytest.raises(IndexMismatch):
        backend.upsert_chunks([chunk(1, 10, "a", {"public"})])


def test_one_build_at_a_time_and_abort_drops_it(backend, server):
    build = backend.generation_create(metadata=NEW_MODEL)
    with pytest.raises(IndexBackendError, match="one build at a time"):
        backend.generation_create(metadata=NEW_MODEL)
    build.abort()
    assert "KbTest_g2" not in server.store and server.aliases["KbTest"] == "KbTest_g1"


def test_rollback_is_a_switch_and_the_serving_generation_cannot_be_dropped(backend, server):
    backend.generation_create(metadata=NEW_MODEL).switch(chunks_for_documents=lambda ids: [])
    with pytest.raises(IndexBackendError, match="serves searches"):
        backend.generation_drop(2)
    info = backend.generation_switch(1)
    assert info.serving and server.aliases["KbTest"] == "KbTest_g1" and backend.current_generation() == 1
    backend.generation_drop(2)
    assert "KbTest_g2" not in server.store


def test_a_rollback_target_that_missed_writes_is_caught_up_first(backend, server):
    backend.upsert_chunks([chunk(1, 10, "a", {"public"})])
    backend.generation_create(metadata=METADATA).switch(chunks_for_documents=lambda ids: [])
    backend.upsert_chunks([chunk(1, 10, "a", {"group:hr"})])  # generation 1 no longer serves
    with pytest.raises(IndexBackendError, match="missed writes"):
        backend.generation_switch(1)
    assert server.aliases["KbTest"] == "KbTest_g2"  # nothing moved
    backend.generation_switch(1, chunks_for_documents=lambda ids: [chunk(1, 10, "a", {"group:hr"})])
    assert server.aliases["KbTest"] == "KbTest_g1"
    (stored,) = server.store["KbTest_g1"].objects.values()
    assert stored.properties["principals"] == ["group:hr"]


def test_a_switch_keeps_one_generation_for_rollback_and_drops_older_ones(backend, server):
    for _ in range(3):
        backend.generation_create(metadata=NEW_MODEL).switch(chunks_for_documents=lambda ids: [])
    assert sorted(name for name in server.store if "_g" in name) == ["KbTest_g3", "KbTest_g4"]


def test_an_unfinished_build_cannot_be_switched_to(backend):
    backend.generation_create(metadata=NEW_MODEL)
    with pytest.raises(IndexBackendError, match="still being built"):
        backend.generation_switch(2)


def test_a_write_racing_a_switch_follows_the_alias(backend, server):
    """The alias moves between a writer's schema read and its write: the write is applied again."""
    build = backend.generation_create(metadata=METADATA)  # same model: e.g. a rebuild
    real_insert = server.store["KbTest_g1"].data.insert_many

    def insert_then_switch(objects):
        result = real_insert(objects)
        server.store["KbTest_g1"].data.insert_many = real_insert
        build.switch(chunks_for_documents=lambda ids: [])
        return result

    server.store["KbTest_g1"].data.insert_many = insert_then_switch
    backend.upsert_chunks([chunk(1, 10, "a", {"public"})])
    assert _chunk_ids(server, "KbTest_g2") == [1]


def test_destroy_removes_alias_generations_and_log(backend, server):
    build = backend.generation_create(metadata=NEW_MODEL)
    backend.upsert_chunks([chunk(1, 10, "a", {"public"})])  # logged: creates the change log
    build.switch(chunks_for_documents=lambda ids: [])
    backend.destroy()
    assert server.aliases == {} and server.store == {}
