"""The searchable side of the embedded index: a mapped segment plus an in-memory delta.

Why our own arrays rather than an engine: measured on this 2-core machine with 100,000 chunks,
SQLite FTS5 took seconds per OR query once an access-list filter joined in (bench/bm25_engines.py),
and none of the embedded engines we looked at applies an arbitrary per-user allow list inside both
the BM25 and the vector leg before ranking. With the allow list as a boolean mask, BM25 is a few
vectorised passes over the query terms' postings and vector search is one matrix-vector product,
both exact (no approximate neighbours), which keeps the semantics identical to the Weaviate backend
with its filters.

Rows ``0 .. base_rows`` are the segment's (``segments.py``: memory-mapped, shared between
processes, never written); rows after them are the delta, appended as changes are replayed from the
store's log. A replaced or deleted row becomes a tombstone in the private ``alive`` mask. An access
list changed after the segment overrides the segment's for that document. Places are per document
slot, in a private copy of the segment's column (a few bytes per document), so moving a document
rewrites one number and a place filter is decided per document before rows are looked at.
``segment_arrays`` folds all of it into the arrays of the next segment (compaction).
"""
import math
from array import array
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager

import numpy as np
from threadpoolctl import ThreadpoolController

from kbsearch.index.base import BM25_B, BM25_K1, ChunkHit, SearchFilters
from kbsearch.index.embedded.compaction import append_postings, compact
from kbsearch.index.embedded.segments import SegmentArrays
from kbsearch.index.embedded.store import StoredChunk

_INITIAL_CAPACITY = 1024
# Admitted rows averaging at least this many per contiguous run are scored run by run.
_MIN_AVERAGE_RUN = 64
# Per-row columns: segment maps until the first delta row, then private growing copies.
_COLUMNS = ("alive", "lengths", "document_slots", "language_codes", "source_codes", "updated", "chunk_ids")


def _single_blas_thread() -> AbstractContextManager:
    """OpenBLAS limited to one thread for a product. A two-thread product waits for the other core,
    which on a machine serving several web workers is usually busy: on 2 cores with other work
    running, hybrid search at a 50% filter took p95 28 ms with two threads and 13 ms with one.
    Searches run in parallel through the workers instead."""
    global _blas_controller
    if _blas_controller is None:
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


_blas_controller: ThreadpoolController | None = None


