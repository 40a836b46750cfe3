"""The index backend seam: what every index (embedded, Weaviate) must do.

Semantics follow Weaviate so backends are drop-in replacements: BM25 with k1=1.2 and b=0.75 over
the analyzed terms (``kbsearch.text.analysis`` does the analysis for every backend), cosine
similarity on normalised vectors, and every filter (permissions included) applied inside each leg
before ranking, never after, so a page is never shrunk by filtering.

Hybrid search is implemented once here from the two legs (``kbsearch.index.fusion``), so all
backends fuse the same way; a backend may override it with a native equivalent.

Rebuilds (a new model or analyzer) never touch the index being served: a backend writes a new
*generation* beside it (``generation_build``), brings it up to date with the writes made
meanwhile, and switches every process to it atomically (``BaseIndexBuild.switch``). ``rebuild``
runs those steps; the embedded backend keeps generations as SQLite files, Weaviate will keep them
as collections behind an alias.
"""
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from kbsearch.index.fusion import relative_score_fusion

BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True)
class IndexChunk:
    """One chunk as the index stores it."""

    chunk_id: int
    document_id: int
    source_key: str
    language: str
    terms: Sequence[str]
    vector: np.ndarray
    principals: frozenset[str]
    updated_at: datetime | None = None


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions applied inside every leg. ``principals`` is required: empty means nothing matches."""

    principals: frozenset[str]
    source_keys: frozenset[str] | None = None
    languages: frozenset[str] | None = None
    updated_after: datetime | None = None


@dataclass(frozen=True)
class ChunkHit:
    chunk_id: int
    document_id: int
    score: float
    language: str = "und"
    vector_score: float | None = None
    bm25_score: float | None = None
    explain: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class IndexedDocument:
    """What the index holds for one document: its chunks and its access list."""

    chunk_ids: frozenset[int]
    principals: frozenset[str]


@dataclass(frozen=True)
class IndexGeneration:
    """One generation of an index: its number (growing with each rebuild) and its size."""

    number: int
    chunk_count: int


# Given document ids, what the source of truth holds for them now, as index entries: every chunk
# of each document that still exists (a document missing from the result is removed).
ChunksForDocuments = Callable[[Sequence[int]], Sequence[IndexChunk]]


class IndexBackendError(Exception):
    """Raised for index failures callers can act on (wrong dimension, corrupt store)."""


class BaseIndexBuild:
    """A new generation being written while the current one keeps serving searches and writes.

    Searches never see it before ``switch``. Writes that reach the current generation after the
    build began are not lost: ``switch`` re-reads those documents through ``chunks_for_documents``
    into the new generation, and a write arriving during or after the switch goes to the new one.
    """

    number: int

    def write(self, chunks: Sequence[IndexChunk]) -> None:
        """Add chunks (with their document's access list) to the new generation."""
        raise NotImplementedError

    def switch(self, *, chunks_for_documents: ChunksForDocuments) -> IndexGeneration:
        """Replay the writes made since the build began, then make the new generation current for
        every process, atomically. The replaced generation is kept for one rollback; older ones go."""
        raise NotImplementedError

    def abort(self) -> None:
        """Discard the new generation (the current one is untouched); a no-op after ``switch``."""
        raise NotImplementedError


class BaseIndexBackend:
    """Base class of index backends."""

    def __init__(self, **options) -> None:
        self.options = options

    def ensure_index(self, *, dimension: int) -> None:
        """Create the index for vectors of ``dimension`` if missing; fail if it holds another size."""
        raise NotImplementedError

    def upsert_chunks(self, chunks: Sequence[IndexChunk]) -> None:
        """Insert or replace chunks (by chunk id) with their document's access list."""
        raise NotImplementedError

    def delete_documents(self, document_ids: Sequence[int]) -> None:
        """Remove every chunk of these documents."""
        raise NotImplementedError

    def update_access(self, document_id: int, principals: frozenset[str]) -> None:
        """Replace a document's access list without re-embedding its chunks."""
        raise NotImplementedError

    def bm25_search(self, *, terms: Sequence[str], filters: SearchFilters, limit: int) -> list[ChunkHit]:
        """Top chunks by BM25 over analyzed terms, best first."""
        raise NotImplementedError

    def vector_search(self, *, vector: np.ndarray, filters: SearchFilters, limit: int) -> list[ChunkHit]:
        """Top chunks by cosine similarity, best first."""
        raise NotImplementedError

    def indexed_documents(self, document_ids: Sequence[int]) -> dict[int, IndexedDocument]:
        """What the index holds for these documents; a document with nothing indexed is absent.

        Used to check the index against the database (``sync_source --full``, repairs), so it must
        read the index's real state, not a cache of what was written.
        """
        raise NotImplementedError

    def document_ids(self) -> set[int]:
        """Ids of every document that has chunks in the index."""
        raise NotImplementedError

    def chunk_count(self) -> int:
        """Number of chunks in the index."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and memory."""

    def current_generation(self) -> int:
        """Number of the generation searches use now."""
        raise NotImplementedError

    def generation_build(self, *, dimension: int) -> BaseIndexBuild:
        """Begin a new, empty generation for vectors of ``dimension`` (one build at a time)."""
        raise NotImplementedError

    def rebuild(
        self,
        *,
        dimension: int,
        batches: Iterable[Sequence[IndexChunk]],
        chunks_for_documents: ChunksForDocuments,
    ) -> IndexGeneration:
        """Write ``batches`` into a new generation and switch to it; on any failure keep the old one.

        ``batches`` is consumed only once the build has begun, so a lazy iterable reads its source
        after the point from which the backend tracks concurrent writes: a change it misses is one
        the backend replays through ``chunks_for_documents``.
        """
        build = self.generation_build(dimension=dimension)
        try:
            for batch in batches:
                build.write(batch)
            return build.switch(chunks_for_documents=chunks_for_documents)
        except BaseException:
            build.abort()
            raise

    def hybrid_search(
        self,
        *,
        terms: Sequence[str],
        vector: np.ndarray,
        filters: SearchFilters,
        alpha: float,
        limit: int,
        lexical_languages: frozenset[str] | None = None,
    ) -> list[ChunkHit]:
        """Relative-score fusion of the BM25 and vector legs; ``alpha`` weights the vector leg.

        ``lexical_languages``: the languages the query can match lexically; the BM25 leg is scaled
        against its matches in those languages (see ``kbsearch.index.fusion`` for why). ``None``
        gives plain min-max scaling over every match.
        """
        vector_hits = self.vector_search(vector=vector, filters=filters, limit=limit) if alpha > 0 else []
        bm25_hits: list[ChunkHit] = []
        if alpha < 1 and terms:
            bm25_hits = self.bm25_search(terms=terms, filters=filters, limit=limit)
        return relative_score_fusion(
            vector_hits=vector_hits, bm25_hits=bm25_hits, alpha=alpha, bm25_scale_languages=lexical_languages
        )[:limit]
