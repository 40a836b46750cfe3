"""``WeaviateIndexBackend``: the index contract (``kbsearch.index.base``) on a Weaviate server.

Searches go through the alias (``schema``), so they follow a switch with no extra round trip.
Writes read the schema once (serving generation, its metadata, a running build), refuse a
metadata mismatch (``IndexMismatch``), log the documents for a running build (``generations``),
write to the serving generation by its concrete name, then re-read the alias: if a switch moved
it meanwhile, the write is applied again to the new serving generation (or, for chunks embedded
by another model, refused with ``IndexMismatch`` so the caller re-embeds and retries).

Hybrid search is fused in our code from the two legs (the base class's ``search``), never by
Weaviate's ``hybrid``: with ``lexical_languages`` only our fusion can scale the BM25 leg on
same-language matches; without it, Weaviate's ``relativeScoreFusion`` normalises like
``kbsearch.index.fusion`` (min-max per leg, a leg of equal scores counts fully) but breaks ties
by the raw score of the last leg and then by uuid (ours: vector order, then BM25 order), computes
in float32, and sizes each leg's candidate list by its own hybrid rules rather than ``limit``;
so the rankings agree except on ties and near-ties, which is not "the same ranking". Two gRPC
calls cost a few milliseconds more than one; ``capabilities.native_hybrid`` is False.

Weaviate has no update-by-filter: access and place changes read the chunks of the documents
(properties only), and for the chunks whose principals or place differ re-read them with their
vectors and write them back whole (batch objects replace by uuid). Writing back whole keeps it at
two gRPC calls per page instead of one REST PATCH per chunk; it assumes, as the outbox guarantees,
that one document's writes are not applied concurrently (a concurrent re-ingest could otherwise be
overwritten by the stale copy until the next write or consistency check). Upserts keep the
embedded index's rule that a document has one access list and one place: sibling chunks not in
the batch get the new principals and place.
"""
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from weaviate.classes.query import MetadataQuery, Sort
from weaviate.exceptions import WeaviateBaseError

from kbsearch.index.base import (
    BaseIndexBackend,
    BatchResult,
    Capabilities,
    ChunkHit,
    GenerationInfo,
    IndexBackendError,
    IndexChunk,
    IndexedDocument,
    IndexMetadata,
    IndexMismatch,
    SearchFilters,
)
from kbsearch.index.vectors import split_valid
from kbsearch.index.weaviate import filters as wfilters
from kbsearch.index.weaviate.batching import raise_unless_deleted, write_chunks
from kbsearch.index.weaviate.connection import connect
from kbsearch.index.weaviate.generations import CatalogState, GenerationCatalog, WeaviateIndexBuild
from kbsearch.index.weaviate.schema import (
    BUILDING,
    PLACE,
    READY,
    RETURNED_PROPERTIES,
    STORED_PROPERTIES,
    TERMS,
    VECTOR_NAME,
)

DEFAULT_DELETE_LIMIT = 10_000  # Weaviate's QUERY_MAXIMUM_RESULTS default, the batch-delete cap
READ_PAGE = 1000
DOCUMENTS_PER_READ = 200
_ALIAS_MOVES = 3  # a write chasing more switches than this in a row gives up
_WEIGHT_STEPS = 10  # resolution of expansion weights in a bm25 query string (bm25_query_text)


