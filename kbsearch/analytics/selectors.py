"""Reads over the query log: a user's own searches, and the admin reports (top and zero-result queries)."""
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Avg, Count, Max, Q, QuerySet

from kbsearch.analytics.models import QueryLog
from kbsearch.documents.ids import is_storable_id


class UnknownQueryLog(ValueError):
    """A query_id that is not one of the requesting user's searches."""


def query_log_for_user(*, query_id: int, user) -> QueryLog:
    """The user's own logged search; anyone else's (or none) raises UnknownQueryLog."""
    if not is_storable_id(query_id) or not getattr(user, "is_authenticated", False):
        raise UnknownQueryLog(f"query_id {query_id} is not one of your searches")
    query_log = QueryLog.objects.filter(pk=query_id, user=user).first()
    if query_log is None:
        raise UnknownQueryLog(f"query_id {query_id} is not one of your searches")
    return query_log


@dataclass(frozen=True)
class QueryStats:
    """One normalized query's numbers over a period."""

    query: str
    searches: int
    users: int
    zero_result_searches: int
    no_keyword_match_searches: int
    average_results: float
    average_latency_ms: float
    last_searched_at: datetime


def _stats(queryset: QuerySet[QueryLog], limit: int) -> list[QueryStats]:
    rows = (
        queryset.values("query_normalized")
        .annotate(
            searches=Count("id"),
            users=Count("user", distinct=True),
            zero=Count("id", filter=Q(total=0)),
            no_keyword=Count("id", filter=Q(lexical_total=0)),
            average_results=Avg("total"),
            average_latency=Avg("latency_ms"),
            last=Max("created_at"),
        )
        .order_by("-searches", "-last")[:limit]
    )
    return [
        QueryStats(
            query=row["query_normalized"],
            searches=row["searches"],
            users=row["users"],
            zero_result_searches=row["zero"],
            no_keyword_match_searches=row["no_keyword"],
            average_results=float(row["average_results"] or 0.0),
            average_latency_ms=float(row["average_latency"] or 0.0),
            last_searched_at=row["last"],
        )
        for row in rows
    ]


def _since(queryset: QuerySet[QueryLog], since: datetime | None) -> QuerySet[QueryLog]:
    return queryset if since is None else queryset.filter(created_at__gte=since)


def query_log_top_queries(*, since: datetime | None = None, limit: int = 100) -> list[QueryStats]:
    """The most searched queries (first pages only, so paging through results is not a new search)."""
    return _stats(_since(QueryLog.objects.filter(offset=0), since), limit)


def query_log_zero_result_queries(*, since: datetime | None = None, limit: int = 100) -> list[QueryStats]:
    """Queries that found nothing the searching user could see, or nothing by keyword, most frequent first.

    Hybrid search nearly always returns semantic neighbours, so a query no document matched by any
    of its words counts as zero-result too: it is the content gap or vocabulary mismatch to fix.
    Filtered searches count as well: a filter that empties the results is a gap worth seeing.
    """
    empty = Q(total=0) | Q(lexical_total=0)
    return _stats(_since(QueryLog.objects.filter(empty, offset=0), since), limit)
