"""Mapped segments of the embedded index: same rankings as a load from the store, crash-safe writes,
readers across a compaction, and a new process opening the segment instead of parsing the store."""
import os
import random

import numpy as np
import pytest

from kbsearch.index.base import IndexChunk, SearchFilters
from kbsearch.index.embedded import EmbeddedIndexBackend, segments, serving
from kbsearch.index.embedded.memory import MemoryIndex
from kbsearch.index.embedded.segments import segments_directory
from tests.index.entries import DIM, chunk, meta, public, unit

VOCABULARY = [f"t{i}" for i in range(200)] + ["数据", "据库", "テス", "vpn"]
PRINCIPALS = [f"group:g{i}" for i in range(10)] + ["public", "user:hr", "group:hr"]
PLACES = ["", "a:ENG", "a:HR", "b:drive-1", "b:drive-2"]


def ids(hits):
    return [hit.chunk_id for hit in hits]


def loaded_from_store(index: EmbeddedIndexBackend) -> MemoryIndex:
    """The store parsed row by row into arrays with no segment: the path every search took before."""
    memory = MemoryIndex(DIM)
    _, chunks, access, places = index.store.snapshot(DIM)
    for stored in chunks:
        memory.add(stored)
    for document_id, principals in access.items():
        memory.set_access(document_id, principals)
    for document_id, place in places.items():
        memory.set_place(document_id, place)
    return memory


