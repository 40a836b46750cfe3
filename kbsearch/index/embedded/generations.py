"""Generations of the embedded index on disk: which SQLite file is current, and switching it atomically.

The configured ``path`` names generation 1, so an index written before generations existed is
simply generation 1 and needs no migration. A rebuild writes generation N into ``<path>.gen<N>``
and then points ``<path>.current`` at it with ``os.replace`` (atomic on POSIX): a process reads
either the old pointer or the new one, never a torn one. With no pointer file, generation 1 is
current. The pointer also names the generation it replaced and every generation *kept*: complete
generations that may serve again (``generation_switch``) until dropped. A file on disk that is
neither current nor kept is a build in progress or one that died, and the next build removes it.
A pointer written before the kept list existed keeps the current and the previous generation.

Running processes notice a switch by comparing the pointer's ``stat`` (inode, mtime, size) with
what they saw last: one system call per search, no read. A switch always writes a new file, so its
inode and mtime change; the generation number inside is what decides, the stat only says when to
look.

One rebuild at a time: ``build_lock`` takes an exclusive ``flock`` that dies with its process, so
a killed rebuild never leaves the index locked.
"""
import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kbsearch.index.base import IndexBackendError
from kbsearch.index.embedded.segments import remove_segments

FIRST_GENERATION = 1
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class PointerSignature:
    """What ``stat`` says of the pointer file; ``None`` fields when it does not exist."""

    inode: int | None
    mtime_ns: int | None
    size: int | None


@dataclass(frozen=True)
class Pointer:
    """The current generation, the one it replaced, and every generation kept (current included)."""

    generation: int
    previous: int | None
    kept: frozenset[int] = frozenset()


class GenerationFiles:
    """Names and pointer of the generations kept next to one configured ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.pointer = self.path.with_name(self.path.name + ".current")
        self._generation_name = re.compile(re.escape(self.path.name) + r"\.gen(\d+)")

    def file_of(self, generation: int) -> Path:
        if generation == FIRST_GENERATION:
            return self.path
        return self.path.with_name(f"{self.path.name}.gen{generation}")

    def signature(self) -> PointerSignature:
        try:
            stat = os.stat(self.pointer)
        except FileNotFoundError:
            return PointerSignature(None, None, None)
        return PointerSignature(stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def read(self) -> Pointer:
        """What the pointer says (generation 1 and no previous one when there is no pointer)."""
        try:
            text = self.pointer.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Pointer(FIRST_GENERATION, None, frozenset({FIRST_GENERATION}))
        try:
            content = json.loads(text)
            generation, previous = content["generation"], content.get("previous")
            kept = content.get("kept")
            if kept is None:  # a pointer from before the kept list: current and previous were kept
                kept = [generation] + ([previous] if previous is not None else [])
            pointer = Pointer(generation, previous, frozenset(kept) | {generation})
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise IndexBackendError(f"unreadable index pointer {self.pointer}: {text!r}") from error
        if not all(isinstance(number, int) and number >= FIRST_GENERATION
                   for number in (pointer.generation, pointer.previous or FIRST_GENERATION, *pointer.kept)):
            raise IndexBackendError(f"index pointer {self.pointer} names no generation: {text!r}")
        return pointer

    def current(self) -> int:
        return self.read().generation

    def point_at(self, generation: int, *, previous: int | None, kept: set[int] | frozenset[int] | None = None) -> None:
        """Make ``generation`` current, durably: the pointer is fsynced before and after the rename.

        ``kept``: the generations that may serve again (``generation`` is always one); by default
        ``generation`` and ``previous``.
        """
        if kept is None:
            kept = {generation} | ({previous} if previous is not None else set())
        content = {"generation": generation, "previous": previous, "kept": sorted(set(kept) | {generation})}
        temporary = self.pointer.with_name(f"{self.pointer.name}.tmp-{os.getpid()}")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(content) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.pointer)
        _fsync_directory(self.pointer.parent)

    def on_disk(self) -> set[int]:
        """Generations with a file in the directory (generation 1 only if ``path`` exists)."""
        found = {FIRST_GENERATION} if self.path.exists() else set()
        for entry in self.path.parent.iterdir():
            match = self._generation_name.fullmatch(entry.name)
            if match:
                found.add(int(match.group(1)))
        return found

    def remove(self, generation: int) -> None:
        """Delete a generation's files. A process still holding them open keeps reading its copy
        until its next search sees the pointer moved; POSIX frees the space once it lets go."""
        base = self.file_of(generation)
        for file in (base, *(base.with_name(base.name + suffix) for suffix in _SQLITE_SIDE_FILES)):
            file.unlink(missing_ok=True)
        remove_segments(base)

    @contextmanager
    def build_lock(self) -> Iterator[None]:
        """Held for a whole rebuild; a second rebuild of the same index fails instead of waiting."""
        lock_path = self.path.with_name(self.path.name + ".build-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise IndexBackendError(f"another rebuild of {self.path} is running") from error
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
