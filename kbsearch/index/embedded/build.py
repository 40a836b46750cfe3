"""Building the next generation of the embedded index while the current one keeps serving, and
switching back to a kept one.

Why a build can miss nothing: it notes the live generation's last change (``seq``) before its
caller reads anything from the database. Every sync writes the database first and the index
second, so a change the caller's reads miss reaches the live generation's change log after that
seq. ``switch`` re-reads the documents named there (through the caller, with the build's model,
since the live generation's vectors may come from another one), first without blocking anyone,
then once more while holding the live generation's write lock, and moves the pointer before
letting go. A writer that was waiting for that lock finds the pointer moved and writes to the new
generation instead (``IndexStore`` checks it inside every write transaction).

Switching back (``switch_to_kept``, a rollback) is the same catch-up with another starting point: a
kept generation stopped receiving writes when it stopped serving, so the documents written to the
serving generation since it began to serve (its ``serving_since`` seq) are re-read into the target
first. Without a way to re-read them the switch refuses rather than serve a stale index.

A build may also be ``keep``-ed rather than switched to (a re-embed the operator switches to
later): it replays what it can without blocking anyone, records in its own file the live
generation's seq it is caught up to (``_KEPT_MARK``), and joins the pointer's kept set. The later
switch starts its catch-up from that mark while the same generation still serves, since every
write that generation took after the mark (served, or replayed into it) is one the kept one missed.

Generations kept: the new one, the one it replaced, and the most recent others up to ``keep``;
older ones, and files of builds that died before switching, are removed. A process still reading a
removed file notices the pointer moved at its next search.
"""
import contextlib
from collections.abc import Sequence

from kbsearch.index.base import (
    BaseIndexBuild,
    BatchResult,
    ChunksForDocuments,
    IndexBackendError,
    IndexChunk,
    IndexGeneration,
    IndexMetadata,
)
from kbsearch.index.embedded.generations import FIRST_GENERATION, GenerationFiles
from kbsearch.index.embedded.serving import segment_prepare
from kbsearch.index.embedded.store import IndexStore
from kbsearch.index.vectors import check_vectors, split_valid

# Meta key of a kept (never switched to) build: "<live generation>:<its seq caught up to>".
_KEPT_MARK = "caught_up_with"
# Passes re-reading changed documents before the one under the write lock; each pass only sees
# what was written during the previous one, so the locked pass is short.
_UNLOCKED_CATCH_UP_PASSES = 3


class _CatchUp:
    """Re-reads into ``target`` the documents written to ``live`` after ``seq``, then switches."""

    def __init__(self, files: GenerationFiles, live: IndexStore, live_number: int, target: IndexStore,
                 target_number: int, seq: int, kept: set[int]) -> None:
        self.files, self.live, self.live_number = files, live, live_number
        self.target, self.target_number = target, target_number
        self.replayed_seq, self.kept = seq, kept

    def _replay(self, chunks_for_documents: ChunksForDocuments | None, dimension: int) -> bool:
        """Re-read the documents written to the live generation since the last replay; any found?"""
        changed, latest = self.live.documents_changed_since(self.replayed_seq)
        if changed:
            if chunks_for_documents is None:
                raise IndexBackendError(
                    f"{len(changed)} document(s) were written while generation {self.target_number} did not "
                    "serve; switching back needs a way to re-read them (chunks_for_documents)"
                )
            document_ids = sorted(changed)
            fresh = [chunk for chunk in chunks_for_documents(document_ids) if chunk.document_id in changed]
            check_vectors(fresh, dimension)
            self.target.replace_documents(document_ids, fresh)
        self.replayed_seq = latest
        return bool(changed)

    def switch(self, chunks_for_documents: ChunksForDocuments | None, dimension: int) -> None:
        for _ in range(_UNLOCKED_CATCH_UP_PASSES):
            if not self._replay(chunks_for_documents, dimension):
                break
        with self.live.write_locked():
            self._replay(chunks_for_documents, dimension)
            self.target.mark_serving()
            self.files.point_at(self.target_number, previous=self.live_number, kept=self.kept)


def _remove_unkept(files: GenerationFiles, kept: set[int]) -> None:
    for number in files.on_disk() - kept:
        # The switch has happened; a file that will not go now goes at the next build.
        with contextlib.suppress(OSError):
            files.remove(number)


