"""Durable storage of one generation of the embedded index: one SQLite file in WAL mode.

SQLite holds every chunk's analyzed terms, vector and filterable fields, each document's access
list and place (one row per document, like the access list: moving a document rewrites one row,
not its chunks), and an append-only change log. Search never runs SQL: each process keeps an in-memory copy
(``memory.py``) and replays the change log to catch up with writes made by other processes (the
sync worker writes, the web server reads). The log is trimmed; a reader that fell behind the trim
point reloads from the tables.

The change log also tells a rebuild which documents changed in the live generation while it wrote
the next one (``documents_changed_since``), and ``write_locked`` holds writers off while it switches;
a writer that was waiting then finds the pointer moved and retries on the new generation
(``GenerationSwitched``), so no write lands in a generation nobody reads any more.

The ``meta`` table records what built the generation (``IndexMetadata``: model id and version,
dimension, analyzer version, creation time). A file written before metadata existed holds only its
dimension: ``metadata()`` is then ``None`` until ``EmbeddedIndexBackend.ensure_index`` adopts the
caller's once. ``serving_since`` is the change seq at which the generation last began to serve, so
a switch back to an older generation knows which documents it missed.
"""
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kbsearch.index.base import IndexBackendError, IndexChunk, IndexedDocument, IndexMetadata

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
CREATE TABLE IF NOT EXISTS places (document_id INTEGER PRIMARY KEY, place TEXT NOT NULL);
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
    kind: str  # "upsert" (chunk_id set), "delete" (whole document), "access" or "place"
    document_id: int
    chunk_id: int | None


class GenerationSwitched(Exception):
    """A write found, once it held the write lock, that its generation is no longer current."""


class GenerationMissing(Exception):
    """The generation's file is gone (a later rebuild removed it)."""


