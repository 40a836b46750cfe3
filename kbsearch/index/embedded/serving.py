"""Keeping a process's searchable copy of one generation current: open the segment, replay the log.

A process opening a generation maps its newest segment (``segments.py``) and replays the change
log from the segment's seq: at 100,000 chunks that is well under a second, against 20 s to parse
the store. Later searches replay only the changes made since the previous one.

The delta grows with every write and a process starting later replays all of it, so once the log
holds more than ``_COMPACT_MIN_CHANGES`` changes past the newest segment (or 2% of its rows,
whichever is larger: a segment is rewritten whole, so a large one is rewritten less often), the
process that *wrote* (``after_write``: the sync worker, not a web request) writes a new segment
from its memory copy. One process at a time (a non-blocking ``flock``). Searching processes never
compact: once their delta passes the same mark they look for a newer segment and switch to it.
The one exception is a generation with no segment at all (written by an older version, or a build
that did not make one): the first process to search it loads it from the store and writes one.
"""
import logging

from kbsearch.index.embedded.memory import MemoryIndex
from kbsearch.index.embedded.segments import (
    SegmentArrays,
    compaction_lock,
    newest_segment,
    open_segment,
    write_segment,
)
from kbsearch.index.embedded.store import IndexStore, StoredChunk

_COMPACT_MIN_CHANGES = 5_000
_COMPACT_SHARE_OF_ROWS = 0.02
# Changes replayed per read of the log, so a long delta is not held in memory twice.
_REPLAY_BATCH = 5_000
_OPEN_ATTEMPTS = 3

logger = logging.getLogger(__name__)


def _too_long(changes: int, segment_rows: int) -> bool:
    return changes > max(_COMPACT_MIN_CHANGES, int(segment_rows * _COMPACT_SHARE_OF_ROWS))


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
            if self._delta_too_long():
                self._adopt_newer_segment(store)
        return self.memory

    def after_write(self, store: IndexStore) -> None:
        """Called by a process after its write committed: compact if the log past the newest
        segment has grown too long. Cheap when it has not (a listing and a small file read), so a
        writer holds no memory copy until its first compaction."""
        try:
            newest = newest_segment(store.path, store_id=store.store_id())
            segment_seq, segment_rows = newest if newest is not None else (0, 0)
            if not _too_long(store.latest_seq() - segment_seq, segment_rows):
                return
            if self.current(store) is not None and self._delta_too_long():
                self._compact(store)
        except Exception:
            # The write has committed; a failed compaction must not make it look failed. Searches
            # stay exact from the log, only slower to start, and the next write tries again.
            logger.exception("compacting %s failed", store.path)
            self.memory = None

    def _delta_too_long(self) -> bool:
        memory = self.memory
        segment_seq = memory.segment.seq if memory.segment is not None else 0
        return _too_long(self.applied_seq - segment_seq, memory.base_rows)

    def _open(self, store: IndexStore, dimension: int) -> MemoryIndex:
        for _ in range(_OPEN_ATTEMPTS):
            segment = open_segment(store.path, store_id=store.store_id(), dimension=dimension,
                                   oldest_seq=store.oldest_seq(), latest_seq=store.latest_seq())
            if segment is not None:
                self._switch_to(store, segment)
                return self.memory
        self.memory, self.applied_seq = self._load_from_store(store, dimension)
        self._compact(store)
        return self.memory

    def _switch_to(self, store: IndexStore, segment: SegmentArrays) -> None:
        """Serve from ``segment`` (mapped) plus the changes the log holds after it."""
        self.memory, self.applied_seq = MemoryIndex(segment.dimension, segment), segment.seq
        self._replay(store, self.memory)

    def _adopt_newer_segment(self, store: IndexStore) -> None:
        memory = self.memory
        newer = open_segment(store.path, store_id=store.store_id(), dimension=memory.dimension,
                             oldest_seq=store.oldest_seq(), latest_seq=self.applied_seq)
        if newer is not None and (memory.segment is None or newer.seq > memory.segment.seq):
            self._switch_to(store, newer)

    def _compact(self, store: IndexStore) -> None:
        """Write a segment of the memory copy (unless another process is at it), then switch to it."""
        memory = self.memory
        if memory.size == 0:
            return
        with compaction_lock(store.path) as ours:
            if not ours:
                return  # another process is writing one; picked up once the delta is long again
            try:
                write_segment(store.path, memory.segment_arrays(seq=self.applied_seq, store_id=store.store_id()))
            except OSError:
                # Disk full, read-only volume: searches go on from memory; a later write retries.
                logger.warning("could not write a segment of %s", store.path, exc_info=True)
                return
        self._adopt_newer_segment(store)

    @staticmethod
    def _load_from_store(store: IndexStore, dimension: int) -> tuple[MemoryIndex, int]:
        memory = MemoryIndex(dimension)
        seq, chunks, access, places = store.snapshot(dimension)
        batch: list[StoredChunk] = []
        for chunk in chunks:
            batch.append(chunk)
            if len(batch) == _REPLAY_BATCH:
                memory.add_many(batch)
                batch = []
        memory.add_many(batch)
        for document_id, principals in access.items():
            memory.set_access(document_id, principals)
        for document_id, place in places.items():
            memory.set_place(document_id, place)
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
            places = store.load_places(sorted({change.document_id for change in changes if change.kind == "place"}))
            pending: list[StoredChunk] = []  # consecutive upserts, added in one pass
            for change in changes:
                if change.kind == "upsert" and change.chunk_id in chunks:
                    pending.append(chunks[change.chunk_id])
                    continue
                if change.kind in ("access", "place"):
                    continue  # applied below, in its latest state
                memory.add_many(pending)
                pending = []
                if change.kind == "delete":
                    memory.delete_document(change.document_id)
                    memory.set_access(change.document_id, ())
                elif change.kind == "upsert":
                    # Deleted by a later change, which may name another document than the one
                    # the chunk was under before this upsert: drop that older row here.
                    memory.remove_chunk(change.chunk_id)
            memory.add_many(pending)
            # Access lists and places are read in their latest state, so applying them after the
            # chunks is exact.
            for document_id, principals in access.items():
                memory.set_access(document_id, principals)
            for document_id, place in places.items():
                memory.set_place(document_id, place)
            self.applied_seq = changes[-1].seq


def segment_prepare(store: IndexStore) -> None:
    """Write a segment for ``store`` now (a build does this before switching, so no web process has
    to load the new generation from SQLite)."""
    copy = ServingCopy()
    if copy.current(store) is not None and copy.memory.segment is None:
        copy._compact(store)
