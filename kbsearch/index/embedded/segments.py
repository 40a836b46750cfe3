"""Immutable on-disk segments of the embedded index, mapped straight into memory.

Why: loading the SQLite store into numpy arrays re-parses every chunk's terms in Python, which took
20 s per process at 100,000 chunks. A segment holds the already-built arrays (postings as CSR,
vectors as one float32 matrix, columns, access lists as an interned principal table + CSR) as
``.npy`` files, opened with ``np.load(mmap_mode="r")``: opening costs a few system calls, pages are
read on first touch, and the page cache shares them between every process on the machine.

A segment is a picture of one generation's store at one change-log ``seq``; changes after it are
replayed from the log into each process's small in-memory delta (``memory.py``). Segments are
never modified: a compaction writes a new one into a temporary directory, fsyncs it and renames it
into place, then removes the older ones. A process still holding the old maps keeps reading them
(POSIX frees unlinked files only when the last map goes).

Strings (terms, principals) are looked up through a sorted table of 64-bit stable hashes with the
bytes kept beside them, so a lookup is a vectorised ``searchsorted`` plus an exact byte comparison,
and opening a segment builds no Python dict.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# 2: document places (``document_places``, ``places`` in the meta). A segment of another format is
# ignored; the first search after an upgrade loads the store once and writes a new one.
FORMAT_VERSION = 2
_META = "meta.json"
_LOCK = ".lock"
_TEMPORARY_PREFIX = ".tmp-"


def string_hash(text: str) -> int:
    """A hash that is the same in every process (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class StringTable:
    """Interned strings: ids are positions in hash order; ``find`` maps strings to ids (-1 if absent)."""

    def __init__(self, hashes: np.ndarray, offsets: np.ndarray, blob: np.ndarray) -> None:
        self.hashes, self.offsets, self.blob = hashes, offsets, blob

    @classmethod
    def build(cls, strings: Sequence[str]) -> tuple["StringTable", np.ndarray]:
        """The table of ``strings`` (distinct) and, for each input position, its id in the table."""
        hashes = np.fromiter((string_hash(text) for text in strings), dtype=np.uint64, count=len(strings))
        order = np.argsort(hashes, kind="stable")
        encoded = [strings[i].encode("utf-8") for i in order]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(item) for item in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        ids = np.empty(len(strings), dtype=np.int64)
        ids[order] = np.arange(len(strings))
        return cls(hashes[order], offsets, blob), ids

    def __len__(self) -> int:
        return len(self.hashes)

    def string(self, position: int) -> str:
        return self.blob[self.offsets[position] : self.offsets[position + 1]].tobytes().decode("utf-8")

    def strings(self) -> list[str]:
        data = self.blob.tobytes()
        offsets = self.offsets.tolist()
        return [data[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(self))]

    def find(self, strings: Sequence[str]) -> np.ndarray:
        keys = np.fromiter((string_hash(text) for text in strings), dtype=np.uint64, count=len(strings))
        first = np.searchsorted(self.hashes, keys, side="left")
        last = np.searchsorted(self.hashes, keys, side="right")
        found = np.full(len(strings), -1, dtype=np.int64)
        for i in np.flatnonzero(last > first):
            wanted = strings[i].encode("utf-8")
            # Equal hashes of different strings are possible, if rare: compare the bytes.
            for position in range(int(first[i]), int(last[i])):
                if self.blob[self.offsets[position] : self.offsets[position + 1]].tobytes() == wanted:
                    found[i] = position
                    break
        return found


# The arrays of a segment, one ``<name>.npy`` file each (see ``SegmentArrays``).
ARRAYS = (
    "chunk_ids", "document_slots", "lengths", "language_codes", "source_codes", "updated", "vectors",
    "sorted_chunk_ids", "rows_by_chunk", "document_ids", "document_row_starts", "document_row_ends",
    "term_hashes", "term_offsets", "term_bytes", "posting_starts", "posting_rows", "posting_frequencies",
    "principal_hashes", "principal_offsets", "principal_bytes", "access_starts", "access_slots", "document_places",
)


@dataclass(frozen=True)
class SegmentArrays:
    """Everything a segment holds. Rows are all live, each document's together (see ``compaction.py``).

    ``document_ids`` is sorted; the rows of document slot ``s`` are
    ``document_row_starts[s]:document_row_ends[s]``. ``rows_by_chunk[i]`` is the row of chunk ``sorted_chunk_ids[i]``.
    Postings of term ``t`` (its id in ``terms``): ``posting_starts[t]:posting_starts[t + 1]`` of
    ``posting_rows`` / ``posting_frequencies``. Slots whose access list names principal ``p``:
    ``access_starts[p]:access_starts[p + 1]`` of ``access_slots``. Document slot ``s`` is in place
    ``places[document_places[s]]`` (``places[0]`` is ``""``, no place).
    """

    seq: int
    store_id: str
    dimension: int
    live_length: float
    languages: list[str]
    sources: list[str]
    places: list[str]
    chunk_ids: np.ndarray
    document_slots: np.ndarray
    lengths: np.ndarray
    language_codes: np.ndarray
    source_codes: np.ndarray
    updated: np.ndarray
    vectors: np.ndarray
    sorted_chunk_ids: np.ndarray
    rows_by_chunk: np.ndarray
    document_ids: np.ndarray
    document_row_starts: np.ndarray
    document_row_ends: np.ndarray
    terms: StringTable
    posting_starts: np.ndarray
    posting_rows: np.ndarray
    posting_frequencies: np.ndarray
    principals: StringTable
    access_starts: np.ndarray
    access_slots: np.ndarray
    document_places: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.chunk_ids)

    def named_arrays(self) -> dict[str, np.ndarray]:
        tables = {"term": self.terms, "principal": self.principals}
        named = {}
        for name in ARRAYS:
            prefix, _, part = name.partition("_")
            if prefix in tables and part in ("hashes", "offsets", "bytes"):
                named[name] = getattr(tables[prefix], "blob" if part == "bytes" else part)
            else:
                named[name] = getattr(self, name)
        return named