class EmbeddedIndexBuild(BaseIndexBuild):
    """One generation being written into its own SQLite file; holds the index's build lock."""

    def __init__(self, files: GenerationFiles, *, metadata: IndexMetadata, keep: int = 2) -> None:
        self._files = files
        self.metadata = metadata
        self.dimension = metadata.dimension
        self._keep = keep
        self._switched = False
        self._finished = False
        self._resources = contextlib.ExitStack()
        try:
            self._resources.enter_context(files.build_lock())
            pointer = files.read()
            self._live_number = pointer.generation
            self._kept = set(pointer.kept)
            # Files of builds that died before switching: neither current nor kept.
            for number in files.on_disk() - self._kept:
                files.remove(number)
            self.number = max(files.on_disk() | self._kept) + 1
            self._live = IndexStore(files.file_of(self._live_number), create=self._live_number == FIRST_GENERATION)
            self._resources.callback(self._live.close)
            self._start_seq = self._live.latest_seq()
            self._new = IndexStore(files.file_of(self.number))
            self._resources.callback(self._new.close)
            self._new.set_metadata(metadata)
        except BaseException:
            self._resources.close()
            raise

    def write(self, chunks: Sequence[IndexChunk]) -> BatchResult:
        valid, failures = split_valid(chunks, self.dimension)
        if valid:
            self._new.upsert(valid)
        return BatchResult(written=len(valid), failures=tuple(failures))

    def _kept_after_switch(self) -> set[int]:
        """The new generation, the one it replaces, then the newest others, up to ``keep``."""
        others = sorted(self._kept - {self.number, self._live_number}, reverse=True)
        return set([self.number, self._live_number, *others][: max(self._keep, 1)])

    def switch(self, *, chunks_for_documents: ChunksForDocuments) -> IndexGeneration:
        # Mapped segment written now, so no process has to load the new generation from SQLite
        # after the switch; the catch-up writes below reach them through the change log.
        segment_prepare(self._new)
        kept = self._kept_after_switch()
        _CatchUp(self._files, self._live, self._live_number, self._new, self.number, self._start_seq, kept).switch(
            chunks_for_documents, self.dimension
        )
        self._switched = True
        generation = IndexGeneration(number=self.number, chunk_count=self._new.chunk_count())
        self._finished = True
        try:
            _remove_unkept(self._files, kept)
        finally:
            self._resources.close()
        return generation

    def keep(self, *, chunks_for_documents: ChunksForDocuments) -> IndexGeneration:
        if self._finished:
            raise IndexBackendError(f"build of generation {self.number} already finished")
        catch_up = _CatchUp(self._files, self._live, self._live_number, self._new, self.number, self._start_seq, set())
        for _ in range(_UNLOCKED_CATCH_UP_PASSES):
            if not catch_up._replay(chunks_for_documents, self.dimension):
                break
        _set_kept_mark(self._new, f"{self._live_number}:{catch_up.replayed_seq}")
        pointer = self._files.read()  # unchanged while we hold the build lock
        self._files.point_at(pointer.generation, previous=pointer.previous, kept=set(pointer.kept) | {self.number})
        self._finished = True
        generation = IndexGeneration(number=self.number, chunk_count=self._new.chunk_count())
        self._resources.close()
        return generation

    def abort(self) -> None:
        if self._switched or self._finished:
            return
        self._finished = True
        with self._resources:  # closes both stores, then releases the build lock
            self._new.close()
            self._files.remove(self.number)


def switch_to_kept(files: GenerationFiles, number: int, *, chunks_for_documents: ChunksForDocuments | None) -> int:
    """Make kept generation ``number`` serve again, caught up with the writes it missed; returns
    its chunk count. Holds the build lock, so it never races a build, a drop or another switch."""
    with files.build_lock():
        pointer = files.read()
        if number not in pointer.kept or number not in files.on_disk():
            raise IndexBackendError(f"generation {number} of {files.path} is not kept; kept: {sorted(pointer.kept)}")
        with contextlib.ExitStack() as resources:
            target = resources.enter_context(contextlib.closing(IndexStore(files.file_of(number), create=False)))
            if number == pointer.generation:
                return target.chunk_count()
            dimension = target.dimension()
            if dimension is None:
                raise IndexBackendError(f"generation {number} of {files.path} was never written")
            live = resources.enter_context(contextlib.closing(
                IndexStore(files.file_of(pointer.generation), create=pointer.generation == FIRST_GENERATION)
            ))
            # A generation switched to by an older version of this code has no mark: then every
            # document in its change log is re-read (slow but complete).
            since = live.serving_since() or 0
            mark = _kept_mark(target)
            if mark is not None and mark[0] == pointer.generation:
                since = mark[1]  # a kept build, never served: caught up to there with this live one
            _CatchUp(files, live, pointer.generation, target, number, since, set(pointer.kept)).switch(
                chunks_for_documents, dimension
            )
            _set_kept_mark(target, None)  # it has served now: later switches start from serving_since
            return target.chunk_count()


def _kept_mark(store: IndexStore) -> tuple[int, int] | None:
    value = store._meta().get(_KEPT_MARK)
    if not value:
        return None
    live, seq = value.split(":")
    return int(live), int(seq)


def _set_kept_mark(store: IndexStore, value: str | None) -> None:
    # Through the store's own write path (one transaction); a plain meta row, not a change.
    if value is None:
        store._write([("DELETE FROM meta WHERE key = ?", (_KEPT_MARK,))])
    else:
        store._write([("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_KEPT_MARK, value))])
