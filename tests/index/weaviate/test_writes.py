"""Batch writes, failures, deletes past the per-call cap and bulk access and place updates."""
import numpy as np
import pytest

from kbsearch.index.base import IndexMetadata, IndexMismatch
from kbsearch.index.weaviate.batching import chunk_uuid
from tests.index.entries import chunk


def _stored(server, collection="KbTest_g1"):
    return {obj.properties["chunk_id"]: obj for obj in server.store[collection].objects.values()}


def test_batch_payload_has_deterministic_uuids_terms_and_named_vector(backend, server):
    result = backend.upsert_chunks([chunk(1, 10, "VPN access policies", {"group:hr"})])
    assert (result.written, result.failures) == (1, ())
    _, objects = server.insert_calls[0]
    sent = objects[0]
    assert str(sent.uuid) == chunk_uuid(1)
    assert sent.properties["terms"] == "vpn access policy"
    assert sent.properties["principals"] == ["group:hr"]
    assert set(sent.vector) == {"chunk"} and len(sent.vector["chunk"]) == 8


def test_a_failed_object_becomes_an_item_failure_with_the_servers_reason(backend, server):
    server.fail_next[2] = "invalid text property 'terms'"
    result = backend.upsert_chunks([chunk(1, 10, "a", {"public"}), chunk(2, 10, "b", {"public"})])
    assert result.written == 1
    [failure] = result.failures
    assert (failure.chunk_id, failure.document_id, failure.retryable) == (2, 10, False)
    assert "invalid text property" in failure.reason
    assert set(_stored(server)) == {1}


def test_transient_failures_are_retried(backend, server):
    server.fail_next[2] = "context deadline exceeded"
    result = backend.upsert_chunks([chunk(1, 10, "a", {"public"}), chunk(2, 10, "b", {"public"})])
    assert (result.written, result.failures) == (2, ())
    assert [len(objects) for _, objects in server.insert_calls[-2:]] == [2, 1]


def test_wrong_dimension_and_non_finite_vectors_are_refused_before_sending(backend, server):
    result = backend.upsert_chunks([
        chunk(1, 10, "a", {"public"}, vector=np.ones(3, dtype=np.float32)),
        chunk(2, 11, "b", {"public"}, vector=np.full(8, np.inf, dtype=np.float32)),
    ])
    assert result.written == 0
    assert [(f.chunk_id, f.retryable) for f in result.failures] == [(1, False), (2, False)]
    assert "index wants (8,)" in result.failures[0].reason and "non-finite" in result.failures[1].reason
    assert server.insert_calls == []


def test_writes_check_the_serving_metadata(backend, server):
    backend._expected = IndexMetadata(model_id="e5-small", model_version="v2", dimension=8, analyzer_version=2)
    with pytest.raises(IndexMismatch, match="model_version"):
        backend.upsert_chunks([chunk(1, 10, "a", {"public"})])
    with pytest.raises(IndexMismatch):
        backend.ensure_index(metadata=backend._expected)
    assert server.insert_calls == []


def test_deletes_loop_past_the_per_call_cap(server):
    from kbsearch.index.weaviate import WeaviateIndexBackend
    from tests.index.weaviate.conftest import METADATA

    server.delete_cap = 1000
    backend = WeaviateIndexBackend(collection="KbTest", client=server, delete_limit=1000)
    backend.ensure_index(metadata=METADATA)
    backend.upsert_chunks([chunk(i, i, "x", {"public"}) for i in range(1, 2501)])
    backend.delete_documents(list(range(1, 2501)))
    # 2,500 ids in slices of 1,000 (three filters); a call that hit the cap (1,000 deleted) may have
    # left more, so it is repeated: 1,000 + 0, 1,000 + 0, 500 -> five calls.
    slices = [len(where.value) for _, where in server.delete_calls]
    assert slices == [1000, 1000, 1000, 1000, 500] and _stored(server) == {}


def test_a_slice_with_more_chunks_than_the_cap_is_repeated(server):
    from kbsearch.index.weaviate import WeaviateIndexBackend
    from tests.index.weaviate.conftest import METADATA

    server.delete_cap = 10
    backend = WeaviateIndexBackend(collection="KbTest", client=server, delete_limit=10)
    backend.ensure_index(metadata=METADATA)
    backend.upsert_chunks([chunk(i, 1, "x", {"public"}) for i in range(1, 26)] + [chunk(99, 2, "y", {"public"})])
    backend.delete_documents([1])
    assert len(server.delete_calls) == 3 and set(_stored(server)) == {99}


