"""Durable storage of the embedded index: one SQLite file in WAL mode.

SQLite holds every chunk's analyzed terms, vector and filterable fields, each document's access
list, and an append-only change log. Search never runs SQL: each process keeps an in-memory copy
(``memory.py``) and replays the change log to catch up with writes made by other processes (the
sync worker writes, the web server reads). The log is trimmed; a reader that fell behind the trim
point reloads from the tables.
"""
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kbsearch.index.base import IndexBackendError, IndexChunk, IndexedDocument

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL,
    source_key TEXT NOT NULL,
    language TEXT NOT NULL,
    updated_at REAL,
    terms TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (document_id);
CREATE TABLE IF NOT EXISTS access (
    document_id INTEGER NOT NULL,
    principal TEXT NOT NULL,
    PRIMARY KEY (document_id, principal)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    document_id INTEGER NOT NULL,
    chunk_id INTEGER
);
"""
# Readers more than this many changes behind reload from the tables instead of replaying.
CHANGE_LOG_KEEP = 200_000


@dataclass(frozen=True)
class StoredChunk:
    chunk_id: int
    document_id: int
    source_key: str
    language: str
    updated_at: float | None
    terms: str
    vector: np.ndarray


@dataclass(frozen=True)
class Change:
    seq: int
    kind: str  # "upsert" (chunk_id set), "delete" (whole document) or "access"
    document_id: int
    chunk_id: int | None


class IndexStore:
    """Transactions over the SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, statements: Iterable[tuple[str, Sequence]]) -> None:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    conn.execute(sql, params)
                conn.execute(
                    "DELETE FROM changes WHERE seq <= (SELECT MAX(seq) FROM changes) - ?", (CHANGE_LOG_KEEP,)
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def dimension(self) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()
        return int(row[0]) if row else None

    def set_dimension(self, dimension: int) -> None:
        current = self.dimension()
        if current is not None and current != dimension:
            raise IndexBackendError(
                f"index at {self.path} holds {current}-dimensional vectors, not {dimension}; "
                "rebuild it (manage.py reindex) after changing the embedding model"
            )
        if current is None:
            self._write([("INSERT INTO meta (key, value) VALUES ('dimension', ?)", (str(dimension),))])

    def upsert(self, chunks: Sequence[IndexChunk]) -> None:
        statements: list[tuple[str, Sequence]] = []
        access_written: set[int] = set()
        for chunk in chunks:
            vector = np.ascontiguousarray(chunk.vector, dtype=np.float32)
            updated = chunk.updated_at.timestamp() if chunk.updated_at else None
            statements.append(
                (
                    "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        chunk.chunk_id,
                        chunk.document_id,
                        chunk.source_key,
                        chunk.language,
                        updated,
                        " ".join(chunk.terms),
                        vector.tobytes(),
                    ),
                )
            )
            statements.append(
                ("INSERT INTO changes (kind, document_id, chunk_id) VALUES ('upsert', ?, ?)",
                 (chunk.document_id, chunk.chunk_id))
            )
            if chunk.document_id not in access_written:
                access_written.add(chunk.document_id)
                statements.extend(self._access_statements(chunk.document_id, chunk.principals))
        self._write(statements)

    def _access_statements(self, document_id: int, principals: frozenset[str]) -> list[tuple[str, Sequence]]:
        statements: list[tuple[str, Sequence]] = [("DELETE FROM access WHERE document_id = ?", (document_id,))]
        statements.extend(
            ("INSERT INTO access (document_id, principal) VALUES (?, ?)", (document_id, principal))
            for principal in sorted(principals)
        )
        statements.append(
            ("INSERT INTO changes (kind, document_id) VALUES ('access', ?)", (document_id,))
        )
        return statements

    def set_access(self, document_id: int, principals: frozenset[str]) -> None:
        self._write(self._access_statements(document_id, principals))

    def delete_documents(self, document_ids: Sequence[int]) -> None:
        statements: list[tuple[str, Sequence]] = []
        for document_id in document_ids:
            statements.append(("DELETE FROM chunks WHERE document_id = ?", (document_id,)))
            statements.append(("DELETE FROM access WHERE document_id = ?", (document_id,)))
            statements.append(
                ("INSERT INTO changes (kind, document_id) VALUES ('delete', ?)", (document_id,))
            )
        self._write(statements)

    # --- reads ---------------------------------------------------------------------------------

    def latest_seq(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]

    def oldest_seq(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COALESCE(MIN(seq), 0) FROM changes").fetchone()[0]

    def _chunk_from_row(self, row: tuple, dimension: int) -> StoredChunk:
        vector = np.frombuffer(row[6], dtype=np.float32)
        if vector.shape[0] != dimension:
            raise IndexBackendError(f"chunk {row[0]} has a {vector.shape[0]}-d vector, index is {dimension}-d")
        return StoredChunk(row[0], row[1], row[2], row[3], row[4], row[5], vector)

    def snapshot(self, dimension: int) -> tuple[int, Iterator[StoredChunk], dict[int, set[str]]]:
        """Everything at one point in time: (last change seq, chunks, access lists)."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
                rows = conn.execute("SELECT * FROM chunks ORDER BY chunk_id").fetchall()
                access: dict[int, set[str]] = {}
                for document_id, principal in conn.execute("SELECT document_id, principal FROM access"):
                    access.setdefault(document_id, set()).add(principal)
            finally:
                conn.execute("COMMIT")
        return seq, (self._chunk_from_row(row, dimension) for row in rows), access

    def changes_since(self, seq: int) -> list[Change]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, kind, document_id, chunk_id FROM changes WHERE seq > ? ORDER BY seq", (seq,)
            ).fetchall()
        return [Change(*row) for row in rows]

    def load_chunks(self, chunk_ids: Sequence[int], dimension: int) -> dict[int, StoredChunk]:
        found: dict[int, StoredChunk] = {}
        with self._lock:
            for start in range(0, len(chunk_ids), 500):
                batch = list(chunk_ids[start : start + 500])
                marks = ",".join("?" * len(batch))
                for row in self._conn.execute(f"SELECT * FROM chunks WHERE chunk_id IN ({marks})", batch):
                    found[row[0]] = self._chunk_from_row(row, dimension)
        return found

    def load_access(self, document_ids: Sequence[int]) -> dict[int, set[str]]:
        result: dict[int, set[str]] = {document_id: set() for document_id in document_ids}
        with self._lock:
            for document_id in document_ids:
                for (principal,) in self._conn.execute(
                    "SELECT principal FROM access WHERE document_id = ?", (document_id,)
                ):
                    result[document_id].add(principal)
        return result

    def indexed_documents(self, document_ids: Sequence[int]) -> dict[int, IndexedDocument]:
        chunks: dict[int, set[int]] = {}
        access: dict[int, set[str]] = {}
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")  # one consistent read of both tables
            try:
                for start in range(0, len(document_ids), 500):
                    batch = list(document_ids[start : start + 500])
                    marks = ",".join("?" * len(batch))
                    for chunk_id, document_id in conn.execute(
                        f"SELECT chunk_id, document_id FROM chunks WHERE document_id IN ({marks})", batch
                    ):
                        chunks.setdefault(document_id, set()).add(chunk_id)
                    for document_id, principal in conn.execute(
                        f"SELECT document_id, principal FROM access WHERE document_id IN ({marks})", batch
                    ):
                        access.setdefault(document_id, set()).add(principal)
            finally:
                conn.execute("COMMIT")
        return {
            document_id: IndexedDocument(frozenset(chunks.get(document_id, ())), frozenset(access.get(document_id, ())))
            for document_id in chunks.keys() | access.keys()
        }

    def document_ids(self) -> set[int]:
        with self._lock:
            return {row[0] for row in self._conn.execute("SELECT DISTINCT document_id FROM chunks")}

    def chunk_count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
