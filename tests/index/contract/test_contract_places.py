"""Index contract: places (a Confluence space, a SharePoint library, a share's top folder) as a
filter inside each leg, so a filtered page is as full as the filter allows; several places OR-ed,
ANDed with source and language; moving documents without re-embedding; places across a build."""
import numpy as np
import pytest

from kbsearch.index.base import SearchFilters, SearchQuery
from tests.index.entries import Truth, chunk, meta, unit

QUERY = unit(1)


def legs(index, filters, limit=1000, terms=("policy",)):
    """Chunk ids found by BM25, by vector and fused, each best first."""
    return (
        [hit.chunk_id for hit in index.bm25_search(terms=list(terms), filters=filters, limit=limit)],
        [hit.chunk_id for hit in index.vector_search(vector=QUERY, filters=filters, limit=limit)],
        [hit.chunk_id for hit in index.search(SearchQuery(filters=filters, limit=limit, terms=list(terms), vector=QUERY))],
    )


def where(places=None, **filters):
    return SearchFilters(principals=frozenset({"public"}), places=places, **filters)


@pytest.fixture
def spaces(backend):
    """40 strong matches in ENG, then 6 in HR (one Korean, one in source ``sp``), 3 without a place.

    ENG's chunks hold the query word most often and sit nearest the query vector, so an unfiltered
    top 10 is all ENG: a filter applied after ranking would leave HR an empty page."""
    entries = []
    for i in range(1, 41):
        entries.append(chunk(i, i, "policy " * 6 + f"eng{i}", {"public"}, vector=_near(i, 0.99), place="wiki:ENG"))
    for i in range(41, 47):
        entries.append(chunk(i, i, f"policy hr{i}", {"public"}, vector=_near(i, 0.5), place="wiki:HR",
                             language="ko" if i == 41 else "en", source="sp" if i == 42 else "wiki"))
    for i in range(47, 50):
        entries.append(chunk(i, i, f"policy none{i}", {"public"}, vector=_near(i, 0.4)))
    backend.upsert_chunks(entries).raise_for_failures()
    return backend


def _near(seed, cosine):
    """A unit vector at the given cosine to the query."""
    other = unit(seed + 1000)
    other = other - (other @ QUERY) * QUERY
    other /= np.linalg.norm(other)
    return (cosine * QUERY + np.sqrt(1 - cosine**2) * other).astype(np.float32)


def test_a_place_filter_fills_the_page_in_every_leg(spaces):
    assert all(set(found[:10]) <= set(range(1, 41)) for found in legs(spaces, where(), limit=10))
    for found in legs(spaces, where(frozenset({"wiki:HR"})), limit=4):
        assert len(found) == 4 and set(found) <= set(range(41, 47)), found
    for found in legs(spaces, where(frozenset({"wiki:HR"}))):
        assert sorted(found) == list(range(41, 47)), found


def test_several_places_are_or_ed_and_other_filters_and_ed(spaces):
    for found in legs(spaces, where(frozenset({"wiki:HR", "wiki:ENG"}))):
        assert sorted(found) == list(range(1, 47))
    for found in legs(spaces, where(frozenset({"wiki:HR"}), languages=frozenset({"en"}), source_keys=frozenset({"wiki"}))):
        assert sorted(found) == [43, 44, 45, 46]
    for found in legs(spaces, where(frozenset({"wiki:ENG"}), languages=frozenset({"ko"}))):
        assert found == []


def test_no_place_named_admits_nothing_and_no_filter_admits_everything(spaces):
    for places in (frozenset(), frozenset({""}), frozenset({"wiki:NOPE"}), frozenset({"wiki"}), frozenset({"ENG"})):
        assert legs(spaces, where(places)) == ([], [], []), places
    for found in legs(spaces, where()):
        assert sorted(found) == list(range(1, 50))  # documents without a place too


def test_places_match_exactly(backend):
    backend.upsert_chunks([
        chunk(1, 1, "policy", {"public"}, place="wiki:HR Team"),
        chunk(2, 2, "policy", {"public"}, place="wiki:HR"),
        chunk(3, 3, "policy", {"public"}, place="wiki:hr"),
        chunk(4, 4, "policy", {"public"}, place="sp:b!x,y/Shared Documents"),
    ]).raise_for_failures()
    for place, wanted in (("wiki:HR", [2]), ("wiki:HR Team", [1]), ("wiki:hr", [3]), ("sp:b!x,y/Shared Documents", [4])):
        for found in legs(backend, where(frozenset({place}))):
            assert found == wanted, place


def test_documents_move_between_places_without_re_embedding(storage, spaces):
    reader = storage.open()
    hr = where(frozenset({"wiki:HR"}))
    before = {hit.chunk_id: hit.score for hit in reader.vector_search(vector=QUERY, filters=where(), limit=1000)}
    result = spaces.update_places_many({1: "wiki:HR", 2: "wiki:HR", 41: "", 42: "wiki:ENG"})
    assert result.failures == ()
    for found in legs(reader, hr):
        assert sorted(found) == [1, 2, *range(43, 47)]
    for found in legs(reader, where(frozenset({"wiki:ENG"}))):
        assert sorted(found) == [*range(3, 41), 42]
    after = {hit.chunk_id: hit.score for hit in reader.vector_search(vector=QUERY, filters=where(), limit=1000)}
    assert after == pytest.approx(before)  # same vectors: nothing was re-embedded
    held = storage.open().indexed_documents([1, 41, 47])
    assert {document_id: entry.places for document_id, entry in held.items()} == {
        1: frozenset({"wiki:HR"}), 41: frozenset({""}), 47: frozenset({""}),
    }
    assert held[1].principals == frozenset({"public"})  # the access list stays


def test_an_upsert_moves_the_whole_document(backend):
    backend.upsert_chunks([chunk(1, 1, "policy a", {"public"}, place="wiki:HR"),
                           chunk(2, 1, "policy b", {"public"}, place="wiki:HR")]).raise_for_failures()
    backend.upsert_chunks([chunk(1, 1, "policy a2", {"public"}, place="wiki:ENG")]).raise_for_failures()
    assert backend.indexed_documents([1])[1].places == frozenset({"wiki:ENG"})
    for found in legs(backend, where(frozenset({"wiki:ENG"}))):
        assert sorted(found) == [1, 2]


def test_places_survive_a_rebuild_and_moves_during_it(storage, backend):
    worker = storage.open()
    worker.ensure_index(metadata=meta())
    before = [chunk(1, 1, "policy", {"public"}, place="wiki:HR"), chunk(2, 2, "policy", {"public"}, place="wiki:HR")]
    backend.upsert_chunks(before).raise_for_failures()
    truth = Truth(before)
    build = backend.generation_create(metadata=meta())
    for batch in truth.batches():
        build.write(batch).raise_for_failures()
    truth.set(2, [chunk(2, 2, "policy", {"public"}, place="wiki:ENG")])
    worker.update_places_many({2: "wiki:ENG"})  # a move while the build runs
    build.switch(chunks_for_documents=truth.chunks_for_documents)
    reader = storage.open()
    assert reader.current_generation() == build.number
    for found in legs(reader, where(frozenset({"wiki:HR"}))):
        assert found == [1]
    for found in legs(reader, where(frozenset({"wiki:ENG"}))):
        assert found == [2]
