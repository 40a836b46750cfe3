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

Contract v2 (issue 9; ``tests/index/contract`` is the suite every backend passes):
- Every generation records ``IndexMetadata`` (embedding model id and version, dimension, analyzer
  version, precision of the vectors). ``ensure_index(metadata=...)`` creates the first generation
  or checks the serving one against it, and every write checks it too: a mismatch raises
  ``IndexMismatch`` instead of mixing vectors of two models (or precisions) or terms of two analyzers.
- Searches are ``SearchQuery`` objects (terms, vector, filters, alpha, limit, lexical languages)
  answered by ``search``; ``capabilities`` says what a backend does natively.
- Writes return ``BatchResult``s that name each failed item; ``update_access_many`` replaces many
  documents' access lists in one call (Weaviate has no update-by-filter).
- Lifecycle: ``generations`` lists them, ``generation_create`` starts one (for a new model, with its
  own metadata; the build either switches to it or ``keep``s it for a later switch),
  ``generation_switch`` makes one serve (atomically, every process), ``generation_drop``
  removes one that does not serve.
- Principals match exactly: ``group:hr`` never matches ``user:hr`` (a backend that tokenizes must
  index principals as whole values).
- Places (where a document lives: a Confluence space, a SharePoint library, a share's top folder)
  are opaque exact values like principals, one per document; ``SearchFilters.places`` keeps the
  documents in any of the given places (OR), ANDed with the other filters, inside each leg.
  ``update_places_many`` moves documents between places without re-embedding.
"""
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    place: str = ""  # the document's place; "" for none (its chunks all carry the same one)


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions applied inside every leg. ``principals`` is required: empty means nothing matches.

    Each other filter is None (no restriction) or a set of values, any of which admits a chunk; the
    filters are ANDed. ``places``: a document without a place is in none, and ``""`` admits nothing.
    """

    principals: frozenset[str]
    source_keys: frozenset[str] | None = None
    languages: frozenset[str] | None = None
    updated_after: datetime | None = None
    places: frozenset[str] | None = None


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
    """What the index holds for one document: its chunks, its access list and its place.

    ``places``: every place its entries carry (``""`` for none); one unless the index is out of step.
    """

    chunk_ids: frozenset[int]
    principals: frozenset[str]
    places: frozenset[str] = frozenset({""})


@dataclass(frozen=True)
class IndexGeneration:
    """One generation of an index: its number (growing with each rebuild) and its size."""

    number: int
    chunk_count: int


@dataclass(frozen=True)
class IndexMetadata:
    """What built a generation: vectors of one model at one precision, terms of one analyzer.

    ``model_version`` identifies the weights (a hash or a fine-tuned version label), so two
    generations of the same model id with different weights are told apart. ``precision`` is the
    arithmetic the vectors were computed in (``float32`` or ``bfloat16``): queries are encoded in
    the serving generation's precision, so query and passage vectors always come from the same
    one. A generation recorded before precision was recorded was built in float32.
    """

    model_id: str
    model_version: str
    dimension: int
    analyzer_version: int
    precision: str = "float32"

    def mismatches(self, other: "IndexMetadata") -> list[str]:
        """The fields that differ, as readable phrases (empty when compatible)."""
        return [
            f"{name} {getattr(self, name)!r} != {getattr(other, name)!r}"
            for name in ("model_id", "model_version", "dimension", "analyzer_version", "precision")
            if getattr(self, name) != getattr(other, name)
        ]


@dataclass(frozen=True)
class GenerationInfo:
    """A generation as ``generations()`` lists it."""

    number: int
    metadata: IndexMetadata | None  # None for a generation written before metadata was recorded
    chunk_count: int
    serving: bool
    created_at: datetime | None = None


@dataclass(frozen=True)
class SearchQuery:
    """One search: ``alpha`` 0 is BM25 only, 1 vector only, between them relative-score fusion.

    ``lexical_languages``: the languages the query can match lexically; the BM25 leg is scaled
    against its matches in those languages (``kbsearch.index.fusion``). ``None`` scales over all.

    ``expansions``: extra BM25 terms with their weights, a query term weighing 1 (admin synonyms,
    ``kbsearch.text.synonyms``). Only the BM25 leg reads them; the vector leg gets the query as
    written. A term of ``terms`` listed here keeps weight 1.
    """

    filters: "SearchFilters"
    limit: int
    terms: Sequence[str] = ()
    vector: np.ndarray | None = None
    alpha: float = 0.5
    lexical_languages: frozenset[str] | None = None
    expansions: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Capabilities:
    """What a backend does itself; callers may rely on the contract either way."""

    native_hybrid: bool = False  # fuses both legs in one call with the same ranking as ``fusion``
    generations: bool = True  # keeps several generations and switches between them
    shared_memory: bool = False  # processes on one host share the loaded index


@dataclass(frozen=True)
class ItemFailure:
    """One item a write could not apply; ``retryable`` when trying again unchanged may succeed."""

    chunk_id: int | None
    document_id: int | None
    reason: str
    retryable: bool = True


@dataclass(frozen=True)
class BatchResult:
    written: int
    failures: tuple[ItemFailure, ...] = ()

    def raise_for_failures(self) -> None:
        """Raise ``IndexBackendError`` naming the first failures, when there are any."""
        if self.failures:
            shown = "; ".join(f"{f.document_id}/{f.chunk_id}: {f.reason}" for f in self.failures[:5])
            raise IndexBackendError(f"{len(self.failures)} of {self.written + len(self.failures)} items failed: {shown}")


# Given document ids, what the source of truth holds for them now, as index entries: every chunk
# of each document that still exists (a document missing from the result is removed).
ChunksForDocuments = Callable[[Sequence[int]], Sequence[IndexChunk]]


class IndexBackendError(Exception):
    """Raised for index failures callers can act on (wrong dimension, corrupt store)."""


class IndexMismatch(IndexBackendError):
    """The serving generation was built by another model or analyzer than the caller's."""


class BaseIndexBuild:
    """A new generation being written while the current one keeps serving searches and writes.

    Searches never see it before ``switch``. Writes that reach the current generation after the
    build began are not lost: ``switch`` re-reads those documents through ``chunks_for_documents``
    into the new generation, and a write arriving during or after the switch goes to the new one.
    A build for another model (``metadata`` differs from the serving generation's) gets its
    vectors from ``chunks_for_documents``, which must embed with that model.
    """

    number: int
    metadata: IndexMetadata

    def write(self, chunks: Sequence[IndexChunk]) -> BatchResult:
        """Add chunks (with their document's access list) to the new generation."""
        raise NotImplementedError

    def switch(self, *, chunks_for_documents: ChunksForDocuments) -> IndexGeneration:
        """Replay the writes made since the build began, then make the new generation current for
        every process, atomically. The replaced generation is kept for a rollback (how many older
        ones stay until dropped is the backend's policy)."""
        raise NotImplementedError

    def keep(self, *, chunks_for_documents: ChunksForDocuments) -> IndexGeneration:
        """Finish the build without serving it: the generation is kept (complete, listed by
        ``generations``) and a later ``generation_switch`` makes it serve, catching it up first with
        the writes made since (``chunks_for_documents`` embedding with this build's model).

        For re-embedding in the background and switching when the operator decides. The writes
        logged so far are replayed here already, so that switch has little left to do."""
        raise NotImplementedError

    def abort(self) -> None:
        """Discard the new generation (the current one is untouched); a no-op after ``switch``."""
        raise NotImplementedError


class BaseIndexBackend:
    """Base class of index backends."""

    capabilities = Capabilities()

    def __init__(self, **options) -> None:
        self.options = options

    # --- metadata -------------------------------------------------------------------------------

    def ensure_index(self, *, metadata: IndexMetadata) -> None:
        """Create the first generation with ``metadata`` if there is none; else raise
        ``IndexMismatch`` when the serving generation was built with other metadata.

        It also declares ``metadata`` as what this backend object's writers embed with: every
        later ``upsert_chunks`` checks the serving generation against it (``IndexMismatch`` after
        another process switched to another model's generation) and raises ``IndexBackendError``
        when nothing was declared. Deletes and access updates carry no vectors or terms and are
        not checked."""
        raise NotImplementedError

    def serving_metadata(self) -> IndexMetadata | None:
        """The metadata of the generation searches use now (None: no index yet)."""
        raise NotImplementedError

    # --- writes (the serving generation, and a generation being built) -------------------------

    def upsert_chunks(self, chunks: Sequence[IndexChunk]) -> BatchResult:
        """Insert or replace chunks (by chunk id) with their document's access list.

        A chunk the backend refuses (a vector of the wrong size, NaN) is an ``ItemFailure`` and
        the others are written; a metadata mismatch raises for the whole batch."""
        raise NotImplementedError

    def delete_documents(self, document_ids: Sequence[int]) -> None:
        """Remove every chunk of these documents (any number: the backend loops past its limits)."""
        raise NotImplementedError

    def update_access_many(self, access: Mapping[int, frozenset[str]]) -> BatchResult:
        """Replace the access lists of many documents (document id -> principals), no re-embedding."""
        raise NotImplementedError

    def update_access(self, document_id: int, principals: frozenset[str]) -> None:
        """Replace one document's access list; raises ``IndexBackendError`` when it failed."""
        self.update_access_many({document_id: principals}).raise_for_failures()

    def update_places_many(self, places: Mapping[int, str]) -> BatchResult:
        """Move many documents to another place (document id -> place, ``""`` for none), no
        re-embedding. A document the index holds no chunks of takes its place with its next upsert."""
        raise NotImplementedError

    # --- search ---------------------------------------------------------------------------------

    def bm25_search(
        self, *, terms: Sequence[str], filters: SearchFilters, limit: int, expansions: Sequence[tuple[str, float]] = ()
    ) -> list[ChunkHit]:
        """Top chunks by BM25 over analyzed terms, best first.

        ``expansions`` (term, weight) add terms whose BM25 contribution is multiplied by their
        weight (``SearchQuery.expansions``); a backend that cannot weight terms exactly says how
        it approximates them."""
        raise NotImplementedError

    def vector_search(self, *, vector: np.ndarray, filters: SearchFilters, limit: int) -> list[ChunkHit]:
        """Top chunks by cosine similarity, best first."""
        raise NotImplementedError

    def search(self, query: SearchQuery) -> list[ChunkHit]:
        """Answer a query: one leg, or relative-score fusion of both legs, best first.

        Fused here from the two legs so every backend ranks alike; a backend whose native hybrid
        gives the same ranking may override it (and says so in ``capabilities``).
        """
        use_vector = query.vector is not None and query.alpha > 0
        use_terms = bool(query.terms) and (query.alpha < 1 or query.vector is None)
        vector_hits = (
            self.vector_search(vector=query.vector, filters=query.filters, limit=query.limit) if use_vector else []
        )
        bm25_hits = self.bm25_search(
            terms=query.terms, filters=query.filters, limit=query.limit, expansions=query.expansions
        ) if use_terms else []
        if not use_vector:
            return bm25_hits
        if not use_terms:
            return vector_hits
        return relative_score_fusion(
            vector_hits=vector_hits, bm25_hits=bm25_hits, alpha=query.alpha,
            bm25_scale_languages=query.lexical_languages,
        )[: query.limit]

    # --- reads ----------------------------------------------------------------------------------

    def indexed_documents(self, document_ids: Sequence[int]) -> dict[int, IndexedDocument]:
        """What the index holds for these documents; a document with nothing indexed is absent.

        Used to check the index against the database (``sync_source --full``, repairs), so it must
        read the index's real state, not a cache of what was written.
        """
        raise NotImplementedError

    def iter_document_ids(self, *, batch_size: int = 1000) -> Iterator[list[int]]:
        """Every document id with chunks in the index, in batches (a cursor, never one huge list)."""
        raise NotImplementedError

    def document_ids(self) -> set[int]:
        """Ids of every document that has chunks in the index (small indexes and tests)."""
        return {document_id for batch in self.iter_document_ids() for document_id in batch}

    def chunk_count(self) -> int:
        """Number of chunks in the serving generation."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and memory."""

    # --- generations ----------------------------------------------------------------------------

    def current_generation(self) -> int:
        """Number of the generation searches use now."""
        raise NotImplementedError

    def generations(self) -> list[GenerationInfo]:
        """Every generation kept, oldest first; exactly one is ``serving`` once an index exists."""
        raise NotImplementedError

    def generation_create(self, *, metadata: IndexMetadata) -> BaseIndexBuild:
        """Begin a new, empty generation built with ``metadata`` (one build at a time)."""
        raise NotImplementedError

    def generation_switch(
        self, number: int, *, chunks_for_documents: ChunksForDocuments | None = None
    ) -> GenerationInfo:
        """Make generation ``number`` (complete, kept) serve, atomically for every process: rollback
        is a switch back to the previous one.

        A kept generation stopped receiving writes when it stopped serving: the documents written
        since are re-read through ``chunks_for_documents`` (embedding with ``number``'s model)
        before the switch. Without it, a switch that would serve a stale generation raises
        ``IndexBackendError`` rather than hide those writes. Switching to the serving one is a no-op.
        """
        raise NotImplementedError

    def generation_drop(self, number: int) -> None:
        """Delete a generation that does not serve; raises ``IndexBackendError`` for the serving one."""
        raise NotImplementedError

    def rebuild(
        self,
        *,
        metadata: IndexMetadata,
        batches: Iterable[Sequence[IndexChunk]],
        chunks_for_documents: ChunksForDocuments,
    ) -> IndexGeneration:
        """Write ``batches`` into a new generation and switch to it; on any failure keep the old one.

        ``batches`` is consumed only once the build has begun, so a lazy iterable reads its source
        after the point from which the backend tracks concurrent writes: a change it misses is one
        the backend replays through ``chunks_for_documents``.
        """
        build = self.generation_create(metadata=metadata)
        try:
            for batch in batches:
                build.write(batch).raise_for_failures()
            return build.switch(chunks_for_documents=chunks_for_documents)
        except BaseException:
            build.abort()
            raise