class WeaviateIndexBackend(BaseIndexBackend):
    """Chunks in one Weaviate collection per generation, behind an alias named ``collection``."""

    capabilities = Capabilities(native_hybrid=False, generations=True, shared_memory=True)

    def __init__(
        self, *, url: str = "", api_key: str = "", collection: str = "KbsearchChunk", grpc_url: str = "",
        ca_file: str = "", delete_limit: int = DEFAULT_DELETE_LIMIT, page_size: int = 200,
        client=None, sleep: Callable[[float], None] = time.sleep, **options,
    ) -> None:
        super().__init__(url=url, collection=collection, grpc_url=grpc_url, **options)
        self._connect_options = {"url": url, "api_key": api_key, "grpc_url": grpc_url, "ca_file": ca_file}
        self._client = client
        self.alias = collection
        self.delete_limit = delete_limit
        self.page_size = page_size
        self.sleep = sleep
        self._expected: IndexMetadata | None = None
        self._catalog: GenerationCatalog | None = None
        self._properties_checked = False

    @property
    def client(self):
        if self._client is None:  # connect lazily: settings are read at import, the server may be later
            self._client = connect(**self._connect_options)
        return self._client

    @property
    def catalog(self) -> GenerationCatalog:
        if self._catalog is None:
            self._catalog = GenerationCatalog(self.client, self.alias)
        return self._catalog

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._catalog = None

    # --- metadata -------------------------------------------------------------------------------

    def ensure_index(self, *, metadata: IndexMetadata) -> None:
        state = self.catalog.read()
        if state.serving is None:
            number = max(state.records, default=0) + 1
            self.catalog.create(number=number, metadata=metadata, state=READY)
            self.catalog.point_alias(number, exists=False)
        else:
            self._check(state.serving_record.metadata, metadata)
            if not self._properties_checked:
                # Generations created before a property existed (``place``) get it before any write.
                for number in sorted(state.records):
                    self.catalog.add_missing_properties(number)
                self._properties_checked = True
        self._expected = metadata

    def serving_metadata(self) -> IndexMetadata | None:
        record = self.catalog.read().serving_record
        return record.metadata if record else None

    def _check(self, serving: IndexMetadata, expected: IndexMetadata | None) -> None:
        if expected is not None and (differences := serving.mismatches(expected)):
            raise IndexMismatch(
                f"the serving Weaviate generation was built with other settings ({'; '.join(differences)}); "
                "switch generations or re-embed"
            )

    # --- writes ---------------------------------------------------------------------------------

    def _write(self, document_ids: Sequence[int], apply: Callable[[object, IndexMetadata], BatchResult]) -> BatchResult:
        """Run ``apply(collection, serving metadata)`` on the serving generation, following switches."""
        state = self.catalog.read()
        for _ in range(_ALIAS_MOVES):
            record = state.serving_record
            if record is None:
                raise IndexBackendError(f"no Weaviate index {self.alias} yet: ensure_index creates it")
            self._check(record.metadata, self._expected)
            # A generation being built, and every kept one (a rollback target), must learn of the
            # write: the build replays it before its switch, a rollback before it serves again.
            for number in sorted(state.records):
                if number != state.serving:
                    self.catalog.log_documents(number, document_ids)
            result = apply(self.catalog.collection(record.number), record.metadata)
            moved = self.catalog.read()
            if moved.serving == state.serving:
                return result
            state = moved  # a switch happened during the write: apply it to the new generation too
        raise IndexBackendError(f"Weaviate alias {self.alias} kept moving during a write")

    def upsert_chunks(self, chunks: Sequence[IndexChunk]) -> BatchResult:
        if not chunks:
            return BatchResult(written=0)

        def apply(collection, metadata: IndexMetadata) -> BatchResult:
            accepted, refused = split_valid(chunks, metadata.dimension)  # never sent
            result = write_chunks(collection, accepted, page_size=self.page_size, sleep=self.sleep)
            written = [c for c in accepted if c.chunk_id not in {failure.chunk_id for failure in result.failures}]
            siblings = self._rewrite(
                collection, access={c.document_id: c.principals for c in written},
                places={c.document_id: c.place for c in written}, skip={c.chunk_id for c in accepted},
            )
            return BatchResult(written=result.written, failures=tuple(refused) + result.failures + siblings.failures)

        return self._write(sorted({chunk.document_id for chunk in chunks}), apply)

    def delete_documents(self, document_ids: Sequence[int]) -> None:
        ids = sorted(set(document_ids))
        if ids:
            self._write(ids, lambda collection, _: self._delete_documents(collection, ids))

    def _delete_documents(self, collection, document_ids: Sequence[int]) -> BatchResult:
        """Delete past the server's per-call cap: ids in slices, each slice repeated until empty."""
        for ids in wfilters.slices(document_ids, self.delete_limit):
            self._delete_where(collection, wfilters.documents_filter(ids))
        return BatchResult(written=0)

    def _delete_where(self, collection, where) -> None:
        while True:
            result = collection.data.delete_many(where=where)
            raise_unless_deleted(result, "delete")
            # A call deletes at most the server's QUERY_MAXIMUM_RESULTS; a full call means more may remain.
            if result.matches < self.delete_limit:
                return

    def delete_stale_chunks(self, collection, document_ids: Sequence[int], *, keep: set[int]) -> None:
        """Delete the chunks of ``document_ids`` that are not in ``keep`` (a document's replacement)."""
        stale = [
            int(obj.properties["chunk_id"])
            for obj in self._read_chunks(collection, document_ids, properties=["chunk_id"])
            if int(obj.properties["chunk_id"]) not in keep
        ]
        for ids in wfilters.slices(stale, self.delete_limit):
            self._delete_where(collection, wfilters.chunks_filter(ids))

    def update_access_many(self, access: Mapping[int, frozenset[str]]) -> BatchResult:
        if not access:
            return BatchResult(written=0)
        return self._write(sorted(access), lambda collection, _: self._rewrite(collection, access=access))

    def update_places_many(self, places: Mapping[int, str]) -> BatchResult:
        if not places:
            return BatchResult(written=0)
        return self._write(sorted(places), lambda collection, _: self._rewrite(collection, places=places))

    def _rewrite(
        self, collection, *, access: Mapping[int, frozenset[str]] | None = None,
        places: Mapping[int, str] | None = None, skip: set[int] = frozenset(),
    ) -> BatchResult:
        """Give every chunk of these documents its document's principals and place (except ``skip``)."""
        access, places = access or {}, places or {}
        stale: list[int] = []
        properties = ["chunk_id", "document_id", "principals", PLACE]
        for obj in self._read_chunks(collection, sorted(set(access) | set(places)), properties=properties):
            chunk_id, document_id = int(obj.properties["chunk_id"]), int(obj.properties["document_id"])
            if chunk_id in skip:
                continue
            if (document_id in access and frozenset(obj.properties.get("principals") or ()) != access[document_id]) or (
                document_id in places and (obj.properties.get(PLACE) or "") != places[document_id]
            ):
                stale.append(chunk_id)
        rewritten: list[IndexChunk] = []
        for ids in wfilters.slices(stale, READ_PAGE):
            page = collection.query.fetch_objects(
                filters=wfilters.chunks_filter(ids), limit=len(ids), include_vector=True,
                return_properties=STORED_PROPERTIES,
            ).objects
            for obj in page:
                document_id = int(obj.properties["document_id"])
                rewritten.append(_as_chunk(obj, principals=access.get(document_id), place=places.get(document_id)))
        return write_chunks(collection, rewritten, page_size=self.page_size, sleep=self.sleep)

    def _read_chunks(self, collection, document_ids: Sequence[int], *, properties: list[str]) -> Iterator:
        """Every chunk object of these documents, read by chunk-id keyset (no offset cap)."""
        for ids in wfilters.slices(sorted(set(document_ids)), DOCUMENTS_PER_READ):
            base, last = wfilters.documents_filter(ids), None
            while True:
                page = collection.query.fetch_objects(
                    filters=wfilters.after_chunk(base, last), limit=READ_PAGE,
                    sort=Sort.by_property("chunk_id"), return_properties=properties,
                ).objects
                yield from page
                if len(page) < READ_PAGE:
                    break
                last = int(page[-1].properties["chunk_id"])

    # --- search ---------------------------------------------------------------------------------

    def _serving(self):
        return self.client.collections.use(self.alias)

    def bm25_search(
        self, *, terms: Sequence[str], filters: SearchFilters, limit: int, expansions: Sequence[tuple[str, float]] = ()
    ) -> list[ChunkHit]:
        where = wfilters.search_filter(filters)
        if where is None or not terms or limit <= 0:
            return []
        response = self._query(lambda query: query.bm25(
            query=bm25_query_text(terms, expansions), query_properties=[TERMS], filters=where, limit=limit,
            return_metadata=MetadataQuery(score=True), return_properties=RETURNED_PROPERTIES,
        ))
        return [_hit(obj, float(obj.metadata.score or 0.0)) for obj in response.objects]

    def vector_search(self, *, vector: np.ndarray, filters: SearchFilters, limit: int) -> list[ChunkHit]:
        where = wfilters.search_filter(filters)
        if where is None or limit <= 0:
            return []
        response = self._query(lambda query: query.near_vector(
            near_vector=np.asarray(vector, dtype=np.float32).tolist(), target_vector=VECTOR_NAME,
            filters=where, limit=limit, return_metadata=MetadataQuery(distance=True),
            return_properties=RETURNED_PROPERTIES,
        ))
        # Cosine distance is 1 - cosine similarity: report the similarity, as the embedded index does.
        return [_hit(obj, 1.0 - float(obj.metadata.distance)) for obj in response.objects]

    def _query(self, run):
        try:
            return run(self._serving().query)
        except WeaviateBaseError as error:
            raise IndexBackendError(f"Weaviate search on {self.alias} failed: {error}") from error

    # --- reads ----------------------------------------------------------------------------------

    def indexed_documents(self, document_ids: Sequence[int]) -> dict[int, IndexedDocument]:
        chunk_ids: dict[int, set[int]] = {}
        principals: dict[int, set[str]] = {}
        places: dict[int, set[str]] = {}
        properties = ["chunk_id", "document_id", "principals", PLACE]
        for obj in self._read_chunks(self._serving(), document_ids, properties=properties):
            document_id = int(obj.properties["document_id"])
            chunk_ids.setdefault(document_id, set()).add(int(obj.properties["chunk_id"]))
            # The union: if chunks disagree, a principal on any chunk is access the database must confirm.
            principals.setdefault(document_id, set()).update(obj.properties.get("principals") or ())
            places.setdefault(document_id, set()).add(obj.properties.get(PLACE) or "")
        return {
            document_id: IndexedDocument(
                chunk_ids=frozenset(ids), principals=frozenset(principals[document_id]),
                places=frozenset(places[document_id]),
            )
            for document_id, ids in chunk_ids.items()
        }

    def iter_document_ids(self, *, batch_size: int = 1000) -> Iterator[list[int]]:
        """Each document id once, from a cursor over all chunks (uuid order, so ids repeat: a seen-set)."""
        seen: set[int] = set()
        batch: list[int] = []
        for obj in self._serving().iterator(return_properties=["document_id"], cache_size=READ_PAGE):
            document_id = int(obj.properties["document_id"])
            if document_id not in seen:
                seen.add(document_id)
                batch.append(document_id)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def chunk_count(self) -> int:
        state = self.catalog.read()
        return self.catalog.chunk_count(state.serving) if state.serving is not None else 0

    # --- generations ----------------------------------------------------------------------------

    def current_generation(self) -> int:
        return self.catalog.read().serving or 0

    def generations(self) -> list[GenerationInfo]:
        state = self.catalog.read()
        return [
            GenerationInfo(
                number=number, metadata=record.metadata, chunk_count=self.catalog.chunk_count(number),
                serving=number == state.serving, created_at=record.created_at,
            )
            for number, record in sorted(state.records.items())
        ]

    def generation_create(self, *, metadata: IndexMetadata) -> WeaviateIndexBuild:
        state = self.catalog.read()
        if state.building is not None:
            raise IndexBackendError(f"generation {state.building.number} is being built; one build at a time")
        number = max(state.records, default=0) + 1
        return WeaviateIndexBuild(self, self.catalog.create(number=number, metadata=metadata, state=BUILDING))

    def generation_switch(self, number: int, *, chunks_for_documents=None) -> GenerationInfo:
        state = self._existing(number)
        record = state.records[number]
        if record.state != READY:
            raise IndexBackendError(f"generation {number} is still being built; its build switches to it")
        if number != state.serving:
            missed = self.catalog.logged_documents(number)
            if missed and chunks_for_documents is None:
                raise IndexBackendError(
                    f"generation {number} missed writes to {len(missed)} document(s) since it last served; "
                    "switching needs chunks_for_documents to bring it up to date"
                )
            # The build's switch replays what the generation missed, moves the alias, replays late writes.
            WeaviateIndexBuild(self, record).switch(chunks_for_documents=chunks_for_documents or (lambda ids: []))
        return GenerationInfo(
            number=number, metadata=record.metadata, chunk_count=self.catalog.chunk_count(number),
            serving=True, created_at=record.created_at,
        )

    def generation_drop(self, number: int) -> None:
        state = self._existing(number)
        if number == state.serving:
            raise IndexBackendError(f"generation {number} serves searches; switch to another before dropping it")
        self.catalog.drop(number)
        if state.records[number].state == BUILDING:
            self.catalog.clear_log(number)

    def destroy(self) -> None:
        """Delete the alias, every generation and the change log (test collections, decommissioning)."""
        state = self.catalog.read()
        if state.serving is not None:
            self.client.alias.delete(alias_name=self.alias)
        for number in state.records:
            self.catalog.drop(number)
        self.catalog.clear_log_collection()

    def _existing(self, number: int) -> CatalogState:
        state = self.catalog.read()
        if number not in state.records:
            raise IndexBackendError(f"no generation {number} (kept: {sorted(state.records)})")
        return state


