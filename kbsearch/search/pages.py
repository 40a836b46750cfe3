"""One page of search results as the API and the search page show it: validated, logged, highlighted.

Both front ends call ``search_page_run`` so they validate filters, log and highlight identically.
Everything shown comes from ``search_run``, which only returns documents the user may see and
counts facets over those only; the filter values offered or echoed in errors are limited to the
user's visible sources, so a hidden source's name is not disclosed either. A place filter naming a
place the user sees nothing in gets the same error as one naming no place at all.
"""
from dataclasses import dataclass
from datetime import datetime

from kbsearch.analytics.models import QueryLog
from kbsearch.analytics.services import query_log_create
from kbsearch.documents.models import Document
from kbsearch.documents.selectors import place_visible_values, source_visible_list
from kbsearch.search.services import search_run
from kbsearch.text.highlight import Highlighted, highlight_all, highlight_snippet, highlight_terms
from kbsearch.text.language import ALL_LANGUAGES
from kbsearch.text.query import InvalidQuery, clean_query

MAX_LIMIT = 50
# Deeper pages would make every request rank thousands of candidates; nobody reads that far, and
# the index caps its candidate pool anyway. Offsets past the last result (below this cap) are fine.
MAX_OFFSET = 1000
LANGUAGES: tuple[str, ...] = tuple(sorted(ALL_LANGUAGES))
# Values of one filter (sources, places) a search may name: each is a lookup, and a page offers far fewer.
MAX_FILTER_VALUES = 20


class InvalidSearchFilter(InvalidQuery):
    """A filter value that names no language or no source the user can search."""


@dataclass(frozen=True)
class PageItem:
    document: Document
    rank: int
    score: float
    title: Highlighted
    snippet: Highlighted

    @property
    def updated_at(self) -> datetime:
        return self.document.source_updated_at or self.document.updated_at


@dataclass(frozen=True)
class FacetValue:
    value: str
    label: str
    count: int


@dataclass(frozen=True)
class SearchPage:
    query: str
    query_log: QueryLog
    items: list[PageItem]
    total: int
    limit: int
    offset: int
    exhausted: bool
    took_ms: float
    facets: dict[str, list[FacetValue]]

    @property
    def next_offset(self) -> int | None:
        following = self.offset + self.limit
        return None if self.exhausted or following > MAX_OFFSET or not self.items else following


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "...")


def _check_filters(*, user, sources: list[str], languages: list[str], places: list[str]) -> dict[str, str]:
    """Raise InvalidSearchFilter for unknown values; return visible source names by key."""
    for name, values in (("source", sources), ("place", places)):
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidSearchFilter(f"at most {MAX_FILTER_VALUES} {name} values, got {len(values)}")
    unknown_languages = [value for value in languages if value not in ALL_LANGUAGES]
    if unknown_languages:
        raise InvalidSearchFilter(
            f"unknown language {_shown(unknown_languages[0])}; use one of: {', '.join(LANGUAGES)}"
        )
    names = dict(source_visible_list(user=user).values_list("key", "name"))
    unknown_sources = [value for value in sources if value not in names]
    if unknown_sources:
        known = ", ".join(sorted(names)) or "(none: you cannot see any documents yet)"
        raise InvalidSearchFilter(f"unknown source {_shown(unknown_sources[0])}; use one of: {known}")
    visible_places = place_visible_values(user=user, values=places) if places else set()
    unknown_places = [value for value in places if value not in visible_places]
    if unknown_places:
        raise InvalidSearchFilter(
            f"unknown place {_shown(unknown_places[0])}; use a value of the place facet (<source key>:<place key>)"
        )
    return names


def _facets(
    raw: dict[str, dict[str, int]] | None, source_names: dict[str, str], place_labels: dict[str, str] | None
) -> dict[str, list[FacetValue]]:
    raw, place_labels = raw or {}, place_labels or {}
    ordered = lambda counts: sorted(counts.items(), key=lambda item: (-item[1], item[0]))  # noqa: E731
    return {
        "source": [FacetValue(key, source_names.get(key, key), n) for key, n in ordered(raw.get("source", {}))],
        "language": [FacetValue(code, code, n) for code, n in ordered(raw.get("language", {}))],
        "place": [FacetValue(value, place_labels.get(value, value), n) for value, n in ordered(raw.get("place", {}))],
    }


def search_page_run(
    *,
    user,
    query: str,
    channel: str,
    sources: list[str] | None = None,
    languages: list[str] | None = None,
    updated_after: datetime | None = None,
    places: list[str] | None = None,
    limit: int = 10,
    offset: int = 0,
    encoder=None,
) -> SearchPage:
    """Validate, search as ``user``, log the search and highlight the page; raises InvalidQuery."""
    text = clean_query(query)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidQuery(f"offset must be between 0 and {MAX_OFFSET}, got {offset}")
    sources, languages, places = sorted(set(sources or [])), sorted(set(languages or [])), sorted(set(places or []))
    source_names = _check_filters(user=user, sources=sources, languages=languages, places=places)
    mode = "hybrid"
    response = search_run(
        user=user,
        query=text,
        mode=mode,
        limit=limit,
        offset=offset,
        source_keys=frozenset(sources) or None,
        languages=frozenset(languages) or None,
        updated_after=updated_after,
        places=frozenset(places) or None,
        encoder=encoder,
    )
    terms = highlight_terms(text)
    items = [
        PageItem(
            document=result.document,
            rank=result.rank,
            score=float(result.score),
            title=highlight_all(result.document.title, terms),
            snippet=highlight_snippet(result.chunk.text, terms),
        )
        for result in response.results
    ]
    query_log = query_log_create(
        user=user,
        query=text,
        filters={
            "source": sources,
            "lang": languages,
            "place": places,
            "updated_after": updated_after.isoformat() if updated_after else None,
        },
        mode=mode,
        channel=channel,
        limit=limit,
        offset=offset,
        results=[{"document": item.document.pk, "rank": item.rank, "score": round(item.score, 6)} for item in items],
        total=response.total,
        lexical_total=response.lexical_total,
        latency_ms=response.took_ms,
    )
    return SearchPage(
        query=text,
        query_log=query_log,
        items=items,
        total=response.total,
        limit=limit,
        offset=offset,
        exhausted=response.exhausted,
        took_ms=response.took_ms,
        facets=_facets(response.facets, source_names, response.place_labels),
    )