def test_update_access_many_rewrites_only_changed_chunks_with_their_vectors(backend, server):
    backend.upsert_chunks([chunk(1, 10, "a", {"group:hr"}), chunk(2, 10, "b", {"group:hr"}),
                           chunk(3, 11, "c", {"public"})])
    before = _stored(server)[1].vector["chunk"]
    server.insert_calls.clear()
    result = backend.update_access_many({10: frozenset({"user:ann"}), 11: frozenset({"public"}), 12: frozenset({"x"})})
    assert (result.written, result.failures) == (2, ())
    assert [sorted(o.properties["chunk_id"] for o in objects) for _, objects in server.insert_calls] == [[1, 2]]
    stored = _stored(server)
    assert stored[1].properties["principals"] == ["user:ann"] and stored[3].properties["principals"] == ["public"]
    assert stored[1].vector["chunk"] == before and stored[1].properties["terms"] == "a"


def test_upsert_gives_sibling_chunks_the_documents_new_access_list(backend, server):
    backend.upsert_chunks([chunk(1, 10, "a", {"group:hr"}), chunk(2, 10, "b", {"group:hr"})])
    backend.upsert_chunks([chunk(1, 10, "a2", {"group:finance"})])
    assert {cid: o.properties["principals"] for cid, o in _stored(server).items()} == {1: ["group:finance"], 2: ["group:finance"]}
    assert backend.indexed_documents([10, 99]) == {
        10: type(backend.indexed_documents([10])[10])(chunk_ids=frozenset({1, 2}), principals=frozenset({"group:finance"}))
    }


def test_update_places_many_rewrites_only_moved_chunks_and_keeps_their_access(backend, server):
    backend.upsert_chunks([chunk(1, 10, "a", {"group:hr"}, place="wiki:HR"), chunk(2, 10, "b", {"group:hr"}, place="wiki:HR"),
                           chunk(3, 11, "c", {"public"}, place="wiki:ENG")])
    assert _stored(server)[1].properties["place"] == "wiki:HR"
    before = _stored(server)[1].vector["chunk"]
    server.insert_calls.clear()
    result = backend.update_places_many({10: "wiki:OPS", 11: "wiki:ENG", 12: "wiki:X"})
    assert (result.written, result.failures) == (2, ())
    assert [sorted(o.properties["chunk_id"] for o in objects) for _, objects in server.insert_calls] == [[1, 2]]
    stored = _stored(server)
    assert [stored[i].properties["place"] for i in (1, 2, 3)] == ["wiki:OPS", "wiki:OPS", "wiki:ENG"]
    assert stored[1].properties["principals"] == ["group:hr"] and stored[1].vector["chunk"] == before
    assert backend.indexed_documents([10])[10].places == frozenset({"wiki:OPS"})


def test_upsert_gives_sibling_chunks_the_documents_new_place(backend, server):
    backend.upsert_chunks([chunk(1, 10, "a", {"public"}, place="wiki:HR"), chunk(2, 10, "b", {"public"}, place="wiki:HR")])
    backend.upsert_chunks([chunk(1, 10, "a2", {"public"}, place="wiki:ENG")])
    assert {cid: o.properties["place"] for cid, o in _stored(server).items()} == {1: "wiki:ENG", 2: "wiki:ENG"}


def test_a_chunk_written_before_places_reads_as_no_place(backend, server):
    backend.upsert_chunks([chunk(1, 10, "a", {"public"})])
    del _stored(server)[1].properties["place"]  # as an older version wrote it
    assert backend.indexed_documents([10])[10].places == frozenset({""})
    backend.update_places_many({10: "wiki:HR"})
    assert _stored(server)[1].properties["place"] == "wiki:HR" and _stored(server)[1].properties["terms"] == "a"


def test_iter_document_ids_yields_each_document_once_in_batches(backend):
    backend.upsert_chunks([chunk(i, i % 7, "x", {"public"}) for i in range(1, 50)])
    batches = list(backend.iter_document_ids(batch_size=3))
    ids = [document_id for batch in batches for document_id in batch]
    assert sorted(ids) == list(range(7)) and all(len(batch) <= 3 for batch in batches)
    assert backend.chunk_count() == 49
