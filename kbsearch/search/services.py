"""Searching as a user: principals from the user, the query vector from the encoder, documents
from the database. Ranking itself is ``kbsearch.search.ranking``."""
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from access.principals import user_principals
from kbsearch.documents.models import Chunk, Document, DocumentAccess
from kbsearch.search.backends import get_index_backend
from kbsearch.search.backends.base import SearchFilters
from kbsearch.search.ranking import Mode, clean_query, rank_documents


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
    encoder=None,
) -> SearchResponse:
    """Search for ``user``; they get only documents their principals can see."""
    started = time.perf_counter()
    text = clean_query(query)
    filters = SearchFilters(
        principals=user_principals(user),
        source_keys=source_keys,
        languages=languages,
        updated_after=updated_after,
    )
    vector = None
    if mode != "bm25" and filters.principals:
        if encoder is None:
            from embeddings.models import get_encoder

            encoder = get_encoder()
        vector = encoder.encode_queries([text])[0]
    page = rank_documents(
        index=get_index_backend(),
        query=text,
        query_vector=vector,
        filters=filters,
        mode=mode,
        alpha=settings.KBSEARCH_HYBRID_ALPHA if alpha is None else alpha,
        limit=limit,
        offset=offset,
    )
    chunks = Chunk.objects.select_related("document__source").in_bulk([hit.chunk_id for hit in page.hits])
    # The index already filtered; checking the database's access rows too means an index that
    # missed an access change can only hide a result, never show one.
    visible = set(
        DocumentAccess.objects.filter(
            document_id__in=[hit.document_id for hit in page.hits], principal__in=filters.principals
        ).values_list("document_id", flat=True)
    )
    results = []
    for hit in page.hits:
        chunk = chunks.get(hit.chunk_id)
        if chunk is None or hit.document_id not in visible:
            continue
        results.append(SearchResult(document=chunk.document, chunk=chunk, score=hit.score, rank=offset + len(results) + 1))
    return SearchResponse(
        query=text, results=results, exhausted=page.exhausted, took_ms=(time.perf_counter() - started) * 1000
    )
