"""Index contract: metadata checks, generations (create, list, switch, rollback, drop), writes
during a build, failed builds and restarts. A second backend object on the same storage stands in
for another process."""
import pytest

from kbsearch.index.base import IndexBackendError, IndexMismatch, SearchQuery
from tests.index.entries import DIM, Truth, chunk, meta, public, unit

V2 = meta(model="test-model", version="2")


def ids(hits):
    return [hit.chunk_id for hit in hits]


def found(index, word):
    return ids(index.bm25_search(terms=[word], filters=public(), limit=10))


def test_metadata_is_recorded_and_a_mismatch_refused_at_start(storage, backend):
    assert backend.serving_metadata() == meta()
    backend.ensure_index(metadata=meta())  # the same again: fine
    for other in (meta(model="other-model"), meta(version="2"), meta(dimension=DIM * 2),
                  meta().__class__(**{**meta().__dict__, "analyzer_version": meta().analyzer_version + 1})):
        with pytest.raises(IndexMismatch):
            storage.open().ensure_index(metadata=other)
    assert backend.serving_metadata() == meta()


def test_writes_need_declared_metadata_and_fail_after_a_switch_to_another_model(storage, backend):
    undeclared = storage.open()
    with pytest.raises(IndexBackendError, match="ensure_index"):
        undeclared.upsert_chunks([chunk(1, 1, "alpha", {"public"})])
    backend.upsert_chunks([chunk(1, 1, "alpha", {"public"})]).raise_for_failures()
    truth = Truth([chunk(1, 1, "alpha", {"public"})])

    storage.open().rebuild(metadata=V2, batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)

    with pytest.raises(IndexMismatch, match="model_version"):  # this process still embeds with v1
        backend.upsert_chunks([chunk(2, 2, "beta", {"public"})])
    with pytest.raises(IndexMismatch):
        storage.open().ensure_index(metadata=meta())
    assert found(storage.open(), "beta") == []
    renewed = storage.open()
    renewed.ensure_index(metadata=V2)
    renewed.upsert_chunks([chunk(2, 2, "beta", {"public"})]).raise_for_failures()
    assert found(backend, "beta") == [2]  # the old object still searches the serving generation


def test_generations_create_list_switch_rollback_and_drop(storage, backend):
    backend.upsert_chunks([chunk(1, 1, "alpha", {"public"})])
    [first] = backend.generations()
    assert (first.metadata, first.chunk_count, first.serving) == (meta(), 1, True)
    reader = storage.open()
    assert found(reader, "alpha") == [1]

    build = backend.generation_create(metadata=V2)
    assert build.write([chunk(1, 1, "alpha", {"public"}), chunk(2, 2, "beta", {"public"})]).written == 2
    assert found(reader, "beta") == []  # not served before the switch
    truth = Truth([chunk(1, 1, "alpha", {"public"}), chunk(2, 2, "beta", {"public"})])
    switched = build.switch(chunks_for_documents=truth.chunks_for_documents)

    listed = backend.generations()
    assert [(g.number, g.metadata, g.chunk_count, g.serving) for g in listed] == [
        (first.number, meta(), 1, False), (switched.number, V2, 2, True),
    ]
    assert found(reader, "beta") == [2] and reader.serving_metadata() == V2
    assert reader.current_generation() == switched.number

    rolled_back = reader.generation_switch(first.number)  # nothing was written meanwhile
    assert (rolled_back.number, rolled_back.serving, rolled_back.metadata) == (first.number, True, meta())
    assert found(backend, "beta") == [] and found(backend, "alpha") == [1]
    assert backend.generation_switch(first.number).number == first.number  # already serving: no-op

    with pytest.raises(IndexBackendError):
        backend.generation_drop(first.number)  # serves
    backend.generation_drop(switched.number)
    assert [g.number for g in storage.open().generations()] == [first.number]
    with pytest.raises(IndexBackendError):
        backend.generation_switch(switched.number)  # gone
    with pytest.raises(IndexBackendError):
        backend.generation_drop(switched.number)


def test_a_rollback_catches_up_with_the_writes_made_meanwhile(storage, backend):
    backend.upsert_chunks([chunk(1, 1, "alpha", {"public"})])
    truth = Truth([chunk(1, 1, "alpha", {"public"})])
    old = backend.current_generation()
    backend.rebuild(metadata=V2, batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)
    writer = storage.open()
    writer.ensure_index(metadata=V2)
    truth.set(2, [chunk(2, 2, "beta", {"public"})])
    writer.upsert_chunks(truth.by_document[2])
    truth.set(1, [])
    writer.delete_documents([1])

    with pytest.raises(IndexBackendError):  # the old generation misses those writes: refused
        backend.generation_switch(old)
    assert backend.serving_metadata() == V2

    truth.asked.clear()
    backend.generation_switch(old, chunks_for_documents=truth.chunks_for_documents)
    assert sorted(truth.asked[0]) == [1, 2]
    assert backend.serving_metadata() == meta()
    assert found(backend, "beta") == [2] and found(backend, "alpha") == []


