"""Building the next generation of the embedded index while the current one keeps serving.

Why a build can miss nothing: it notes the live generation's last change (``seq``) before its
caller reads anything from the database. Every sync writes the database first and the index
second, so a change the caller's reads miss reaches the live generation's change log after that
seq. ``switch`` re-reads the documents named there (through the caller, with the build's model,
since the live generation's vectors may come from another one), first without blocking anyone,
then once more while holding the live generation's write lock, and moves the pointer before
letting go. A writer that was waiting for that lock finds the pointer moved and writes to the new
generation instead (``IndexStore`` checks it inside every write transaction).

Generations kept: the new one and the one it replaced (for one rollback). Older ones, and files of
builds that died before switching, are removed; a process still reading a removed file notices the
pointer moved at its next search.
"""
import contextlib
from collections.abc import Sequence

from kbsearch.index.base import BaseIndexBuild, ChunksForDocuments, IndexChunk, IndexGeneration
from kbsearch.index.embedded.generations import FIRST_GENERATION, GenerationFiles
from kbsearch.index.embedded.serving import segment_prepare
from kbsearch.index.embedded.store import IndexStore, check_vectors

# Passes re-reading changed documents before the one under the write lock; each pass only sees
# what was written during the previous one, so the locked pass is short.
_UNLOCKED_CATCH_UP_PASSES = 3


class EmbeddedIndexBuild(BaseIndexBuild):
    """One generation being written into its own SQLite file; holds the index's build lock."""

    def __init__(self, files: GenerationFiles, *, dimension: int) -> None:
        self._files = files
        self.dimension = dimension
        self._switched = False
        self._finished = False
        self._resources = contextlib.ExitStack()
        try:
            self._resources.enter_context(files.build_lock())
            pointer = files.read()
            self._live_number = pointer.generation
            # Files of builds that died before switching: neither current nor kept for rollback.
            for number in files.on_disk() - {pointer.generation, pointer.previous}:
                files.remove(number)
            self.number = max(files.on_disk() | {pointer.generation}) + 1
            self._live = IndexStore(files.file_of(self._live_number), create=self._live_number == FIRST_GENERATION)
            self._resources.callback(self._live.close)
            self._replayed_seq = self._live.latest_seq()
            self._new = IndexStore(files.file_of(self.number))
            self._resources.callback(self._new.close)
            self._new.set_dimension(dimension)
        except BaseException:
            self._resources.close()
            raise

    def write(self, chunks: Sequence[IndexChunk]) -> None:
        if chunks:
            check_vectors(chunks, self.dimension)
            self._new.upsert(chunks)

    def _replay(self, chunks_for_documents: ChunksForDocuments) -> bool:
        """Re-read the documents written to the live generation since the last replay; any found?"""
        changed, latest = self._live.documents_changed_since(self._replayed_seq)
        if changed:
            document_ids = sorted(changed)
            fresh = [chunk for chunk in chunks_for_documents(document_ids) if chunk.document_id in changed]
            check_vectors(fresh, self.dimension)
            self._new.replace_documents(document_ids, fresh)
        self._replayed_seq = latest
        return bool(changed)

    def switch(self, *, chunks_for_documents: ChunksForDocuments) -> IndexGeneration:
        # Mapped segment written now, so no process has to load the new generation from SQLite
        # after the switch; the catch-up writes below reach them through the change log.
        segment_prepare(self._new)
        for _ in range(_UNLOCKED_CATCH_UP_PASSES):
            if not self._replay(chunks_for_documents):
                break
        with self._live.write_locked():
            self._replay(chunks_for_documents)
            self._files.point_at(self.number, previous=self._live_number)
            self._switched = True
        generation = IndexGeneration(number=self.number, chunk_count=self._new.chunk_count())
        self._finish(keep={self.number, self._live_number})
        return generation

    def abort(self) -> None:
        if self._switched or self._finished:
            return
        self._finished = True
        with self._resources:  # closes both stores, then releases the build lock
            self._new.close()
            self._files.remove(self.number)

    def _finish(self, *, keep: set[int]) -> None:
        self._finished = True
        try:
            if keep:
                for number in self._files.on_disk() - keep:
                    # The switch has happened; a file that will not go now goes at the next build.
                    with contextlib.suppress(OSError):
                        self._files.remove(number)
        finally:
            self._resources.close()
