"""The embedded index backend: the default, needing no server (see ``memory.py`` for the design).

Each process keeps an in-memory copy of the current generation (``generations.py``) and, before
every search or write, checks whether a rebuild moved the pointer: if so it opens the new
generation and reloads, so web processes follow a ``manage.py reindex`` without a restart.
"""
import threading
from collections.abc import Callable, Sequence
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
from kbsearch.index.embedded.build import EmbeddedIndexBuild
from kbsearch.index.embedded.generations import FIRST_GENERATION, GenerationFiles, PointerSignature
from kbsearch.index.embedded.memory import MemoryIndex
from kbsearch.index.embedded.serving import ServingCopy
from kbsearch.index.embedded.store import GenerationMissing, GenerationSwitched, IndexStore, check_vectors

# A write or open that keeps losing the race with rebuilds gives up after this many tries.
_SWITCH_RETRIES = 5


class EmbeddedIndexBackend(BaseIndexBackend):
    """Hybrid BM25 + vector index in SQLite files (one per generation) with an in-memory search copy."""

    def __init__(self, *, path: str, **options) -> None:
        super().__init__(path=path, **options)
        self.files = GenerationFiles(Path(path))
        self._lock = threading.RLock()
        self._store: IndexStore | None = None
        self._generation = 0
        self._signature: PointerSignature | None = None
        self._serving = ServingCopy()
        with self._lock:
            self._follow_pointer()

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = None
            self._signature = None
            self._serving = ServingCopy()

    # --- generations ----------------------------------------------------------------------------

    @property
    def store(self) -> IndexStore:
        """The current generation's store (after following a switch)."""
        with self._lock:
            return self._follow_pointer()

    def current_generation(self) -> int:
        with self._lock:
            self._follow_pointer()
            return self._generation

    def generation_build(self, *, dimension: int) -> EmbeddedIndexBuild:
        return EmbeddedIndexBuild(self.files, dimension=dimension)

    def _follow_pointer(self) -> IndexStore:
        """Open the generation the pointer names if it moved since we last looked (caller holds the lock).

        The stat is read before the pointer's content, so a switch between the two shows up as a
        changed stat at the next call rather than being missed.
        """
        signature = self.files.signature()
        if self._store is not None and signature == self._signature:
            return self._store
        for _ in range(_SWITCH_RETRIES):
            generation = self.files.current()
            if self._store is not None and generation == self._generation:
                self._signature = signature
                return self._store
            try:
                store = IndexStore(
                    self.files.file_of(generation),
                    create=generation == FIRST_GENERATION,
                    is_current=lambda generation=generation: self.files.current() == generation,
                )
            except GenerationMissing:  # switched again, and this one removed, since we read the pointer
                signature = self.files.signature()
                continue
            if self._store is not None:
                self._store.close()
            self._store, self._generation, self._signature = store, generation, signature
            self._serving = ServingCopy()  # opened on the new generation at the next search
            return store
        raise IndexBackendError(f"could not open the current generation of {self.files.path}")

    def _write(self, action: Callable[[IndexStore], None]) -> None:
        """Run a write on the current generation, again on the next one if a switch overtook it."""
        with self._lock:
            for _ in range(_SWITCH_RETRIES):
                store = self._follow_pointer()
                try:
                    action(store)
                except GenerationSwitched:
                    self._signature = None  # re-read the pointer whatever its stat says
                    continue
                # The writer, not a search, compacts the delta into a new segment when it is due.
                self._serving.after_write(store)
                return
        raise IndexBackendError(f"the generation of {self.files.path} kept switching during a write")

    # --- writes and checks ----------------------------------------------------------------------

    def ensure_index(self, *, dimension: int) -> None:
        self._write(lambda store: store.set_dimension(dimension))

    @staticmethod
    def _dimension_of(store: IndexStore) -> int:
        dimension = store.dimension()
        if dimension is None:
            raise IndexBackendError("the index has not been created yet: call ensure_index first")
        return dimension

    def upsert_chunks(self, chunks: Sequence[IndexChunk]) -> None:
        if not chunks:
            return

        def upsert(store: IndexStore) -> None:
            check_vectors(chunks, self._dimension_of(store))
            store.upsert(chunks)

        self._write(upsert)

    def delete_documents(self, document_ids: Sequence[int]) -> None:
        if document_ids:
            self._write(lambda store: store.delete_documents(list(document_ids)))

    def update_access(self, document_id: int, principals: frozenset[str]) -> None:
        self._write(lambda store: store.set_access(document_id, frozenset(principals)))

    def indexed_documents(self, document_ids: Sequence[int]) -> dict[int, IndexedDocument]:
        with self._lock:
            return self._follow_pointer().indexed_documents(list(document_ids))

    def document_ids(self) -> set[int]:
        with self._lock:
            return self._follow_pointer().document_ids()

    def chunk_count(self) -> int:
        with self._lock:
            return self._follow_pointer().chunk_count()

    # --- keeping the memory copy current -------------------------------------------------------

    def _current(self) -> MemoryIndex | None:
        """The memory copy of the current generation with every committed change applied (caller holds the lock)."""
        store = self._follow_pointer()  # first: a switch replaces self._serving
        return self._serving.current(store)

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

    def hybrid_search(self, **arguments) -> list[ChunkHit]:
        # Both legs under one hold of the lock, so a switch cannot fall between them and fuse hits
        # of two generations.
        with self._lock:
            return super().hybrid_search(**arguments)
