"""The in-memory side of the embedded index: vectors, postings and access lists as numpy arrays.

Why our own arrays rather than an engine: measured on this 2-core machine with 100,000 chunks,
SQLite FTS5 took seconds per OR query once an access-list filter joined in (bench/bm25_engines.py),
and none of the embedded engines we looked at applies an arbitrary per-user allow list inside both
the BM25 and the vector leg before ranking. With the allow list as a boolean mask, BM25 is a few
vectorised passes over the query terms' postings and vector search is one matrix-vector product,
both exact (no approximate neighbours), which keeps the semantics identical to the Weaviate backend
with its filters.

Rows are append-only: a replaced or deleted chunk becomes a tombstone, and the structure is rebuilt
once tombstones pass a quarter of the rows.
"""
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from kbsearch.index.base import BM25_B, BM25_K1, ChunkHit, SearchFilters
from kbsearch.index.embedded.store import StoredChunk

_INITIAL_CAPACITY = 1024


class MemoryIndex:
    """Searchable arrays for one snapshot of the store plus replayed changes. Not thread-safe."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.size = 0
        self.live = 0
        self.live_length = 0.0
        capacity = _INITIAL_CAPACITY
        self.vectors = np.zeros((capacity, dimension), dtype=np.float32)
        self.alive = np.zeros(capacity, dtype=bool)
        self.lengths = np.zeros(capacity, dtype=np.float32)
        self.document_slots = np.zeros(capacity, dtype=np.int32)
        self.language_codes = np.zeros(capacity, dtype=np.int16)
        self.source_codes = np.zeros(capacity, dtype=np.int32)
        self.updated = np.full(capacity, np.nan, dtype=np.float64)
        self.chunk_ids = np.zeros(capacity, dtype=np.int64)
        self.row_of_chunk: dict[int, int] = {}
        self.rows_of_document: dict[int, list[int]] = {}
        self.postings: dict[str, tuple[array, array]] = {}
        self.document_ids: list[int] = []
        self.slot_of_document: dict[int, int] = {}
        self.principals_of_slot: dict[int, frozenset[str]] = {}
        self.slots_of_principal: dict[str, set[int]] = {}
        self._languages: dict[str, int] = {}
        self._language_names: list[str] = []
        self._sources: dict[str, int] = {}

    # --- building --------------------------------------------------------------------------------

    def _grow(self, needed: int) -> None:
        capacity = len(self.alive)
        if needed <= capacity:
            return
        new_capacity = max(needed, capacity * 2)
        for name in ("vectors", "alive", "lengths", "document_slots", "language_codes", "source_codes",
                     "updated", "chunk_ids"):
            old = getattr(self, name)
            fresh = np.zeros((new_capacity, *old.shape[1:]), dtype=old.dtype)
            if name == "updated":
                fresh[:] = np.nan
            fresh[: self.size] = old[: self.size]
            setattr(self, name, fresh)

    def _document_slot(self, document_id: int) -> int:
        slot = self.slot_of_document.get(document_id)
        if slot is None:
            slot = len(self.document_ids)
            self.document_ids.append(document_id)
            self.slot_of_document[document_id] = slot
            self.principals_of_slot[slot] = frozenset()
        return slot

    @staticmethod
    def _code(table: dict[str, int], value: str) -> int:
        return table.setdefault(value, len(table))

    def _language_code(self, language: str) -> int:
        if language not in self._languages:
            self._languages[language] = len(self._language_names)
            self._language_names.append(language)
        return self._languages[language]

    def add(self, chunk: StoredChunk) -> None:
        if chunk.chunk_id in self.row_of_chunk:
            self._kill(self.row_of_chunk.pop(chunk.chunk_id))
        row = self.size
        self._grow(row + 1)
        terms = chunk.terms.split()
        self.vectors[row] = chunk.vector
        self.alive[row] = True
        self.lengths[row] = len(terms)
        self.document_slots[row] = self._document_slot(chunk.document_id)
        self.language_codes[row] = self._language_code(chunk.language)
        self.source_codes[row] = self._code(self._sources, chunk.source_key)
        self.updated[row] = chunk.updated_at if chunk.updated_at is not None else np.nan
        self.chunk_ids[row] = chunk.chunk_id
        self.row_of_chunk[chunk.chunk_id] = row
        self.rows_of_document.setdefault(chunk.document_id, []).append(row)
        for term, frequency in Counter(terms).items():
            rows, frequencies = self.postings.setdefault(term, (array("i"), array("f")))
            rows.append(row)
            frequencies.append(frequency)
        self.size += 1
        self.live += 1
        self.live_length += len(terms)

    def _kill(self, row: int) -> None:
        if self.alive[row]:
            self.alive[row] = False
            self.live -= 1
            self.live_length -= float(self.lengths[row])

    def delete_document(self, document_id: int) -> None:
        for row in self.rows_of_document.pop(document_id, []):
            self._kill(row)
            self.row_of_chunk.pop(int(self.chunk_ids[row]), None)

    def set_access(self, document_id: int, principals: Iterable[str]) -> None:
        slot = self._document_slot(document_id)
        for principal in self.principals_of_slot.get(slot, frozenset()):
            self.slots_of_principal.get(principal, set()).discard(slot)
        principals = frozenset(principals)
        self.principals_of_slot[slot] = principals
        for principal in principals:
            self.slots_of_principal.setdefault(principal, set()).add(slot)

    @property
    def tombstone_share(self) -> float:
        return 0.0 if self.size == 0 else 1.0 - self.live / self.size

    # --- searching -------------------------------------------------------------------------------

    def allowed_rows(self, filters: SearchFilters) -> np.ndarray:
        """Boolean mask of rows the filters admit; fails closed on no principals."""
        size = self.size
        slots: set[int] = set()
        for principal in filters.principals:
            slots |= self.slots_of_principal.get(principal, set())
        if not slots:
            return np.zeros(size, dtype=bool)
        slot_allowed = np.zeros(len(self.document_ids), dtype=bool)
        slot_allowed[np.fromiter(slots, dtype=np.int64, count=len(slots))] = True
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
        if len(rows) > limit:
            # Exact top-k with ties at the cut broken by chunk id, so a larger limit only ever
            # extends a smaller one's results (stable pagination).
            kth = np.partition(-scores, limit - 1)[limit - 1]
            above = np.flatnonzero(-scores < kth)
            tied = np.flatnonzero(-scores == kth)
            tied = tied[np.argsort(self.chunk_ids[rows[tied]], kind="stable")[: limit - len(above)]]
            top = np.concatenate([above, tied])
            rows, scores = rows[top], scores[top]
        # Ties broken by chunk id so results are stable across runs and backends.
        order = np.lexsort((self.chunk_ids[rows], -scores))
        return [
            ChunkHit(
                chunk_id=int(self.chunk_ids[rows[i]]),
                document_id=self.document_ids[self.document_slots[rows[i]]],
                score=float(scores[i]),
                language=self._language_names[self.language_codes[rows[i]]],
            )
            for i in order
        ]

    def vector_search(self, query: np.ndarray, filters: SearchFilters, limit: int) -> list[ChunkHit]:
        mask = self.allowed_rows(filters)
        rows = np.flatnonzero(mask)
        if len(rows) == 0 or limit <= 0:
            return []
        query = np.asarray(query, dtype=np.float32)
        # Gathering a few rows beats a full product; past about a third, the full product is cheaper.
        if len(rows) * 3 < self.size:
            scores = self.vectors[rows] @ query
        else:
            scores = (self.vectors[: self.size] @ query)[rows]
        return self._hits(rows, scores, limit)

    def bm25_search(self, terms: Sequence[str], filters: SearchFilters, limit: int) -> list[ChunkHit]:
        if self.live == 0 or limit <= 0:
            return []
        mask = self.allowed_rows(filters)
        average_length = self.live_length / self.live if self.live else 1.0
        scores = np.zeros(self.size, dtype=np.float32)
        touched = []
        for term in dict.fromkeys(terms):
            posting = self.postings.get(term)
            if posting is None:
                continue
            rows = np.frombuffer(posting[0], dtype=np.int32)
            frequencies = np.frombuffer(posting[1], dtype=np.float32)
            # Document frequency over the whole live index, as Weaviate computes it.
            document_frequency = int(self.alive[rows].sum())
            if document_frequency == 0:
                continue
            idf = math.log(1.0 + (self.live - document_frequency + 0.5) / (document_frequency + 0.5))
            keep = mask[rows]
            rows, frequencies = rows[keep], frequencies[keep]
            if len(rows) == 0:
                continue
            norm = BM25_K1 * (1.0 - BM25_B + BM25_B * self.lengths[rows] / average_length)
            scores[rows] += idf * frequencies * (BM25_K1 + 1.0) / (frequencies + norm)
            touched.append(rows)
        if not touched:
            return []
        rows = np.unique(np.concatenate(touched))
        return self._hits(rows, scores[rows], limit)
