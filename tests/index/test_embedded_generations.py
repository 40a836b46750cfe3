"""Rebuilding the embedded index into a new generation while other processes keep it open.

A second ``EmbeddedIndexBackend`` on the same path stands in for a web process or sync worker:
it shares nothing with the rebuilding instance but the files.
"""
import sqlite3
import threading

import numpy as np
import pytest

from kbsearch.index.base import IndexBackendError, IndexMismatch
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.index.embedded import store as store_module
from tests.index.entries import DIM, Truth, chunk, meta, public, unit


def ids(hits):
    return [hit.chunk_id for hit in hits]


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "index.sqlite3")


@pytest.fixture
def opened(path):
    """Opens backends on ``path`` and closes them after the test."""
    backends = []

    def open_backend():
        backend = EmbeddedIndexBackend(path=path)
        backends.append(backend)
        return backend

    yield open_backend
    for backend in backends:
        backend.close()


def test_a_running_reader_sees_the_new_generation_at_its_next_search(opened):
    index, reader = opened(), opened()
    index.ensure_index(metadata=meta(DIM))
    index.upsert_chunks([chunk(1, 1, "old wording", {"public"}), chunk(2, 2, "kept page", {"public"})])
    assert ids(reader.bm25_search(terms=["old"], filters=public(), limit=5)) == [1]  # loaded into memory

    truth = Truth([chunk(1, 1, "new wording", {"public"}), chunk(2, 2, "kept page", {"group:hr"})])
    generation = index.rebuild(metadata=meta(DIM), batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)

    assert (generation.number, generation.chunk_count) == (2, 2)
    assert reader.bm25_search(terms=["old"], filters=public(), limit=5) == []  # no stale result
    assert ids(reader.bm25_search(terms=["new"], filters=public(), limit=5)) == [1]
    assert reader.bm25_search(terms=["kept"], filters=public(), limit=5) == []  # its new access list
    assert ids(reader.bm25_search(terms=["kept"], filters=public("group:hr"), limit=5)) == [2]
    assert reader.current_generation() == 2
    assert truth.asked == []  # nobody wrote during the rebuild: nothing to replay


def test_a_rebuild_can_change_the_vector_dimension(opened):
    index, reader = opened(), opened()
    index.ensure_index(metadata=meta(DIM))
    reader.ensure_index(metadata=meta(DIM))
    index.upsert_chunks([chunk(1, 1, "page", {"public"})])
    assert ids(reader.vector_search(vector=unit(1), filters=public(), limit=5)) == [1]

    truth = Truth([chunk(1, 1, "page", {"public"}, dimension=4), chunk(2, 2, "other", {"public"}, dimension=4)])
    index.rebuild(metadata=meta(4), batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)

    assert ids(reader.vector_search(vector=unit(2, 4), filters=public(), limit=5)) == [2, 1]
    with pytest.raises(IndexBackendError, match="shape"):
        reader.vector_search(vector=unit(1), filters=public(), limit=5)
    with pytest.raises(IndexMismatch, match="dimension 4 != 8"):  # a worker still on the old model fails loudly
        reader.upsert_chunks([chunk(3, 3, "late", {"public"})])
    assert reader.chunk_count() == 2


def test_a_write_waiting_for_the_switch_lands_in_the_new_generation(opened, path):
    index, worker, reader = opened(), opened(), opened()
    index.ensure_index(metadata=meta(DIM))
    worker.ensure_index(metadata=meta(DIM))
    index.upsert_chunks([chunk(1, 1, "alpha", {"public"})])
    truth = Truth([chunk(1, 1, "alpha", {"public"})])
    late = chunk(5, 5, "epsilon", {"public"})
    live_store = worker.store  # the worker has generation 1 open
    writing = threading.Event()
    live_upsert = live_store.upsert

    def upsert_announced(chunks):
        writing.set()
        live_upsert(chunks)

    live_store.upsert = upsert_announced
    move_pointer = index.files.point_at
    threads = []

    def point_at_while_a_write_waits(generation, *, previous, kept):
        # Called with the live generation's write lock held: the worker's write is under way and
        # must wait for the lock, then find the pointer moved.
        thread = threading.Thread(target=worker.upsert_chunks, args=([late],))
        thread.start()
        threads.append(thread)
        assert writing.wait(timeout=30)
        move_pointer(generation, previous=previous, kept=kept)

    index.files.point_at = point_at_while_a_write_waits
    index.rebuild(metadata=meta(DIM), batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)
    threads[0].join(timeout=60)

    assert not threads[0].is_alive()
    assert reader.current_generation() == 2
    assert ids(reader.bm25_search(terms=["epsilon"], filters=public(), limit=5)) == [5]
    with sqlite3.connect(path) as replaced:  # not written into the generation nobody reads any more
        assert replaced.execute("SELECT COUNT(*) FROM chunks WHERE chunk_id = 5").fetchone() == (0,)


