"""Document ranking over an index backend: query validation, the three modes, best chunk per document.

This is the part of search that needs no database, so the ``evaluate`` command ranks exactly as the
API does. Permission and other filters travel in ``SearchFilters`` into every leg.
"""
from dataclasses import dataclass
from typing import Literal

import numpy as np

from kbsearch.index.base import BaseIndexBackend, ChunkHit, SearchFilters, SearchQuery
from kbsearch.text.analysis import query_terms
from kbsearch.text.language import query_languages
from kbsearch.text.query import InvalidQuery
from kbsearch.text.synonyms import SynonymTable, expansion_languages, expansion_weights

Mode = Literal["bm25", "vector", "hybrid"]
MODES: tuple[str, ...] = ("bm25", "vector", "hybrid")
# Chunk candidates fetched per leg for each document wanted: documents have several chunks and only
# the best one per document survives, so a page needs more chunks than documents.
_CHUNKS_PER_DOCUMENT = 3
# Hybrid scores are normalised over the candidate pool, so every page must be cut from the same
# pool: this floor keeps it fixed for the first 100 documents (10 pages of 10).
_MIN_CANDIDATES = 300
_MAX_CANDIDATES = 10_000


@dataclass(frozen=True)
class RankedPage:
    hits: list[ChunkHit]  # one per document, best first, already offset and limited
    exhausted: bool  # no more documents exist beyond this page
    # Every document in the ranked candidate pool (best chunk each), which pages are cut from;
    # facets and totals are counted over it, so they only ever count what the filters admit.
    pool: list[ChunkHit]


def rank_documents(
    *,
    index: BaseIndexBackend,
    query: str,
    query_vector: np.ndarray | None,
    filters: SearchFilters,
    mode: Mode = "hybrid",
    alpha: float = 0.5,
    limit: int = 10,
    offset: int = 0,
    language_gate: bool = True,
    synonyms: SynonymTable | None = None,
) -> RankedPage:
    """Rank documents for an already cleaned query; ``query_vector`` is needed unless mode is bm25.

    ``language_gate=False`` gives plain fixed-alpha fusion (BM25 over every language); it exists to
    measure what the gate is worth (``evaluate --plain-fusion``), not for production.

    ``synonyms``: admin-curated sets whose alternatives join the BM25 leg at the table's weight
    (``kbsearch.text.synonyms``); the vector leg always gets the query as written. Evaluation
    passes none, so its figures are the models' and the analyzer's alone.
    """
    if mode not in MODES:
        raise InvalidQuery(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if not 0.0 <= alpha <= 1.0:
        raise InvalidQuery(f"alpha must be between 0 and 1, got {alpha}")
    if limit < 1 or offset < 0:
        raise InvalidQuery("limit must be positive and offset not negative")
    # No principals (anonymous, inactive, unresolvable) sees nothing, and needs no query vector:
    # callers skip encoding for them, so this check comes before the vector's.
    if not filters.principals:
        return RankedPage(hits=[], exhausted=True, pool=[])
    if mode != "bm25" and query_vector is None:
        raise ValueError(f"mode {mode} needs a query vector")
    terms = query_terms(query)
    wanted = offset + limit
    candidates = min(max(_MIN_CANDIDATES, wanted * _CHUNKS_PER_DOCUMENT), _MAX_CANDIDATES)
    # The modes as query objects: bm25 is alpha 0 without a vector, vector is alpha 1 without terms.
    if mode == "bm25":
        legs = {"terms": terms, "vector": None, "alpha": 0.0}
    elif mode == "vector":
        legs = {"terms": (), "vector": query_vector, "alpha": 1.0}
    else:
        legs = {"terms": terms, "vector": query_vector, "alpha": alpha}
    languages = query_languages(query)
    lexical_languages = languages if mode == "hybrid" and language_gate else None
    expansions: tuple[tuple[str, float], ...] = ()
    if synonyms and mode != "vector":
        found = synonyms.expand(terms, languages)
        expansions = expansion_weights(terms, found, synonyms.weight)
        if expansions and lexical_languages is not None:
            # A Chinese expansion of an English acronym is evidence on Chinese documents: the BM25
            # leg's scale must count matches in the expansions' languages too.
            lexical_languages = lexical_languages | expansion_languages(found)
    while True:
        chunks = index.search(SearchQuery(
            filters=filters, limit=candidates, lexical_languages=lexical_languages, expansions=expansions, **legs
        ))
        best: dict[int, ChunkHit] = {}
        for hit in chunks:
            best.setdefault(hit.document_id, hit)
        exhausted = len(chunks) < candidates
        if len(best) >= wanted or exhausted or candidates >= _MAX_CANDIDATES:
            documents = list(best.values())
            return RankedPage(
                hits=documents[offset:wanted], exhausted=exhausted and len(documents) <= wanted, pool=documents
            )
        candidates = min(candidates * 4, _MAX_CANDIDATES)