def segments_directory(store_path: Path) -> Path:
    return Path(store_path).with_name(Path(store_path).name + ".segments")


def remove_segments(store_path: Path) -> None:
    """Delete every segment of a generation (its store is being removed)."""
    shutil.rmtree(segments_directory(store_path), ignore_errors=True)


def _fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_segment(store_path: Path, arrays: SegmentArrays) -> Path:
    """Write ``arrays`` as the segment at ``arrays.seq``, atomically and durably; remove older ones.

    Files go to a temporary directory, each fsynced, then the directory is renamed into place and
    its parent fsynced: a crash leaves either no new segment or a complete one, never a torn one.
    """
    directory = segments_directory(store_path)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{arrays.seq:016d}"
    temporary = directory / f"{_TEMPORARY_PREFIX}{os.getpid()}-{arrays.seq}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        for name, array in arrays.named_arrays().items():
            with open(temporary / f"{name}.npy", "wb") as handle:
                np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
        meta = {
            "format": FORMAT_VERSION, "seq": arrays.seq, "store_id": arrays.store_id, "rows": arrays.rows,
            "dimension": arrays.dimension, "live_length": arrays.live_length,
            "languages": arrays.languages, "sources": arrays.sources, "places": arrays.places,
        }
        with open(temporary / _META, "w", encoding="utf-8") as handle:
            json.dump(meta, handle)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_path(temporary)
        if final.exists() and _format_of(final) != FORMAT_VERSION:
            # Written by an older version at the same seq: readers ignore it, so replace it (a process
            # still mapping its files keeps them until it lets go).
            shutil.rmtree(final, ignore_errors=True)
        if final.exists():  # the same seq written before (by another process): identical content
            shutil.rmtree(temporary)
        else:
            os.rename(temporary, final)
        _fsync_path(directory)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    for older in _segment_seqs(directory):
        if older < arrays.seq:
            shutil.rmtree(directory / f"{older:016d}", ignore_errors=True)
    return final


def _format_of(segment: Path) -> int | None:
    try:
        return json.loads((segment / _META).read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError):
        return None


def _segment_seqs(directory: Path) -> list[int]:
    try:
        names = [entry.name for entry in directory.iterdir()]
    except FileNotFoundError:
        return []
    return sorted(int(name) for name in names if name.isdigit())


def newest_segment(store_path: Path, *, store_id: str) -> tuple[int, int] | None:
    """(seq, rows) of the newest segment of this store, from its meta file alone; None if none."""
    directory = segments_directory(store_path)
    for seq in reversed(_segment_seqs(directory)):
        try:
            meta = json.loads((directory / f"{seq:016d}" / _META).read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        if meta.get("format") == FORMAT_VERSION and meta["store_id"] == store_id:
            return meta["seq"], meta["rows"]
    return None


def open_segment(store_path: Path, *, store_id: str, dimension: int, oldest_seq: int, latest_seq: int
                 ) -> SegmentArrays | None:
    """The newest segment of this store from which the change log can still be replayed, or None.

    A segment of another store (same file name, recreated), of another dimension, newer than the
    log (the store went back) or older than the log's trim point is ignored.
    """
    directory = segments_directory(store_path)
    for seq in reversed(_segment_seqs(directory)):
        if seq > latest_seq or (seq < latest_seq and seq < oldest_seq - 1):
            continue
        try:
            return _load(directory / f"{seq:016d}", store_id=store_id, dimension=dimension)
        except FileNotFoundError:  # removed by a compaction between listing and opening
            continue
    return None


def _load(path: Path, *, store_id: str, dimension: int) -> SegmentArrays | None:
    meta = json.loads((path / _META).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_VERSION or meta["store_id"] != store_id or meta["dimension"] != dimension:
        return None
    # Plain ndarray views of the maps: indexing a np.memmap subclass costs more per call.
    loaded = {name: np.asarray(np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False))
              for name in ARRAYS}
    tables = {
        prefix: StringTable(loaded.pop(f"{prefix}_hashes"), loaded.pop(f"{prefix}_offsets"),
                            loaded.pop(f"{prefix}_bytes"))
        for prefix in ("term", "principal")
    }
    return SegmentArrays(
        seq=meta["seq"], store_id=store_id, dimension=dimension, live_length=meta["live_length"],
        languages=meta["languages"], sources=meta["sources"], places=meta["places"], terms=tables["term"],
        principals=tables["principal"], **loaded,
    )


@contextlib.contextmanager
def compaction_lock(store_path: Path) -> Iterator[bool]:
    """Yields whether this process may write a segment now (one writer at a time, never waiting).

    Temporary directories seen while holding the lock belong to writers that died: removed.
    """
    directory = segments_directory(store_path)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / _LOCK, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            for entry in directory.iterdir():
                if entry.name.startswith(_TEMPORARY_PREFIX):
                    shutil.rmtree(entry, ignore_errors=True)
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