class RandomCorpus:
    """Random upserts, replacements, deletes, access and place changes, applied to an index."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.rng = np.random.default_rng(seed)
        self.next_chunk = 1

    def _entry(self, chunk_id: int, document_id: int, principals: frozenset[str], place: str) -> IndexChunk:
        vector = self.rng.normal(size=DIM).astype(np.float32)
        terms = [VOCABULARY[min(int(self.rng.zipf(1.3)) - 1, len(VOCABULARY) - 1)]
                 for _ in range(self.random.randint(0, 25))]
        return IndexChunk(chunk_id, document_id, self.random.choice(["a", "b"]),
                          self.random.choice(["en", "zh", "ja"]), terms, vector / np.linalg.norm(vector),
                          principals, place=place)

    def _principals(self) -> frozenset[str]:
        return frozenset(self.random.sample(PRINCIPALS, self.random.randint(0, 3)))

    def step(self, index: EmbeddedIndexBackend) -> None:
        kind = self.random.random()
        if kind < 0.5 or self.next_chunk < 3:
            access: dict[int, frozenset[str]] = {}
            batch = []
            places: dict[int, str] = {}
            for _ in range(self.random.randint(1, 30)):
                document_id = self.random.randint(1, 150)
                batch.append(self._entry(self.next_chunk, document_id, access.setdefault(document_id, self._principals()),
                                         places.setdefault(document_id, self.random.choice(PLACES))))
                self.next_chunk += 1
            index.upsert_chunks(batch)
        elif kind < 0.65:  # existing chunk ids again, possibly under another document
            access = {}
            places = {}
            batch = []
            for chunk_id in self.random.sample(range(1, self.next_chunk), min(8, self.next_chunk - 1)):
                document_id = self.random.randint(1, 150)
                batch.append(self._entry(chunk_id, document_id, access.setdefault(document_id, self._principals()),
                                         places.setdefault(document_id, self.random.choice(PLACES))))
            index.upsert_chunks(batch)
        elif kind < 0.75:
            index.delete_documents(self.random.sample(range(1, 151), 5))
        elif kind < 0.88:
            index.update_access(self.random.randint(1, 150), self._principals())
        else:
            index.update_places_many({self.random.randint(1, 150): self.random.choice(PLACES) for _ in range(4)})

    def filters(self) -> SearchFilters:
        return SearchFilters(
            principals=frozenset(self.random.sample(PRINCIPALS, self.random.randint(0, 5))),
            languages=self.random.choice([None, frozenset({"en"}), frozenset({"zh", "ja"})]),
            source_keys=self.random.choice([None, frozenset({"a"})]),
            places=self.random.choice([None, None, frozenset({"a:ENG"}), frozenset({"a:HR", "b:drive-1"})]),
        )


def test_segment_and_delta_rank_exactly_as_a_load_from_the_store(tmp_path, monkeypatch):
    # Compact every 120 changes, so searches run over a segment, a segment plus delta, and
    # segments written from an earlier segment plus delta.
    monkeypatch.setattr(serving, "_COMPACT_MIN_CHANGES", 120)
    path = str(tmp_path / "index.sqlite3")
    writer = EmbeddedIndexBackend(path=path)
    writer.ensure_index(metadata=meta())
    reader = EmbeddedIndexBackend(path=path)
    corpus = RandomCorpus(seed=5)
    compared = 0
    segment_seqs = set()
    for _ in range(50):
        corpus.step(writer)
        reference = loaded_from_store(writer)
        memory = reader._current()
        segment_seqs.add(memory.segment.seq if memory.segment is not None else None)
        assert (memory.live, memory.live_length) == (reference.live, reference.live_length)
        for _ in range(6):
            filters = corpus.filters()
            terms = corpus.random.sample(VOCABULARY[:40], 3)
            query = corpus.rng.normal(size=DIM).astype(np.float32)
            limit = corpus.random.choice([1, 5, 20, 1000])
            assert reader.bm25_search(terms=terms, filters=filters, limit=limit) == reference.bm25_search(
                terms, filters, limit)
            got = reader.vector_search(vector=query, filters=filters, limit=limit)
            want = reference.vector_search(query, filters, limit)
            # BLAS may round the last bit differently for another matrix shape; the order is the same.
            assert [(h.chunk_id, h.document_id, h.language) for h in got] == [
                (h.chunk_id, h.document_id, h.language) for h in want]
            assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-5, abs=1e-6)
            compared += 1
    assert compared == 300
    assert len(segment_seqs - {None}) >= 3  # several compactions happened along the way


def test_a_new_process_maps_the_segment_instead_of_parsing_the_store(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    index = EmbeddedIndexBackend(path=path)
    index.ensure_index(metadata=meta())
    index.upsert_chunks([chunk(1, 1, "vpn setup", {"public"}), chunk(2, 2, "vpn list", {"group:hr"})])
    assert ids(index.bm25_search(terms=["vpn"], filters=public(), limit=5)) == [1]  # writes the segment
    index.close()

    restarted = EmbeddedIndexBackend(path=path)
    assert ids(restarted.bm25_search(terms=["vpn"], filters=public("group:hr"), limit=5)) == [1, 2]
    memory = restarted._serving.memory
    assert memory.base_rows == 2 and memory.delta_rows == 0
    assert isinstance(memory.segment.vectors.base, np.memmap)  # mapped, not read into private memory


def test_a_reader_keeps_working_across_a_compaction_by_the_writer(tmp_path, monkeypatch):
    monkeypatch.setattr(serving, "_COMPACT_MIN_CHANGES", 10)
    path = str(tmp_path / "index.sqlite3")
    writer = EmbeddedIndexBackend(path=path)
    writer.ensure_index(metadata=meta())
    writer.upsert_chunks([chunk(i, i, f"budget item{i}", {"public"}) for i in range(1, 6)])
    old_reader = EmbeddedIndexBackend(path=path)
    assert len(old_reader.bm25_search(terms=["budget"], filters=public(), limit=10)) == 5
    first_segment = old_reader._serving.memory.segment.seq

    # The writer compacts once the log past the segment is long: a new segment, the old one removed.
    writer.delete_documents([1, 2])
    writer.upsert_chunks([chunk(i, i, f"budget item{i}", {"public"}) for i in range(6, 30)])
    newest = writer._serving.memory.segment.seq
    assert newest > first_segment
    new_reader = EmbeddedIndexBackend(path=path)
    assert len(new_reader.bm25_search(terms=["budget"], filters=public(), limit=100)) == 27
    assert new_reader._serving.memory.segment.seq == newest
    assert not (segments_directory(path) / f"{first_segment:016d}").exists()  # removed from disk

    # The old reader still holds the removed segment's maps: still readable, and it catches up.
    stale = old_reader._serving.memory
    assert stale.segment.seq == first_segment and float(np.abs(stale.segment.vectors).sum()) > 0
    hits = old_reader.bm25_search(terms=["budget"], filters=public(), limit=100)
    assert sorted(ids(hits)) == list(range(3, 30))
    assert old_reader._serving.memory.segment.seq == newest  # it switched to the new segment


def test_a_segment_write_that_dies_leaves_the_previous_state_and_is_cleaned_up(tmp_path, monkeypatch):
    path = str(tmp_path / "index.sqlite3")
    index = EmbeddedIndexBackend(path=path)
    index.ensure_index(metadata=meta())
    index.upsert_chunks([chunk(1, 1, "vpn setup", {"public"})])
    saved = []
    real_save = np.save

    def dying_save(handle, array, **options):
        if len(saved) == 5:
            raise OSError("disk full")
        saved.append(1)
        real_save(handle, array, **options)

    monkeypatch.setattr(segments.np, "save", dying_save)
    # The search is served from memory all the same; only the segment is missing.
    assert ids(index.bm25_search(terms=["vpn"], filters=public(), limit=5)) == [1]
    assert len(saved) == 5
    monkeypatch.setattr(segments.np, "save", real_save)
    directory = segments_directory(path)
    assert [entry.name for entry in directory.iterdir() if not entry.name.startswith(".lock")] == []

    # A writer killed outright leaves its temporary directory: ignored, then removed.
    leftover = directory / ".tmp-99999-7"
    leftover.mkdir()
    (leftover / "vectors.npy").write_bytes(b"torn")
    restarted = EmbeddedIndexBackend(path=path)
    assert ids(restarted.bm25_search(terms=["vpn"], filters=public(), limit=5)) == [1]
    names = sorted(entry.name for entry in directory.iterdir())
    assert names[0] == ".lock" and len(names) == 2 and names[1].isdigit()


def test_a_segment_of_another_file_with_the_same_name_is_ignored(tmp_path):
    path = tmp_path / "index.sqlite3"
    index = EmbeddedIndexBackend(path=str(path))
    index.ensure_index(metadata=meta())
    index.upsert_chunks([chunk(1, 1, "old secret", {"public"})])
    index.bm25_search(terms=["old"], filters=public(), limit=5)
    index.close()
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    assert any(segments_directory(path).iterdir())  # the stale segment is still there

    fresh = EmbeddedIndexBackend(path=str(path))
    fresh.ensure_index(metadata=meta())
    fresh.upsert_chunks([chunk(2, 2, "new page", {"public"})])
    assert fresh.bm25_search(terms=["old"], filters=public(), limit=5) == []
    assert ids(fresh.bm25_search(terms=["new"], filters=public(), limit=5)) == [2]


def test_a_chunk_moved_to_another_document_survives_the_old_documents_delete(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    writer = EmbeddedIndexBackend(path=path)
    writer.ensure_index(metadata=meta())
    writer.upsert_chunks([chunk(1, 1, "first page", {"public"})])
    reader = EmbeddedIndexBackend(path=path)
    reader.bm25_search(terms=["page"], filters=public(), limit=5)  # segment holds chunk 1 in document 1
    writer.upsert_chunks([chunk(7, 2, "moving page", {"public"})])
    writer.upsert_chunks([chunk(7, 3, "moved page", {"public"})])  # chunk 7 now belongs to document 3
    writer.delete_documents([2])
    writer.upsert_chunks([chunk(7, 3, "moved again page", {"public"})])
    hits = reader.bm25_search(terms=["page"], filters=public(), limit=10)
    assert sorted(ids(hits)) == [1, 7]
    assert reader._current().live == writer.chunk_count() == 2


def test_access_changed_after_the_segment_replaces_the_segments_list(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    writer = EmbeddedIndexBackend(path=path)
    writer.ensure_index(metadata=meta())
    writer.upsert_chunks([chunk(1, 1, "salary bands", {"group:hr"}), chunk(2, 2, "salary faq", {"public"})])
    reader = EmbeddedIndexBackend(path=path)
    hr = SearchFilters(principals=frozenset({"group:hr"}))
    assert ids(reader.bm25_search(terms=["salary"], filters=hr, limit=5)) == [1]
    writer.update_access(1, frozenset({"user:alice"}))
    writer.update_access(2, frozenset({"group:hr", "public"}))
    assert ids(reader.bm25_search(terms=["salary"], filters=hr, limit=5)) == [2]
    assert ids(reader.vector_search(vector=unit(1), filters=hr, limit=5)) == [2]
    alice = SearchFilters(principals=frozenset({"user:alice"}))
    assert ids(reader.bm25_search(terms=["salary"], filters=alice, limit=5)) == [1]


def test_a_place_changed_after_the_segment_replaces_the_segments_place(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    writer = EmbeddedIndexBackend(path=path)
    writer.ensure_index(metadata=meta())
    writer.upsert_chunks([chunk(1, 1, "salary bands", {"public"}, place="wiki:HR"),
                          chunk(2, 1, "salary table", {"public"}, place="wiki:HR"),
                          chunk(3, 2, "salary faq", {"public"}, place="wiki:ENG")])
    reader = EmbeddedIndexBackend(path=path)
    hr = SearchFilters(principals=frozenset({"public"}), places=frozenset({"wiki:HR"}))
    assert sorted(ids(reader.bm25_search(terms=["salary"], filters=hr, limit=5))) == [1, 2]  # writes the segment
    assert reader._serving.memory.segment is not None
    writer.update_places_many({1: "wiki:OPS", 2: "wiki:HR"})  # document 1 (chunks 1, 2) moves
    assert ids(reader.bm25_search(terms=["salary"], filters=hr, limit=5)) == [3]
    assert ids(reader.vector_search(vector=unit(3), filters=hr, limit=5)) == [3]
    both = SearchFilters(principals=frozenset({"public"}), places=frozenset({"wiki:OPS", "wiki:HR"}))
    assert sorted(ids(reader.bm25_search(terms=["salary"], filters=both, limit=5))) == [1, 2, 3]
    writer.update_places_many({2: ""})  # out of every place
    assert sorted(ids(reader.bm25_search(terms=["salary"], filters=both, limit=5))) == [1, 2]
    assert EmbeddedIndexBackend(path=path).indexed_documents([1, 2])[2].places == frozenset({""})


def test_a_segment_of_the_format_before_places_is_ignored(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    index = EmbeddedIndexBackend(path=path)
    index.ensure_index(metadata=meta())
    index.upsert_chunks([chunk(1, 1, "vpn setup", {"public"}, place="wiki:ENG")])
    index.bm25_search(terms=["vpn"], filters=public(), limit=5)  # writes the segment
    [written] = list(segments_directory(tmp_path / "index.sqlite3").glob("0*"))
    meta_file = written / "meta.json"
    meta_file.write_text(meta_file.read_text().replace('"format": 2', '"format": 1'))
    restarted = EmbeddedIndexBackend(path=path)
    eng = SearchFilters(principals=frozenset({"public"}), places=frozenset({"wiki:ENG"}))
    assert ids(restarted.bm25_search(terms=["vpn"], filters=eng, limit=5)) == [1]  # loaded from the store
    # ... which wrote a segment of this format in the old one's place, so the next process maps it.
    assert '"format": 2' in meta_file.read_text()
    again = EmbeddedIndexBackend(path=path)
    assert ids(again.bm25_search(terms=["vpn"], filters=eng, limit=5)) == [1]
    assert again._serving.memory.base_rows == 1 and again._serving.memory.segment.places[1:] == ["wiki:ENG"]


def test_removing_a_generation_removes_its_segments(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    index = EmbeddedIndexBackend(path=path)
    index.ensure_index(metadata=meta())
    index.upsert_chunks([chunk(1, 1, "vpn", {"public"})])
    index.bm25_search(terms=["vpn"], filters=public(), limit=5)
    assert segments_directory(path).exists()
    index.files.remove(1)
    assert not os.path.exists(segments_directory(path))


def test_a_chunk_moved_then_deleted_in_one_replay_is_gone(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    writer = EmbeddedIndexBackend(path=path)
    writer.ensure_index(metadata=meta())
    writer.upsert_chunks([chunk(16, 95, "quarterly page", {"public"}), chunk(17, 96, "other page", {"public"})])
    reader = EmbeddedIndexBackend(path=path)
    assert sorted(ids(reader.bm25_search(terms=["page"], filters=public(), limit=5))) == [16, 17]  # in the segment
    # Both changes reach the reader in one replay: when it reads chunk 16, it is already gone.
    writer.upsert_chunks([chunk(16, 144, "moved page", {"public"})])
    writer.delete_documents([144])
    assert ids(reader.bm25_search(terms=["page"], filters=public(), limit=5)) == [17]
    assert reader.vector_search(vector=unit(16), filters=public(), limit=5)[0].chunk_id == 17


def test_a_searching_process_adopts_segments_but_never_writes_one(tmp_path, monkeypatch):
    monkeypatch.setattr(serving, "_COMPACT_MIN_CHANGES", 10)
    path = str(tmp_path / "index.sqlite3")
    writer = EmbeddedIndexBackend(path=path)
    writer.ensure_index(metadata=meta())
    writer.upsert_chunks([chunk(1, 1, "budget", {"public"})])
    reader = EmbeddedIndexBackend(path=path)
    reader.bm25_search(terms=["budget"], filters=public(), limit=5)
    written = sorted(entry.name for entry in segments_directory(path).iterdir() if entry.name.isdigit())
    # Written past the backend (no after_write): nobody compacts, and the reader must not either.
    writer.store.upsert([chunk(i, i, "budget", {"public"}) for i in range(2, 40)])
    assert len(reader.bm25_search(terms=["budget"], filters=public(), limit=100)) == 39
    assert sorted(entry.name for entry in segments_directory(path).iterdir() if entry.name.isdigit()) == written
    assert reader._serving.memory.delta_rows == 38
    writer.upsert_chunks([chunk(40, 40, "budget", {"public"})])  # the writer's next write compacts
    assert len(reader.bm25_search(terms=["budget"], filters=public(), limit=100)) == 40
    assert reader._serving.memory.delta_rows == 0


def test_a_rebuilt_generation_has_its_segment_before_the_switch(tmp_path):
    path = str(tmp_path / "index.sqlite3")
    index = EmbeddedIndexBackend(path=path)
    index.ensure_index(metadata=meta())
    entries = [chunk(1, 1, "vpn setup", {"public"})]
    index.upsert_chunks(entries)
    index.rebuild(metadata=meta(), batches=[entries], chunks_for_documents=lambda ids: [])
    second = index.files.file_of(2)
    assert [entry.name for entry in segments_directory(second).iterdir() if entry.name.isdigit()]
    restarted = EmbeddedIndexBackend(path=path)
    assert ids(restarted.bm25_search(terms=["vpn"], filters=public(), limit=5)) == [1]
    assert restarted._serving.memory.base_rows == 1  # mapped, not loaded from the store
