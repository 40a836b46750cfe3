"""The embedded index backend: the default, needing no server (see ``memory.py`` for the design)."""
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kbsearch.index.base import (
    BaseIndexBackend,
    ChunkHit,
    IndexBackendError,
    IndexChunk,
    IndexedDocument,
    SearchFilters,
)
from kbsearch.index.embedded.memory import MemoryIndex
from kbsearch.index.embedded.store import IndexStore

# Rebuild the in-memory arrays once this share of rows are tombstones.
_REBUILD_TOMBSTONE_SHARE = 0.25


class EmbeddedIndexBackend(BaseIndexBackend):
    """Hybrid BM25 + vector index in one SQLite file with an in-memory search copy."""

    def __init__(self, *, path: str, **options) -> None:
        super().__init__(path=path, **options)
        self.store = IndexStore(Path(path))
        self._lock = threading.RLock()
        self._memory: MemoryIndex | None = None
        self._applied_seq = 0

    def close(self) -> None:
        with self._lock:
            self.store.close()
            self._memory = None

    def ensure_index(self, *, dimension: int) -> None:
        self.store.set_dimension(dimension)

    def _dimension(self) -> int:
        dimension = self.store.dimension()
        if dimension is None:
            raise IndexBackendError("the index has not been created yet: call ensure_index first")
        return dimension

    def upsert_chunks(self, chunks: Sequence[IndexChunk]) -> None:
        if not chunks:
            return
        dimension = self._dimension()
        for chunk in chunks:
            if chunk.vector.shape != (dimension,):
                raise IndexBackendError(
                    f"chunk {chunk.chunk_id} has a vector of shape {chunk.vector.shape}, index wants ({dimension},)"
                )
            if not np.all(np.isfinite(chunk.vector)):
                raise IndexBackendError(f"chunk {chunk.chunk_id} has a non-finite vector")
        self.store.upsert(chunks)

    def delete_documents(self, document_ids: Sequence[int]) -> None:
        if document_ids:
            self.store.delete_documents(list(document_ids))

    def update_access(self, document_id: int, principals: frozenset[str]) -> None:
        self.store.set_access(document_id, frozenset(principals))

    def indexed_documents(self, document_ids: Sequence[int]) -> dict[int, IndexedDocument]:
        return self.store.indexed_documents(list(document_ids))

    def document_ids(self) -> set[int]:
        return self.store.document_ids()

    def chunk_count(self) -> int:
        return self.store.chunk_count()

    # --- keeping the memory copy current -------------------------------------------------------

    def _rebuild(self, dimension: int) -> MemoryIndex:
        memory = MemoryIndex(dimension)
        seq, chunks, access = self.store.snapshot(dimension)
        for chunk in chunks:
            memory.add(chunk)
        for document_id, principals in access.items():
            memory.set_access(document_id, principals)
        self._applied_seq = seq
        return memory

    def _current(self) -> MemoryIndex | None:
        """The memory copy with every committed change applied (caller holds the lock)."""
        dimension = self.store.dimension()
        if dimension is None:
            return None
        memory = self._memory
        if memory is None or memory.dimension != dimension:
            memory = self._memory = self._rebuild(dimension)
            return memory
        if self.store.latest_seq() > self._applied_seq:
            if self._applied_seq < self.store.oldest_seq() - 1:  # the log was trimmed past us
                memory = self._memory = self._rebuild(dimension)
                return memory
            self._replay(memory, dimension)
            if memory.tombstone_share > _REBUILD_TOMBSTONE_SHARE and memory.size > 1000:
                memory = self._memory = self._rebuild(dimension)
        return memory

    def _replay(self, memory: MemoryIndex, dimension: int) -> None:
        changes = self.store.changes_since(self._applied_seq)
        upserted = [change.chunk_id for change in changes if change.kind == "upsert"]
        chunks = self.store.load_chunks(upserted, dimension)
        access_documents = {change.document_id for change in changes if change.kind == "access"}
        access = self.store.load_access(sorted(access_documents))
        for change in changes:
            if change.kind == "delete":
                memory.delete_document(change.document_id)
                memory.set_access(change.document_id, ())
            elif change.kind == "upsert" and change.chunk_id in chunks:
                # A chunk missing now was deleted by a later change in this same batch.
                memory.add(chunks[change.chunk_id])
        # Access lists are read in their latest state, so applying them after the chunks is exact.
        for document_id, principals in access.items():
            memory.set_access(document_id, principals)
        if changes:
            self._applied_seq = changes[-1].seq

    # --- search -----------------------------------------------------------------------------------

    def vector_search(self, *, vector: np.ndarray, filters: SearchFilters, limit: int) -> list[ChunkHit]:
        with self._lock:
            memory = self._current()
            if memory is None:
                return []
            if vector.shape != (memory.dimension,):
                raise IndexBackendError(f"query vector has shape {vector.shape}, index wants ({memory.dimension},)")
            return memory.vector_search(vector, filters, limit)

    def bm25_search(self, *, terms: Sequence[str], filters: SearchFilters, limit: int) -> list[ChunkHit]:
        with self._lock:
            memory = self._current()
            return [] if memory is None else memory.bm25_search(terms, filters, limit)