def bm25_query_text(terms: Sequence[str], expansions: Sequence[tuple[str, float]] = ()) -> str:
    """The bm25 query string: the terms, with expansion weights as repetitions.

    Weaviate takes no per-term weight, but it multiplies a term's idf by the number of times the
    term occurs in the query string. So with expansions each query term is written
    ``_WEIGHT_STEPS`` times and an expansion term ``round(weight * _WEIGHT_STEPS)`` times (at least
    once), the counts divided by their common divisor: weights are kept to within 1/20 (a weight
    below 1/20 counts as 1/10), and the ranking is the embedded backend's up to that rounding.
    """
    if not expansions:
        return " ".join(terms)
    counts = dict.fromkeys(terms, _WEIGHT_STEPS)
    for term, weight in expansions:
        if weight > 0:
            counts.setdefault(term, max(1, round(weight * _WEIGHT_STEPS)))
    divisor = math.gcd(*counts.values())
    return " ".join(" ".join([term] * (count // divisor)) for term, count in counts.items())


def _hit(obj, score: float) -> ChunkHit:
    return ChunkHit(
        chunk_id=int(obj.properties["chunk_id"]), document_id=int(obj.properties["document_id"]),
        score=score, language=str(obj.properties.get("language") or "und"),
    )


def _as_chunk(obj, *, principals: frozenset[str] | None, place: str | None) -> IndexChunk:
    """A stored chunk object back as an ``IndexChunk``, with new principals and place (None: as stored)."""
    properties = obj.properties
    return IndexChunk(
        chunk_id=int(properties["chunk_id"]), document_id=int(properties["document_id"]),
        source_key=str(properties["source_key"]), language=str(properties["language"]),
        terms=str(properties.get(TERMS) or "").split(), vector=np.asarray(obj.vector[VECTOR_NAME], dtype=np.float32),
        principals=frozenset(properties.get("principals") or ()) if principals is None else principals,
        updated_at=properties.get("updated_at"),
        place=str(properties.get(PLACE) or "") if place is None else place,
    )
