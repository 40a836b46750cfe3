"""Searching as a user: principals from the user, the query vector from the serving generation's
model (``embeddings.loading.encoder_for``), documents from the database. Ranking itself is
``kbsearch.index.ranking``."""
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from access.resolvers import principals_for
from kbsearch.documents.models import Chunk, Document
from kbsearch.documents.places import place_value
from kbsearch.documents.selectors import document_visible_ids
from kbsearch.index.base import BaseIndexBackend, IndexBackendError, SearchFilters
from kbsearch.index.ranking import Mode, rank_documents
from kbsearch.index.registry import get_index_backend
from kbsearch.ops.index_timing import legs_timed
from kbsearch.ops.metrics import search_leg
from kbsearch.search.synonyms import synonym_table
from kbsearch.text.query import clean_query

# Searches that straddle a switch to another model's generation are run again, at most this often.
_SWITCH_RETRIES = 3


@dataclass(frozen=True)
class SearchResult:
    document: Document
    chunk: Chunk
    score: float
    rank: int


@dataclass(frozen=True)
class SearchResponse:
    query: str
    results: list[SearchResult]
    exhausted: bool
    took_ms: float
    # Documents in the ranked pool the user may see, and their counts by source, language and place.
    total: int = 0
    facets: dict[str, dict[str, int]] | None = None
    # The label of each place counted in ``facets["place"]``, from those same documents.
    place_labels: dict[str, str] | None = None
    # Documents of that pool that matched a query term (BM25), not only by meaning (vector); the
    # query log uses it to report queries that found nothing by keyword.
    lexical_total: int = 0


def search_run(
    *,
    user,
    query: str,
    mode: Mode = "hybrid",
    alpha: float | None = None,
    limit: int = 10,
    offset: int = 0,
    source_keys: frozenset[str] | None = None,
    languages: frozenset[str] | None = None,
    updated_after: datetime | None = None,
    places: frozenset[str] | None = None,
    encoder=None,
) -> SearchResponse:
    """Search for ``user``; they get only documents their principals can see.

    ``places``: values ``<source key>:<place key>`` (``kbsearch.documents.places``), any of which
    admits a document; applied inside the index like every other filter.
    """
    started = time.perf_counter()
    text = clean_query(query)
    filters = SearchFilters(
        principals=principals_for(user),
        source_keys=source_keys,
        languages=languages,
        updated_after=updated_after,
        places=places,
    )
    index = get_index_backend()
    # Admin synonyms widen the keyword leg only; a user who sees nothing needs none read.
    synonyms = synonym_table() if mode != "vector" and filters.principals else None
    page = _ranked_page(
        index=index, text=text, filters=filters, mode=mode, encoder=encoder, synonyms=synonyms,
        alpha=settings.KBSEARCH_HYBRID_ALPHA if alpha is None else alpha, limit=limit, offset=offset,
    )
    with search_leg("recheck"):
        # Not the documents' bodies (up to KBSEARCH_MAX_DOCUMENT_BYTES each): a result shows its chunk.
        chunks = (
            Chunk.objects.select_related("document__source").defer("document__body")
            .in_bulk([hit.chunk_id for hit in page.hits])
        )
        # The index already filtered; re-checking the database's access rows for the whole pool (the
        # page, the counts and the facets) means an index that missed an access change can only hide
        # a document, never show or count one.
        pool_ids = [hit.document_id for hit in page.pool]
        visible = document_visible_ids(user=user, document_ids=pool_ids)
        visible_pool = [document_id for document_id in pool_ids if document_id in visible]
        facets, place_labels = _facets(visible_pool)
    results = []
    for hit in page.hits:
        chunk = chunks.get(hit.chunk_id)
        # The chunk's own document is what is shown, so that is the one the re-check must have
        # passed: an index entry naming another document than the database's is dropped.
        if chunk is None or chunk.document_id != hit.document_id or hit.document_id not in visible:
            continue
        results.append(SearchResult(document=chunk.document, chunk=chunk, score=hit.score, rank=offset + len(results) + 1))
    return SearchResponse(
        query=text,
        results=results,
        exhausted=page.exhausted,
        took_ms=(time.perf_counter() - started) * 1000,
        total=len(visible_pool),
        facets=facets,
        place_labels=place_labels,
        lexical_total=sum(
            1 for hit in page.pool if hit.document_id in visible and (mode == "bm25" or hit.bm25_score is not None)
        ),
    )


def _ranked_page(*, index: BaseIndexBackend, text: str, filters: SearchFilters, mode: Mode, encoder, alpha: float,
                 limit: int, offset: int, synonyms=None):
    """Rank with the query encoded by the serving generation's model (``encoder_for``).

    A switch to another model's generation between encoding and ranking would pair a vector of
    one model with the vectors of another (garbage, or a dimension error): the serving metadata is
    read again afterwards, and a search that straddled a switch is run once more.
    """
    timed_index = legs_timed(index)  # records the bm25, vector and fusion legs
    # Only a query vector depends on the serving generation's model: a keyword search, or one for
    # a user who sees nothing, encodes nothing and need not read the metadata before or after.
    encodes = mode != "bm25" and bool(filters.principals)
    for attempt in range(_SWITCH_RETRIES):
        metadata = index.serving_metadata() if encoder is None and encodes else None
        vector = None
        if encodes:
            query_encoder = encoder
            if query_encoder is None:
                from embeddings.loading import encoder_for

                query_encoder = encoder_for(metadata)
            with search_leg("encode"):
                vector = query_encoder.encode_queries([text])[0]
        try:
            page = rank_documents(
                index=timed_index,
                query=text, query_vector=vector, filters=filters, mode=mode, alpha=alpha, limit=limit, offset=offset,
                synonyms=synonyms,
            )
        except (IndexBackendError, ValueError):
            # A switch can land between reading the metadata and the legs reaching the generation
            # (this process may follow the pointer a moment later), so a mismatch is tried again
            # with freshly read metadata even when the metadata now reads the same.
            if encoder is not None or not encodes or attempt == _SWITCH_RETRIES - 1:
                raise
            continue
        if encoder is not None or vector is None or index.serving_metadata() == metadata:
            return page
    raise IndexBackendError("the serving generation kept switching models during a search")


def _facets(document_ids: list[int]) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """Counts by source, language and place over documents already filtered for the user, and each
    place's label (the one most of those documents carry: a renamed space is relabelled document
    by document as its syncs reach them)."""
    facets: dict[str, dict[str, int]] = {"source": {}, "language": {}, "place": {}}
    labels: dict[str, dict[str, int]] = {}
    rows = (
        Document.objects.filter(pk__in=document_ids)
        .values_list("source__key", "language", "place_key", "place_label")
        .order_by()
    )
    for source_key, language, place_key, place_label in rows:
        facets["source"][source_key] = facets["source"].get(source_key, 0) + 1
        facets["language"][language] = facets["language"].get(language, 0) + 1
        place = place_value(source_key, place_key)
        if place:
            facets["place"][place] = facets["place"].get(place, 0) + 1
            votes = labels.setdefault(place, {})
            votes[place_label or place_key] = votes.get(place_label or place_key, 0) + 1
    return facets, {place: min(votes, key=lambda label: (-votes[label], label)) for place, votes in labels.items()}
