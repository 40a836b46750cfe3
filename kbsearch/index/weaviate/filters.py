"""Our ``SearchFilters`` as Weaviate filters, applied inside each search leg (pre-filtering).

Weaviate resolves a filter to an allow-list of object ids from the inverted index *before* the
HNSW walk or the BM25 scoring, so a page is never shrunk by filtering, as the contract requires.

Principals and ``contains_any`` with hundreds of values (Weaviate issue #12242): the server turns
``ContainsAny`` into an OR of one inverted-index lookup per value, each read by its own goroutine
and merged through one channel. That issue measured 100,000 values per filter collapsing a cluster
under concurrent load (goroutine and allocation bound, not disk bound), while single queries at
10,000 values were acceptable. Our lists are a user's principals (``access.resolvers``): the user,
their transitive groups and source identities, typically tens and at most a few hundred, i.e.
two to three orders of magnitude below the failing case; each value costs one small bitmap read
of a ``field``-tokenized term. There is no server-side limit on the number of values, and
splitting a long list into several OR'd ``contains_any`` operands would not help, since the server
fans out per value either way. So the list is sent whole, once; ``LARGE_PRINCIPAL_LIST`` is the
size above which we log a warning, because a directory that hands one user thousands of groups
is where #12242's cliff starts to matter and should be looked at (flattening nested groups,
source-level grants) rather than papered over client-side.
"""
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC

from weaviate.classes.query import Filter

from kbsearch.index.base import SearchFilters
from kbsearch.index.weaviate.schema import PLACE

logger = logging.getLogger(__name__)

LARGE_PRINCIPAL_LIST = 1000


def search_filter(filters: SearchFilters):
    """The Weaviate filter for ``filters``, or None when nothing can match (no principals).

    Callers must not search at all on None: an absent filter would mean "everything".
    """
    if not filters.principals:
        return None
    if len(filters.principals) > LARGE_PRINCIPAL_LIST:
        logger.warning(
            "searching with %d principals: beyond %d, Weaviate's per-value filter fan-out gets costly "
            "under load (weaviate issue #12242)", len(filters.principals), LARGE_PRINCIPAL_LIST,
        )
    parts = [Filter.by_property("principals").contains_any(sorted(filters.principals))]
    if filters.source_keys is not None:
        if not filters.source_keys:
            return None
        parts.append(Filter.by_property("source_key").contains_any(sorted(filters.source_keys)))
    if filters.languages is not None:
        if not filters.languages:
            return None
        parts.append(Filter.by_property("language").contains_any(sorted(filters.languages)))
    if filters.places is not None:
        places = sorted(place for place in filters.places if place)  # "" names no place: admits nothing
        if not places:
            return None
        parts.append(Filter.by_property(PLACE).contains_any(places))
    if filters.updated_after is not None:
        # Strictly after, like the embedded index; chunks without a date never pass a date filter.
        parts.append(Filter.by_property("updated_at").greater_than(as_utc(filters.updated_after)))
    return Filter.all_of(parts) if len(parts) > 1 else parts[0]


def as_utc(moment):
    """Weaviate stores RFC 3339 instants; a naive datetime is taken as UTC, as Django stores them."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def documents_filter(document_ids: Iterable[int]):
    return Filter.by_property("document_id").contains_any(sorted(set(document_ids)))


def chunks_filter(chunk_ids: Iterable[int]):
    return Filter.by_property("chunk_id").contains_any(sorted(set(chunk_ids)))


def after_chunk(filter_, last_chunk_id: int | None):
    """Keyset pagination: ``filter_`` restricted to chunk ids above the last one read."""
    if last_chunk_id is None:
        return filter_
    return filter_ & Filter.by_property("chunk_id").greater_than(last_chunk_id)


def slices(values: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