def test_a_writer_that_missed_the_switch_is_redirected_inside_its_transaction(opened, monkeypatch):
    index, worker = opened(), opened()
    index.ensure_index(metadata=meta(DIM))
    worker.ensure_index(metadata=meta(DIM))
    worker.upsert_chunks([chunk(1, 1, "alpha", {"public"})])
    stale = worker.files.signature()
    truth = Truth([chunk(1, 1, "alpha", {"public"})])
    index.rebuild(metadata=meta(DIM), batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)

    # The pointer's stat looks unchanged to this worker: only the check under the write lock can catch it.
    monkeypatch.setattr(worker.files, "signature", lambda: stale)
    worker.upsert_chunks([chunk(2, 2, "beta", {"public"})])

    monkeypatch.undo()
    fresh = opened()
    assert fresh.current_generation() == 2
    assert ids(fresh.bm25_search(terms=["beta"], filters=public(), limit=5)) == [2]


def test_a_failed_rebuild_leaves_the_current_generation_serving(opened, path):
    index, reader = opened(), opened()
    index.ensure_index(metadata=meta(DIM))
    index.upsert_chunks([chunk(1, 1, "alpha", {"public"})])

    def broken_batches():
        yield [chunk(1, 1, "replacement", {"public"})]
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="went away"):
        index.rebuild(metadata=meta(DIM), batches=broken_batches(), chunks_for_documents=lambda ids: [])

    assert reader.current_generation() == 1
    assert ids(reader.bm25_search(terms=["alpha"], filters=public(), limit=5)) == [1]
    assert index.files.on_disk() == {1}  # the unfinished generation is gone
    truth = Truth([chunk(1, 1, "beta", {"public"})])  # and the build lock was released
    assert index.rebuild(metadata=meta(DIM), batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents).number == 2


def test_one_rebuild_at_a_time(opened):
    index = opened()
    build = index.generation_create(metadata=meta(DIM))
    with pytest.raises(IndexBackendError, match="another rebuild"):
        opened().generation_create(metadata=meta(DIM))
    build.abort()
    opened().generation_create(metadata=meta(DIM)).abort()


def test_the_replaced_generation_is_kept_for_one_rollback_and_older_ones_removed(opened, path):
    index = opened()
    index.ensure_index(metadata=meta(DIM))  # a single-file index, as written before generations existed
    index.upsert_chunks([chunk(1, 1, "alpha", {"public"})])
    truth = Truth([chunk(1, 1, "alpha", {"public"})])
    for expected_on_disk in ({1, 2}, {2, 3}, {3, 4}):
        index.rebuild(metadata=meta(DIM), batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)
        assert index.files.on_disk() == expected_on_disk
    assert index.files.read().previous == 3
    assert ids(opened().bm25_search(terms=["alpha"], filters=public(), limit=5)) == [1]


def test_files_of_a_build_that_died_are_removed_by_the_next(opened):
    index = opened()
    index.ensure_index(metadata=meta(DIM))
    dead = index.generation_create(metadata=meta(DIM))
    dead.write([chunk(1, 1, "half written", {"public"})])
    dead._resources.close()  # the process died: its lock is gone, its file stays
    assert index.files.on_disk() == {1, 2}

    truth = Truth([chunk(1, 1, "complete", {"public"})])
    generation = index.rebuild(metadata=meta(DIM), batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)
    assert generation.number == 2
    assert index.files.on_disk() == {1, 2}
    assert index.bm25_search(terms=["half"], filters=public(), limit=5) == []
    assert ids(index.bm25_search(terms=["complete"], filters=public(), limit=5)) == [1]


def test_a_rebuild_refuses_to_switch_when_writes_during_it_are_no_longer_all_known(opened, monkeypatch):
    index, worker = opened(), opened()
    index.ensure_index(metadata=meta(DIM))
    worker.ensure_index(metadata=meta(DIM))
    index.upsert_chunks([chunk(1, 1, "alpha", {"public"})])
    monkeypatch.setattr(store_module, "CHANGE_LOG_KEEP", 2)
    truth = Truth([chunk(1, 1, "alpha", {"public"})])
    build = index.generation_create(metadata=meta(DIM))
    for document_id in range(2, 7):
        worker.upsert_chunks([chunk(document_id, document_id, "busy", {"public"})])
    with pytest.raises(IndexBackendError, match="no longer all known"):
        build.switch(chunks_for_documents=truth.chunks_for_documents)
    build.abort()
    assert worker.current_generation() == 1
    assert len(worker.bm25_search(terms=["busy"], filters=public(), limit=10)) == 5


def test_the_new_generation_is_as_durable_as_the_first(opened):
    index = opened()
    truth = Truth([chunk(1, 1, "alpha", {"public"})])
    index.rebuild(metadata=meta(DIM), batches=truth.batches(), chunks_for_documents=truth.chunks_for_documents)
    assert index.current_generation() == 2
    assert index.store.pragma("synchronous") == 2
    assert np.isclose(index.vector_search(vector=unit(1), filters=public(), limit=1)[0].score, 1.0)


def test_a_pointer_to_a_missing_generation_is_a_clear_error_not_an_empty_index(opened, path):
    index = opened()
    index.ensure_index(metadata=meta(DIM))
    index.upsert_chunks([chunk(1, 1, "alpha", {"public"})])
    index.files.point_at(7, previous=1)  # generation 7 was never written
    with pytest.raises(IndexBackendError, match="could not open the current generation"):
        index.bm25_search(terms=["alpha"], filters=public(), limit=5)
    assert not index.files.file_of(7).exists()