def test_writes_during_a_build_land_in_both_generations(storage, backend):
    worker, reader = storage.open(), storage.open()
    worker.ensure_index(metadata=meta())
    before = [chunk(1, 1, "alpha", {"public"}), chunk(2, 2, "beta", {"group:hr"}), chunk(3, 3, "gamma", {"public"})]
    backend.upsert_chunks(before)
    truth = Truth(before)
    old = backend.current_generation()

    build = backend.generation_create(metadata=meta())
    for batch in truth.batches():  # the build has read the database ...
        build.write(batch).raise_for_failures()
    # ... then a sync changes three documents, database first, index (the serving generation) second.
    truth.set(4, [chunk(4, 4, "delta", {"public"})])
    worker.upsert_chunks(truth.by_document[4])
    truth.set(2, [chunk(2, 2, "beta", {"public"})])
    worker.update_access(2, frozenset({"public"}))
    truth.set(3, [])
    worker.delete_documents([3])
    assert found(reader, "delta") == [4]  # served at once

    build.switch(chunks_for_documents=truth.chunks_for_documents)

    assert sorted(truth.asked[0]) == [2, 3, 4]  # only the documents written meanwhile are re-read
    for generation in (build.number, old):
        if reader.current_generation() != generation:
            reader.generation_switch(generation)
        assert found(reader, "delta") == [4], generation
        assert found(reader, "beta") == [2], generation
        assert found(reader, "gamma") == [], generation
        assert reader.document_ids() == {1, 2, 4}, generation


def test_a_kept_build_serves_only_after_a_switch_that_catches_it_up(storage, backend):
    worker, reader = storage.open(), storage.open()
    worker.ensure_index(metadata=meta())
    before = [chunk(1, 1, "alpha", {"public"}), chunk(2, 2, "beta", {"public"})]
    backend.upsert_chunks(before)
    truth = Truth(before)
    old = backend.current_generation()

    build = backend.generation_create(metadata=V2)
    for batch in truth.batches():
        build.write(batch).raise_for_failures()
    truth.set(3, [chunk(3, 3, "gamma", {"public"})])  # written while the build runs
    worker.upsert_chunks(truth.by_document[3])
    kept = build.keep(chunks_for_documents=truth.chunks_for_documents)

    assert [3] in truth.asked  # replayed by keep already
    listed = {g.number: (g.serving, g.metadata, g.chunk_count) for g in reader.generations()}
    assert listed == {old: (True, meta(), 3), kept.number: (False, V2, 3)}
    assert reader.serving_metadata() == meta() and reader.current_generation() == old
    # Written after keep: the kept generation misses these until its switch.
    truth.set(4, [chunk(4, 4, "delta", {"public"})])
    worker.upsert_chunks(truth.by_document[4])
    truth.set(1, [])
    worker.delete_documents([1])
    with pytest.raises(IndexBackendError):
        reader.generation_switch(kept.number)  # would serve a stale generation

    truth.asked.clear()
    reader.generation_switch(kept.number, chunks_for_documents=truth.chunks_for_documents)
    assert {1, 4} <= {document_id for asked in truth.asked for document_id in asked}
    assert backend.serving_metadata() == V2
    assert found(backend, "delta") == [4] and found(backend, "gamma") == [3] and found(backend, "alpha") == []
    assert backend.document_ids() == {2, 3, 4}


def test_a_failed_build_leaves_the_serving_generation_and_frees_the_next(storage, backend):
    backend.upsert_chunks([chunk(1, 1, "alpha", {"public"})])
    before = backend.generations()

    def broken_batches():
        yield [chunk(1, 1, "replacement", {"public"})]
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="went away"):
        backend.rebuild(metadata=V2, batches=broken_batches(), chunks_for_documents=lambda ids: [])

    reader = storage.open()
    assert reader.generations() == before
    assert found(reader, "alpha") == [1] and found(reader, "replacement") == []
    truth = Truth([chunk(1, 1, "beta", {"public"})])
    generation = backend.rebuild(metadata=V2, batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)
    assert reader.current_generation() == generation.number and found(reader, "beta") == [1]


def test_a_refused_chunk_fails_the_rebuild(storage, backend):
    import numpy as np

    bad = chunk(2, 2, "bad", {"public"}, vector=np.ones(DIM + 1, dtype=np.float32))
    with pytest.raises(IndexBackendError, match="1 of 2 items failed"):
        backend.rebuild(metadata=meta(), batches=[[chunk(1, 1, "fine", {"public"}), bad]],
                        chunks_for_documents=lambda ids: [])
    assert len(backend.generations()) == 1


def test_a_new_backend_object_serves_the_same_results(storage, backend):
    backend.upsert_chunks([
        chunk(1, 1, "VPN setup from home", {"public"}),
        chunk(2, 1, "VPN gateway list", {"public"}),
        chunk(3, 2, "公司的数据库备份", {"public"}, language="zh"),
        chunk(4, 3, "数据库 salary bands", {"group:hr"}, language="zh"),
        chunk(5, 4, "secret vpn draft", set()),
    ])
    backend.update_access(3, frozenset({"user:alice"}))
    backend.delete_documents([2])
    filters = public("group:hr")

    def snapshot(index):
        return (
            index.current_generation(),
            index.serving_metadata(),
            index.generations(),
            [(hit.chunk_id, round(hit.score, 5)) for hit in index.search(SearchQuery(
                filters=filters, limit=10, terms=["vpn", "数据", "据库"], vector=unit(1), alpha=0.5))],
            index.indexed_documents([1, 2, 3, 4]),
            sorted(index.document_ids()),
        )

    before = snapshot(backend)
    assert [chunk_id for chunk_id, _ in before[3]][:1] == [1] and 4 not in [c for c, _ in before[3]]
    backend.close()
    assert snapshot(storage.open()) == before
