"""The embedded index backend: the default, needing no server (see ``memory.py`` for the design).

Each process keeps an in-memory copy of the current generation (``generations.py``) and, before
every search or write, checks whether a rebuild moved the pointer: if so it opens the new
generation and reloads, so web processes follow a ``manage.py reindex`` without a restart.

Metadata (contract v2): each generation's SQLite file records the ``IndexMetadata`` that built it.
``ensure_index`` declares the caller's metadata to this backend object; every upsert then checks it
against the serving generation's inside the retry loop that follows switches, so a writer still on
the old model gets ``IndexMismatch`` once another process switched to a new model's generation.
A generation written before metadata existed records only its dimension: the first
``ensure_index`` with the same dimension adopts the caller's metadata, once, with a warning (that
install's vectors came from the model configured then; refusing would take every upgraded install
down until a reindex), and a different dimension is a mismatch as before.

Options: ``path`` (generation 1's file) and ``keep_generations`` (complete generations kept for
switching back, the serving one included; default 2: one rollback, as before contract v2).
"""
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from kbsearch.index.base import (
    BaseIndexBackend,
    BatchResult,
    Capabilities,
    ChunkHit,
    ChunksForDocuments,
    GenerationInfo,
    IndexBackendError,
    IndexChunk,
    IndexedDocument,
    IndexMetadata,
    IndexMismatch,
    SearchFilters,
    SearchQuery,
)
from kbsearch.index.embedded.build import EmbeddedIndexBuild, switch_to_kept
from kbsearch.index.embedded.generations import FIRST_GENERATION, GenerationFiles, PointerSignature
from kbsearch.index.embedded.memory import MemoryIndex
from kbsearch.index.embedded.serving import ServingCopy
from kbsearch.index.embedded.store import GenerationMissing, GenerationSwitched, IndexStore
from kbsearch.index.vectors import split_valid

logger = logging.getLogger(__name__)

# A write or open that keeps losing the race with rebuilds gives up after this many tries.
_SWITCH_RETRIES = 5