class IndexStore:
    """Transactions over one generation's SQLite file; safe to share between threads of one process.

    ``create``: make the file if missing (a new generation); otherwise a missing file raises
    ``GenerationMissing`` rather than silently creating an empty index. ``is_current``: asked inside
    every write transaction, once the write lock is held; false raises ``GenerationSwitched``.
    """

    def __init__(self, path: Path, *, create: bool = True, is_current: Callable[[], bool] | None = None) -> None:
        self.path = Path(path)
        self._is_current = is_current
        self._lock = threading.RLock()
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target, uri = str(self.path), False
        else:
            target, uri = self.path.absolute().as_uri() + "?mode=rw", True
        try:
            self._conn = sqlite3.connect(
                target, timeout=60, check_same_thread=False, isolation_level=None, uri=uri
            )
        except sqlite3.OperationalError as error:
            if not create and not self.path.exists():
                raise GenerationMissing(str(self.path)) from error
            raise
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL, like PostgreSQL's default synchronous_commit=on: a commit is on disk before it returns,
        # so the index never loses a write the database already counts (NORMAL in WAL mode can drop the
        # last commits on power loss). The cost is one fsync of the WAL per write transaction; writes
        # are batched per document or per rebuild batch, so that is one fsync per document synced.
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._conn.executescript(SCHEMA)
        self._store_id: str | None = None
        # Recorded metadata never changes (``set_metadata`` refuses to), so once read it is kept:
        # searches ask for it twice each (``serving_metadata``) and need not query SQLite for it.
        self._metadata: IndexMetadata | None = None

    def store_id(self) -> str:
        """A random id given to this file when first opened: a segment (``segments.py``) written for
        another file of the same name (a generation number reused after an aborted build) is
        recognised as foreign and ignored."""
        if self._store_id is None:
            with self._lock:
                row = self._conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
                if row is None:
                    # Outside _write: naming the file is not a change of the index and may happen
                    # on a generation that is no longer current.
                    self._conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)",
                                       (uuid.uuid4().hex,))
                    row = self._conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
            self._store_id = row[0]
        return self._store_id

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def pragma(self, name: str) -> object:
        """The value of a read-only PRAGMA on this connection (durability checks)."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        with self._lock:
            return self._conn.execute(f"PRAGMA {name}").fetchone()[0]

    @contextmanager
    def write_locked(self) -> Iterator[None]:
        """Hold this generation's write lock (every process's writers wait); reads inside see one state."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                self._conn.execute("ROLLBACK")

    def _write(self, statements: Iterable[tuple[str, Sequence]]) -> None:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if self._is_current is not None and not self._is_current():
                    raise GenerationSwitched(str(self.path))
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

    def _meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def metadata(self) -> IndexMetadata | None:
        """What built this generation; None when it was written before metadata was recorded."""
        if self._metadata is not None:
            return self._metadata
        meta = self._meta()
        if "model_id" not in meta:
            return None  # not cached: another process may record it (``ensure_index``)
        self._metadata = IndexMetadata(
            model_id=meta["model_id"], model_version=meta["model_version"],
            dimension=int(meta["dimension"]), analyzer_version=int(meta["analyzer_version"]),
            # Generations written before precision was recorded were all built in float32.
            precision=meta.get("precision", "float32"),
        )
        return self._metadata

    def created_at(self) -> datetime | None:
        value = self._meta().get("created_at")
        return datetime.fromisoformat(value) if value else None

    def serving_since(self) -> int | None:
        value = self._meta().get("serving_since")
        return int(value) if value is not None else None

    def set_metadata(self, metadata: IndexMetadata) -> None:
        """Record what built this generation: a new one, or a legacy one (dimension only) adopting
        it. Refuses to change metadata already recorded."""
        recorded = self.metadata()
        if recorded is not None:
            if recorded != metadata:
                raise IndexBackendError(f"generation {self.path} already records {recorded}")
            return
        self.set_dimension(metadata.dimension)
        values = {
            "model_id": metadata.model_id, "model_version": metadata.model_version,
            "analyzer_version": str(metadata.analyzer_version), "precision": metadata.precision,
        }
        if "created_at" not in self._meta():
            values["created_at"] = datetime.now(UTC).isoformat()
        self._write(("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", item) for item in values.items())

    def mark_serving(self) -> None:
        """Note the seq from which this generation serves (its writes after it are what an older
        generation misses when switched back to). Call under ``write_locked``."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('serving_since', "
                "(SELECT CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM changes))"
            )

    def upsert(self, chunks: Sequence[IndexChunk]) -> None:
        self._write(self._upsert_statements(chunks))

    def _upsert_statements(self, chunks: Sequence[IndexChunk]) -> list[tuple[str, Sequence]]:
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
                statements.extend(self._place_statements(chunk.document_id, chunk.place))
        return statements

    @staticmethod
    def _place_statements(document_id: int, place: str) -> list[tuple[str, Sequence]]:
        # No row for no place: a store written before places existed reads the same way.
        statements: list[tuple[str, Sequence]] = [("DELETE FROM places WHERE document_id = ?", (document_id,))]
        if place:
            statements.append(("INSERT INTO places (document_id, place) VALUES (?, ?)", (document_id, place)))
        statements.append(("INSERT INTO changes (kind, document_id) VALUES ('place', ?)", (document_id,)))
        return statements

    def set_places_many(self, places: Mapping[int, str]) -> None:
        """Move many documents to other places in one transaction (all or none)."""
        self._write(
            statement for document_id in sorted(places)
            for statement in self._place_statements(document_id, places[document_id])
        )

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

    def set_access_many(self, access: Mapping[int, frozenset[str]]) -> None:
        """Replace many documents' access lists in one transaction (all or none)."""
        self._write(
            statement for document_id in sorted(access)
            for statement in self._access_statements(document_id, frozenset(access[document_id]))
        )

    def delete_documents(self, document_ids: Sequence[int]) -> None:
        self._write(self._delete_statements(document_ids))

    def replace_documents(self, document_ids: Sequence[int], chunks: Sequence[IndexChunk]) -> None:
        """In one transaction, drop everything of these documents and store ``chunks`` (theirs) instead."""
        statements = self._delete_statements(document_ids)
        statements.extend(self._upsert_statements(chunks))
        self._write(statements)

    def _delete_statements(self, document_ids: Sequence[int]) -> list[tuple[str, Sequence]]:
        statements: list[tuple[str, Sequence]] = []
        for document_id in document_ids:
            statements.append(("DELETE FROM chunks WHERE document_id = ?", (document_id,)))
            statements.append(("DELETE FROM access WHERE document_id = ?", (document_id,)))
            statements.append(("DELETE FROM places WHERE document_id = ?", (document_id,)))
            statements.append(
                ("INSERT INTO changes (kind, document_id) VALUES ('delete', ?)", (document_id,))
            )
        return statements

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

    def snapshot(self, dimension: int) -> tuple[int, Iterator[StoredChunk], dict[int, set[str]], dict[int, str]]:
        """Everything at one point in time: (last change seq, chunks, access lists, places)."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
                rows = conn.execute("SELECT * FROM chunks ORDER BY chunk_id").fetchall()
                access: dict[int, set[str]] = {}
                for document_id, principal in conn.execute("SELECT document_id, principal FROM access"):
                    access.setdefault(document_id, set()).add(principal)
                places = dict(conn.execute("SELECT document_id, place FROM places").fetchall())
            finally:
                conn.execute("COMMIT")
        return seq, (self._chunk_from_row(row, dimension) for row in rows), access, places

    def documents_changed_since(self, seq: int) -> tuple[set[int], int]:
        """Ids of documents written after change ``seq``, and the latest seq read (one consistent read).

        Fails if the log was trimmed past ``seq``: the changes are no longer all known.
        """
        with self._lock:
            conn = self._conn
            owns_transaction = not conn.in_transaction
            if owns_transaction:
                conn.execute("BEGIN")
            try:
                oldest, latest = conn.execute("SELECT MIN(seq), COALESCE(MAX(seq), 0) FROM changes").fetchone()
                if oldest is not None and oldest > seq + 1 and seq < latest:
                    raise IndexBackendError(
                        f"more than {CHANGE_LOG_KEEP} index writes since change {seq} of {self.path}: "
                        "the writes made during the rebuild are no longer all known; run it again"
                    )
                changed = {row[0] for row in conn.execute("SELECT DISTINCT document_id FROM changes WHERE seq > ?", (seq,))}
            finally:
                if owns_transaction:
                    conn.execute("COMMIT")
        return changed, latest

    def changes_since(self, seq: int, *, limit: int | None = None) -> list[Change]:
        """Changes after ``seq`` in order; at most ``limit`` of them (all when None)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, kind, document_id, chunk_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, -1 if limit is None else limit),
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

    def load_places(self, document_ids: Sequence[int]) -> dict[int, str]:
        """The place of each of these documents (``""`` for none)."""
        found = dict.fromkeys(document_ids, "")
        with self._lock:
            for start in range(0, len(document_ids), 500):
                batch = list(document_ids[start : start + 500])
                marks = ",".join("?" * len(batch))
                found.update(self._conn.execute(
                    f"SELECT document_id, place FROM places WHERE document_id IN ({marks})", batch
                ).fetchall())
        return found

    def indexed_documents(self, document_ids: Sequence[int]) -> dict[int, IndexedDocument]:
        chunks: dict[int, set[int]] = {}
        access: dict[int, set[str]] = {}
        places: dict[int, str] = {}
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
                    places.update(conn.execute(
                        f"SELECT document_id, place FROM places WHERE document_id IN ({marks})", batch
                    ).fetchall())
            finally:
                conn.execute("COMMIT")
        return {
            document_id: IndexedDocument(
                frozenset(chunks.get(document_id, ())), frozenset(access.get(document_id, ())),
                frozenset({places.get(document_id, "")}),
            )
            for document_id in chunks.keys() | access.keys()
        }

    def document_ids_after(self, after: int | None, limit: int) -> list[int]:
        """Up to ``limit`` document ids with chunks, ascending, greater than ``after`` (a keyset page
        over the ``chunks_by_document`` index: each page costs its own size, not the table's)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT document_id FROM chunks WHERE document_id > ? ORDER BY document_id LIMIT ?",
                (-(2**63) if after is None else after, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def chunk_count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