class MemoryIndex:
    """Searchable arrays for one segment (or none) plus replayed changes. Not thread-safe."""

    def __init__(self, dimension: int, segment: SegmentArrays | None = None) -> None:
        self.dimension = dimension
        self.segment = segment
        base = segment.rows if segment is not None else 0
        self.base_rows = self.size = self.live = base
        self.base_documents = len(segment.document_ids) if segment is not None else 0
        self.live_length = segment.live_length if segment is not None else 0.0
        if segment is not None:
            self.chunk_ids, self.lengths, self.updated = segment.chunk_ids, segment.lengths, segment.updated
            self.document_slots, self.language_codes = segment.document_slots, segment.language_codes
            self.source_codes = segment.source_codes
            self.language_names, source_names = list(segment.languages), list(segment.sources)
            self.place_names = list(segment.places)
            self.place_of_slot = np.array(segment.document_places, dtype=np.int32)
        else:
            self.chunk_ids = np.zeros(0, dtype=np.int64)
            self.lengths = np.zeros(0, dtype=np.float32)
            self.updated = np.zeros(0, dtype=np.float64)
            self.document_slots = np.zeros(0, dtype=np.int32)
            self.language_codes = np.zeros(0, dtype=np.int16)
            self.source_codes = np.zeros(0, dtype=np.int32)
            self.language_names, source_names = [], []
            self.place_names = [""]
            self.place_of_slot = np.zeros(0, dtype=np.int32)
        self.alive = np.ones(base, dtype=bool)
        self._capacity = base
        self.delta_vectors = np.zeros((0, dimension), dtype=np.float32)
        self._languages = {name: code for code, name in enumerate(self.language_names)}
        self._sources = {name: code for code, name in enumerate(source_names)}
        self._places = {name: code for code, name in enumerate(self.place_names)}
        # Delta rows only; the segment's are found through its sorted arrays.
        self.row_of_chunk: dict[int, int] = {}
        self.rows_of_document: dict[int, list[int]] = {}
        self.postings: dict[str, tuple[array, array]] = {}
        # Documents first seen after the segment get slots from base_documents on.
        self.new_document_ids: list[int] = []
        self.slot_of_new_document: dict[int, int] = {}
        # Access lists set after the segment; they override the segment's for those slots.
        self.principals_of_slot: dict[int, frozenset[str]] = {}
        self.slots_of_principal: dict[str, set[int]] = {}
        self.overridden = np.zeros(self.base_documents, dtype=bool)
        # Bumped by every change, so a cached mask is never used on rows it was not computed for.
        self.version = 0
        self._last_mask: tuple[tuple[SearchFilters, int], np.ndarray] | None = None

    # --- building --------------------------------------------------------------------------------

    def _grow(self, needed: int) -> None:
        if needed <= self._capacity:
            return
        capacity = max(needed, self._capacity * 2, _INITIAL_CAPACITY)
        for name in _COLUMNS:
            old = getattr(self, name)
            fresh = np.zeros(capacity, dtype=old.dtype)
            if name == "updated":
                fresh[:] = np.nan
            fresh[: self.size] = old[: self.size]
            setattr(self, name, fresh)
        vectors = np.zeros((capacity - self.base_rows, self.dimension), dtype=np.float32)
        vectors[: self.size - self.base_rows] = self.delta_vectors[: self.size - self.base_rows]
        self.delta_vectors = vectors
        self._capacity = capacity

    def _find_slot(self, document_id: int) -> int | None:
        if self.base_documents:
            document_ids = self.segment.document_ids
            slot = int(np.searchsorted(document_ids, document_id))
            if slot < self.base_documents and document_ids[slot] == document_id:
                return slot
        return self.slot_of_new_document.get(document_id)

    def _document_slot(self, document_id: int) -> int:
        slot = self._find_slot(document_id)
        if slot is None:
            slot = self.base_documents + len(self.new_document_ids)
            self.new_document_ids.append(document_id)
            self.slot_of_new_document[document_id] = slot
            self.principals_of_slot[slot] = frozenset()
            if slot >= len(self.place_of_slot):
                grown = np.zeros(max(slot + 1, 2 * len(self.place_of_slot), _INITIAL_CAPACITY), dtype=np.int32)
                grown[: len(self.place_of_slot)] = self.place_of_slot
                self.place_of_slot = grown
            self.place_of_slot[slot] = 0  # no place until one is set
        return slot

    def document_id_of_slot(self, slot: int) -> int:
        if slot < self.base_documents:
            return int(self.segment.document_ids[slot])
        return self.new_document_ids[slot - self.base_documents]

    def _segment_row_of_chunk(self, chunk_id: int) -> int | None:
        if self.base_rows == 0:
            return None
        sorted_ids = self.segment.sorted_chunk_ids
        position = int(np.searchsorted(sorted_ids, chunk_id))
        if position < self.base_rows and sorted_ids[position] == chunk_id:
            return int(self.segment.rows_by_chunk[position])
        return None

    def _language_code(self, language: str) -> int:
        if language not in self._languages:
            self._languages[language] = len(self.language_names)
            self.language_names.append(language)
        return self._languages[language]

    def remove_chunk(self, chunk_id: int) -> None:
        """Tombstone the chunk's row, if it has a live one."""
        self.version += 1
        if chunk_id in self.row_of_chunk:
            self._kill(self.row_of_chunk.pop(chunk_id))
        else:
            segment_row = self._segment_row_of_chunk(chunk_id)
            if segment_row is not None:
                self._kill(segment_row)

    def add(self, chunk: StoredChunk) -> None:
        self.add_many([chunk])

    def add_many(self, chunks: Sequence[StoredChunk]) -> None:
        """Append chunks in order (a chunk id seen again replaces the earlier row)."""
        if not chunks:
            return
        self.version += 1
        start = self.size
        self._grow(start + len(chunks))
        term_lists = []
        for row, chunk in enumerate(chunks, start=start):
            self.remove_chunk(chunk.chunk_id)
            terms = chunk.terms.split()
            term_lists.append(terms)
            self.delta_vectors[row - self.base_rows] = chunk.vector
            self.alive[row] = True
            self.lengths[row] = len(terms)
            self.document_slots[row] = self._document_slot(chunk.document_id)
            self.language_codes[row] = self._language_code(chunk.language)
            self.source_codes[row] = self._sources.setdefault(chunk.source_key, len(self._sources))
            self.updated[row] = chunk.updated_at if chunk.updated_at is not None else np.nan
            self.chunk_ids[row] = chunk.chunk_id
            self.row_of_chunk[chunk.chunk_id] = row
            self.rows_of_document.setdefault(chunk.document_id, []).append(row)
            self.size = row + 1
            self.live += 1
            self.live_length += len(terms)
        append_postings(self.postings, start, term_lists)

    def _kill(self, row: int) -> None:
        if self.alive[row]:
            self.alive[row] = False
            self.live -= 1
            self.live_length -= float(self.lengths[row])

    def delete_document(self, document_id: int) -> None:
        self.version += 1
        slot = self._find_slot(document_id)
        if slot is not None and slot < self.base_documents:
            segment = self.segment
            for row in range(int(segment.document_row_starts[slot]), int(segment.document_row_ends[slot])):
                self._kill(row)
        for row in self.rows_of_document.pop(document_id, []):
            self._kill(row)
            chunk_id = int(self.chunk_ids[row])
            # Only if the chunk still lives here: re-upserted under another document, it has a new row.
            if self.row_of_chunk.get(chunk_id) == row:
                del self.row_of_chunk[chunk_id]

    def set_access(self, document_id: int, principals: Iterable[str]) -> None:
        self.version += 1
        slot = self._document_slot(document_id)
        for principal in self.principals_of_slot.get(slot, frozenset()):
            self.slots_of_principal.get(principal, set()).discard(slot)
        principals = frozenset(principals)
        self.principals_of_slot[slot] = principals
        for principal in principals:
            self.slots_of_principal.setdefault(principal, set()).add(slot)
        if slot < self.base_documents:
            self.overridden[slot] = True

    def set_place(self, document_id: int, place: str) -> None:
        self.version += 1
        slot = self._document_slot(document_id)
        code = self._places.get(place)
        if code is None:
            code = self._places[place] = len(self.place_names)
            self.place_names.append(place)
        self.place_of_slot[slot] = code

    @property
    def tombstone_share(self) -> float:
        return 0.0 if self.size == 0 else 1.0 - self.live / self.size

    def source_names(self) -> list[str]:
        return sorted(self._sources, key=self._sources.get)

    @property
    def delta_rows(self) -> int:
        return self.size - self.base_rows

    def segment_arrays(self, *, seq: int, store_id: str) -> SegmentArrays:
        """The live state folded into the arrays of a new segment (see ``compaction.py``)."""
        return compact(self, seq=seq, store_id=store_id)

    # --- searching -------------------------------------------------------------------------------

    def allowed_rows(self, filters: SearchFilters) -> np.ndarray:
        """Boolean mask of rows the filters admit (read-only); fails closed on no principals.

        The two legs of a hybrid search ask with the same filters: the second gets the first's
        mask unless a change was applied in between.
        """
        key = (filters, self.version)
        if self._last_mask is not None and self._last_mask[0] == key:
            return self._last_mask[1]
        mask = self._allowed_rows(filters)
        self._last_mask = (key, mask)
        return mask

    def _allowed_rows(self, filters: SearchFilters) -> np.ndarray:
        size = self.size
        slot_allowed = np.zeros(self.base_documents + len(self.new_document_ids), dtype=bool)
        principals = list(filters.principals)
        if self.base_documents and principals:
            segment = self.segment
            starts = segment.access_starts
            found = segment.principals.find(principals)
            slices = [segment.access_slots[starts[p] : starts[p + 1]] for p in found[found >= 0]]
            if slices:
                slot_allowed[np.concatenate(slices)] = True
                # A changed access list replaces the segment's: those slots count only through it.
                slot_allowed[: self.base_documents] &= ~self.overridden
        for principal in principals:
            slots = self.slots_of_principal.get(principal)
            if slots:
                slot_allowed[np.fromiter(slots, dtype=np.int64, count=len(slots))] = True
        if filters.places is not None:
            codes = [self._places[place] for place in filters.places if place and place in self._places]
            slot_allowed &= np.isin(self.place_of_slot[: len(slot_allowed)], codes)
        if not slot_allowed.any():
            return np.zeros(size, dtype=bool)
        mask = self.alive[:size] & slot_allowed[self.document_slots[:size]]
        if filters.languages is not None:
            codes = [self._languages[lang] for lang in filters.languages if lang in self._languages]
            mask &= np.isin(self.language_codes[:size], codes)
        if filters.source_keys is not None:
            codes = [self._sources[key] for key in filters.source_keys if key in self._sources]
            mask &= np.isin(self.source_codes[:size], codes)
        if filters.updated_after is not None:
            # NaN (unknown time) compares false, so undated chunks drop out of a date filter.
            mask &= self.updated[:size] > filters.updated_after.timestamp()
        return mask

    def _hits(self, rows: np.ndarray, scores: np.ndarray, limit: int) -> list[ChunkHit]:
        chunk_ids = self.chunk_ids[rows]
        if len(rows) > limit:
            # Exact top-k with ties at the cut broken by chunk id, so a larger limit only ever
            # extends a smaller one's results (stable pagination).
            kth = np.partition(-scores, limit - 1)[limit - 1]
            above = np.flatnonzero(-scores < kth)
            tied = np.flatnonzero(-scores == kth)
            tied = tied[np.argsort(chunk_ids[tied], kind="stable")[: limit - len(above)]]
            top = np.concatenate([above, tied])
            rows, scores, chunk_ids = rows[top], scores[top], chunk_ids[top]
        # Ties broken by chunk id so results are stable across runs and backends.
        order = np.lexsort((chunk_ids, -scores))
        rows, scores, chunk_ids = rows[order], scores[order], chunk_ids[order]
        slots = self.document_slots[rows].tolist()
        languages = self.language_codes[rows].tolist()
        return [
            ChunkHit(
                chunk_id=chunk_id,
                document_id=self.document_id_of_slot(slot),
                score=score,
                language=self.language_names[language],
            )
            for chunk_id, slot, score, language in zip(chunk_ids.tolist(), slots, scores.tolist(), languages)
        ]

    def vector_search(self, query: np.ndarray, filters: SearchFilters, limit: int) -> list[ChunkHit]:
        mask = self.allowed_rows(filters)
        rows = np.flatnonzero(mask)
        if len(rows) == 0 or limit <= 0:
            return []
        query = np.asarray(query, dtype=np.float32)
        with _single_blas_thread():
            scores = self._vector_scores(rows, query)
        return self._hits(rows, scores, limit)

    def _vector_scores(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        split = int(np.searchsorted(rows, self.base_rows))
        segment_rows, delta_rows = rows[:split], rows[split:]
        parts = []
        if len(segment_rows):
            vectors = self.segment.vectors
            # Rows sharing an access list are contiguous in a segment: when the admitted rows form
            # long runs, score just those blocks (no copy) rather than the whole matrix.
            breaks = np.flatnonzero(np.diff(segment_rows) != 1) + 1
            if (len(breaks) + 1) * _MIN_AVERAGE_RUN <= len(segment_rows):
                bounds = np.r_[0, breaks, len(segment_rows)]
                run_starts = segment_rows[bounds[:-1]]
                run_ends = segment_rows[bounds[1:] - 1] + 1
                parts.extend(vectors[start:end] @ query for start, end in zip(run_starts.tolist(), run_ends.tolist()))
            # Gathering a few rows beats a full product; past about a third, the full product is cheaper.
            elif len(segment_rows) * 3 < self.base_rows:
                parts.append(vectors[segment_rows] @ query)
            else:
                parts.append((vectors @ query)[segment_rows])
        if len(delta_rows):
            parts.append(self.delta_vectors[delta_rows - self.base_rows] @ query)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _postings_of(self, terms: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each term's (rows, frequencies as float32) over segment and delta; None if it has none."""
        found = self.segment.terms.find(terms) if self.base_rows else np.full(len(terms), -1)
        postings = []
        for term, term_id in zip(terms, found.tolist()):
            rows_parts, frequency_parts = [], []
            if term_id >= 0:
                starts = self.segment.posting_starts
                start, end = int(starts[term_id]), int(starts[term_id + 1])
                rows_parts.append(self.segment.posting_rows[start:end])
                frequency_parts.append(self.segment.posting_frequencies[start:end].astype(np.float32))
            delta = self.postings.get(term)
            if delta is not None:
                rows_parts.append(np.frombuffer(delta[0], dtype=np.int32))
                frequency_parts.append(np.frombuffer(delta[1], dtype=np.float32))
            if not rows_parts:
                postings.append(None)
            elif len(rows_parts) == 1:
                postings.append((rows_parts[0], frequency_parts[0]))
            else:
                postings.append((np.concatenate(rows_parts), np.concatenate(frequency_parts)))
        return postings

    def bm25_search(
        self, terms: Sequence[str], filters: SearchFilters, limit: int, expansions: Sequence[tuple[str, float]] = ()
    ) -> list[ChunkHit]:
        if self.live == 0 or limit <= 0:
            return []
        mask = self.allowed_rows(filters)
        average_length = self.live_length / self.live if self.live else 1.0
        scores = np.zeros(self.size, dtype=np.float32)
        touched = []
        # The query's own terms weigh 1; an expansion term weighs less (its idf is scaled, the way
        # Weaviate scales the idf of a term repeated in the query).
        weights = dict.fromkeys(terms, 1.0)
        for term, weight in expansions:
            if weight > 0:
                weights.setdefault(term, weight)
        for weight, posting in zip(weights.values(), self._postings_of(list(weights))):
            if posting is None:
                continue
            rows, frequencies = posting
            # Document frequency over the whole live index, as Weaviate computes it.
            document_frequency = int(self.alive[rows].sum())
            if document_frequency == 0:
                continue
            idf = weight * math.log(1.0 + (self.live - document_frequency + 0.5) / (document_frequency + 0.5))
            keep = mask[rows]
            rows, frequencies = rows[keep], frequencies[keep]
            if len(rows) == 0:
                continue
            norm = BM25_K1 * (1.0 - BM25_B + BM25_B * self.lengths[rows] / average_length)
            scores[rows] += idf * frequencies * (BM25_K1 + 1.0) / (frequencies + norm)
            touched.append(rows)
        if not touched:
            return []
        if sum(len(rows) for rows in touched) * 16 > self.size:
            # Many matches: marking a mask is cheaper than sorting them all.
            seen = np.zeros(self.size, dtype=bool)
            for rows in touched:
                seen[rows] = True
            rows = np.flatnonzero(seen)
        else:
            rows = np.unique(np.concatenate(touched))
        return self._hits(rows, scores[rows], limit)