class EmbeddedIndexBackend(BaseIndexBackend):
    """Hybrid BM25 + vector index in SQLite files (one per generation) with an in-memory search copy."""

    capabilities = Capabilities(native_hybrid=False, generations=True, shared_memory=True)  # mapped segments

    def __init__(self, *, path: str, keep_generations: int = 2, **options) -> None:
        super().__init__(path=path, keep_generations=keep_generations, **options)
        if keep_generations < 1:
            raise ValueError(f"keep_generations must be at least 1, got {keep_generations}")
        self.files = GenerationFiles(Path(path))
        self.keep_generations = keep_generations
        self._declared: IndexMetadata | None = None  # what this process's writers embed with
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

    def generation_create(self, *, metadata: IndexMetadata) -> EmbeddedIndexBuild:
        return EmbeddedIndexBuild(self.files, metadata=metadata, keep=self.keep_generations)

    def generations(self) -> list[GenerationInfo]:
        with self._lock:
            self._follow_pointer()
            if self._store.dimension() is None:
                return []  # no index yet
            pointer = self.files.read()
            serving = pointer.generation
        found = []
        for number in sorted(pointer.kept & self.files.on_disk()):
            try:
                store = IndexStore(self.files.file_of(number), create=False)
            except GenerationMissing:  # dropped since the pointer was read
                continue
            try:
                found.append(GenerationInfo(
                    number=number, metadata=store.metadata(), chunk_count=store.chunk_count(),
                    serving=number == serving, created_at=store.created_at(),
                ))
            finally:
                store.close()
        return found

    def generation_switch(
        self, number: int, *, chunks_for_documents: ChunksForDocuments | None = None
    ) -> GenerationInfo:
        chunk_count = switch_to_kept(self.files, number, chunks_for_documents=chunks_for_documents)
        with self._lock:
            self._signature = None  # follow at once, whatever the pointer's stat says
            store = self._follow_pointer()
            return GenerationInfo(
                number=number, metadata=store.metadata(), chunk_count=chunk_count, serving=True,
                created_at=store.created_at(),
            )

    def generation_drop(self, number: int) -> None:
        with self.files.build_lock():
            pointer = self.files.read()
            if number == pointer.generation:
                raise IndexBackendError(f"generation {number} of {self.files.path} serves: switch away from it first")
            if number not in pointer.kept:
                raise IndexBackendError(f"generation {number} of {self.files.path} is not kept; kept: {sorted(pointer.kept)}")
            # Forget it in the pointer first: a crash between the two steps leaves only a stray
            # file, which the next build removes.
            previous = None if pointer.previous == number else pointer.previous
            self.files.point_at(pointer.generation, previous=previous, kept=pointer.kept - {number})
            self.files.remove(number)

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

    def ensure_index(self, *, metadata: IndexMetadata) -> None:
        def ensure(store: IndexStore) -> None:
            recorded = store.metadata()
            if recorded is None:
                dimension = store.dimension()
                if dimension is not None and dimension != metadata.dimension:
                    raise IndexMismatch(
                        f"index at {store.path} holds {dimension}-dimensional vectors, not {metadata.dimension}; "
                        "rebuild it (manage.py reindex) after changing the embedding model"
                    )
                if dimension is not None:
                    logger.warning("index %s predates index metadata; recording %s as what built it",
                                   store.path, metadata)
                store.set_metadata(metadata)
            else:
                _check_metadata(store, recorded, metadata)

        self._write(ensure)
        self._declared = metadata

    def serving_metadata(self) -> IndexMetadata | None:
        with self._lock:
            return self._follow_pointer().metadata()

    def _checked_dimension(self, store: IndexStore) -> int:
        """The store's dimension, once its metadata is the one this process declared."""
        if self._declared is None:
            raise IndexBackendError("call ensure_index(metadata=...) before writing chunks")
        recorded = store.metadata()
        if recorded is None:
            raise IndexBackendError(f"index at {store.path} has no metadata yet: call ensure_index first")
        _check_metadata(store, recorded, self._declared)
        return recorded.dimension

    def upsert_chunks(self, chunks: Sequence[IndexChunk]) -> BatchResult:
        if not chunks:
            return BatchResult(written=0)
        outcome: list[BatchResult] = []

        def upsert(store: IndexStore) -> None:
            outcome.clear()  # a retry after a switch checks again against the new generation
            valid, failures = split_valid(chunks, self._checked_dimension(store))
            if valid:
                store.upsert(valid)
            outcome.append(BatchResult(written=len(valid), failures=tuple(failures)))

        self._write(upsert)
        return outcome[0]

    def delete_documents(self, document_ids: Sequence[int]) -> None:
        # One transaction whatever the count: SQLite has no per-call limit to loop past.
        if document_ids:
            self._write(lambda store: store.delete_documents(list(document_ids)))

    def update_access_many(self, access: Mapping[int, frozenset[str]]) -> BatchResult:
        if access:
            access = {document_id: frozenset(principals) for document_id, principals in access.items()}
            self._write(lambda store: store.set_access_many(access))
        return BatchResult(written=len(access))

    def update_places_many(self, places: Mapping[int, str]) -> BatchResult:
        if places:
            places = {document_id: str(place) for document_id, place in places.items()}
            self._write(lambda store: store.set_places_many(places))
        return BatchResult(written=len(places))

    def indexed_documents(self, document_ids: Sequence[int]) -> dict[int, IndexedDocument]:
        with self._lock:
            return self._follow_pointer().indexed_documents(list(document_ids))

    def iter_document_ids(self, *, batch_size: int = 1000) -> Iterator[list[int]]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        after = None
        while True:
            with self._lock:  # per page: a long iteration never holds off searches
                page = self._follow_pointer().document_ids_after(after, batch_size)
            if not page:
                return
            yield page
            if len(page) < batch_size:
                return
            after = page[-1]

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

    def bm25_search(
        self, *, terms: Sequence[str], filters: SearchFilters, limit: int, expansions: Sequence[tuple[str, float]] = ()
    ) -> list[ChunkHit]:
        with self._lock:
            memory = self._current()
            return [] if memory is None else memory.bm25_search(terms, filters, limit, expansions)

    def search(self, query: SearchQuery) -> list[ChunkHit]:
        # Both legs under one hold of the lock, so a switch cannot fall between them and fuse hits
        # of two generations.
        with self._lock:
            return super().search(query)


def _check_metadata(store: IndexStore, recorded: IndexMetadata, wanted: IndexMetadata) -> None:
    differences = recorded.mismatches(wanted)
    if differences:
        raise IndexMismatch(
            f"the serving generation {store.path.name} was built with other metadata ({'; '.join(differences)}): "
            "reindex into a new generation for this model or analyzer, or switch to one built with it"
        )
