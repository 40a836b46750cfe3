"""Keeping a process's searchable copy of one generation current: open the segment, replay the log.

A process opening a generation maps its newest segment (``segments.py``) and replays the change
log from the segment's seq: at 100,000 chunks that is well under a second, against 20 s to parse
the store. Later searches replay only the changes made since the previous one.

The delta grows with every write, and a process starting later replays all of it, so once it
passes ``_COMPACT_MIN_CHANGES`` changes (or 1% of the segment's rows, whichever is larger: the
segment is rewritten whole, so a large one is rewritten less often) the process that notices
writes a new segment from its memory copy and switches to it. One process at a time (a
non-blocking ``flock``); the others carry on with their delta and pick the new segment up the next
time they notice. A generation with no segment yet (written by an older version, or a build that
did not make one) is loaded from the store once and a segment written.
"""
import logging

from kbsearch.index.embedded.memory import MemoryIndex
from kbsearch.index.embedded.segments import compaction_lock, open_segment, write_segment
from kbsearch.index.embedded.store import IndexStore

_COMPACT_MIN_CHANGES = 2_000
_COMPACT_SHARE_OF_ROWS = 0.01
# Changes replayed per read of the log, so a long delta is not held in memory twice.
_REPLAY_BATCH = 5_000
_OPEN_ATTEMPTS = 3

logger = logging.getLogger(__name__)


class ServingCopy:
    """The memory copy of one store and the change seq it has replayed to. Not thread-safe."""

    def __init__(self) -> None:
        self.memory: MemoryIndex | None = None
        self.applied_seq = 0

    def current(self, store: IndexStore) -> MemoryIndex | None:
        """The memory copy with every committed change applied; None if the index has no dimension."""
        dimension = store.dimension()
        if dimension is None:
            return None
        memory = self.memory
        if memory is None or memory.dimension != dimension:
            return self._open(store, dimension)
        if store.latest_seq() > self.applied_seq:
            if self.applied_seq < store.oldest_seq() - 1:  # the log was trimmed past us
                return self._open(store, dimension)
            self._replay(store, memory)
            self._compact_if_due(store)
        return self.memory

    def _open(self, store: IndexStore, dimension: int) -> MemoryIndex:
        for _ in range(_OPEN_ATTEMPTS):
            segment = open_segment(store.path, store_id=store.store_id(), dimension=dimension,
                                   oldest_seq=store.oldest_seq(), latest_seq=store.latest_seq())
            if segment is not None:
                self.memory, self.applied_seq = MemoryIndex(dimension, segment), segment.seq
                self._replay(store, self.memory)
                self._compact_if_due(store)
                return self.memory
        self.memory, self.applied_seq = self._load_from_store(store, dimension)
        self._compact_if_due(store, force=True)
        return self.memory

    @staticmethod
    def _load_from_store(store: IndexStore, dimension: int) -> tuple[MemoryIndex, int]:
        memory = MemoryIndex(dimension)
        seq, chunks, access = store.snapshot(dimension)
        for chunk in chunks:
            memory.add(chunk)
        for document_id, principals in access.items():
            memory.set_access(document_id, principals)
        return memory, seq

    def _replay(self, store: IndexStore, memory: MemoryIndex) -> None:
        while True:
            changes = store.changes_since(self.applied_seq, limit=_REPLAY_BATCH)
            if not changes:
                return
            upserted = [change.chunk_id for change in changes if change.kind == "upsert"]
            chunks = store.load_chunks(upserted, memory.dimension)
            access_documents = {change.document_id for change in changes if change.kind == "access"}
            access = store.load_access(sorted(access_documents))
            for change in changes:
                if change.kind == "delete":
                    memory.delete_document(change.document_id)
                    memory.set_access(change.document_id, ())
                elif change.kind == "upsert" and change.chunk_id in chunks:
                    # A chunk missing now was deleted by a later change.
                    memory.add(chunks[change.chunk_id])
            # Access lists are read in their latest state, so applying them after the chunks is exact.
            for document_id, principals in access.items():
                memory.set_access(document_id, principals)
            self.applied_seq = changes[-1].seq

    def _compact_if_due(self, store: IndexStore, *, force: bool = False) -> None:
        memory = self.memory
        segment_seq = memory.segment.seq if memory.segment is not None else 0
        threshold = max(_COMPACT_MIN_CHANGES, int(memory.base_rows * _COMPACT_SHARE_OF_ROWS))
        if not force and self.applied_seq - segment_seq <= threshold:
            return
        with compaction_lock(store.path) as ours:
            if not ours:
                return  # another process is writing one; we pick it up once it is there
            newer = open_segment(store.path, store_id=store.store_id(), dimension=memory.dimension,
                                 oldest_seq=store.oldest_seq(), latest_seq=self.applied_seq)
            if newer is None or newer.seq <= segment_seq or (not force and self.applied_seq - newer.seq > threshold):
                if memory.size == 0:
                    return
                try:
                    write_segment(store.path, memory.segment_arrays(seq=self.applied_seq, store_id=store.store_id()))
                except OSError:
                    # Disk full, read-only volume: searches go on from memory; the next one retries.
                    logger.warning("could not write a segment of %s", store.path, exc_info=True)
                    return
                newer = open_segment(store.path, store_id=store.store_id(), dimension=memory.dimension,
                                     oldest_seq=store.oldest_seq(), latest_seq=self.applied_seq)
        if newer is None:
            return
        # Switch to the mapped segment (ours or another process's) and replay what it lacks.
        fresh = MemoryIndex(memory.dimension, newer)
        self.memory, self.applied_seq = fresh, newer.seq
        self._replay(store, fresh)


def segment_prepare(store: IndexStore) -> None:
    """Write a segment for ``store`` now (a build does this before switching, so no web process has
    to load the new generation from SQLite)."""
    ServingCopy().current(store)
