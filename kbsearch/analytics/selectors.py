"""Reads over the query log: a user's own searches, the admin reports (top and zero-result queries),
and the judgements (clicks, thumbs up/down) and activity times training data is built from."""
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Avg, Count, Max, Q, QuerySet

from kbsearch.analytics.models import Click, Feedback, QueryLog
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


# --- Training signals (read by kbsearch.relevance.training_data) --------------------------------


@dataclass(frozen=True)
class JudgementSignal:
    """One click or one thumbs up/down, with the time of the search it judged.

    ``value``: 1 for a click or a thumbs-up, -1 for a thumbs-down. ``judged_at`` is when the click
    happened or the vote was last changed; ``searched_at`` is the logged search's time (the
    judgement's own time when it names no logged search).
    """

    kind: str  # "click" or "feedback"
    id: int
    user_id: int
    document_id: int
    query: str
    query_log_id: int | None
    rank: int | None
    value: int
    judged_at: datetime
    searched_at: datetime


def _window(queryset, field: str, since: datetime | None, until: datetime | None):
    if since is not None:
        queryset = queryset.filter(**{f"{field}__gte": since})
    if until is not None:
        queryset = queryset.filter(**{f"{field}__lt": until})
    return queryset


def training_judgements(*, since: datetime | None = None, until: datetime | None = None) -> list[JudgementSignal]:
    """Every click and every thumbs up/down judged in [since, until), oldest first."""
    signals = []
    clicks = _window(Click.objects.all(), "created_at", since, until).order_by("created_at", "id")
    for row in clicks.values_list(
        "id", "user_id", "document_id", "query", "query_log_id", "rank", "created_at", "query_log__created_at"
    ).iterator(chunk_size=2000):
        click_id, user_id, document_id, query, log_id, rank, created_at, searched_at = row
        signals.append(JudgementSignal(
            "click", click_id, user_id, document_id, query, log_id, rank, 1, created_at, searched_at or created_at
        ))
    votes = _window(Feedback.objects.all(), "updated_at", since, until).order_by("updated_at", "id")
    for row in votes.values_list(
        "id", "user_id", "document_id", "query", "query_log_id", "rank", "value", "updated_at", "query_log__created_at"
    ).iterator(chunk_size=2000):
        vote_id, user_id, document_id, query, log_id, rank, value, updated_at, searched_at = row
        signals.append(JudgementSignal(
            "feedback", vote_id, user_id, document_id, query, log_id, rank, value, updated_at, searched_at or updated_at
        ))
    signals.sort(key=lambda signal: (signal.judged_at, signal.kind, signal.id))
    return signals


def user_activity_times(
    *, user_ids: set[int], since: datetime | None = None, until: datetime | None = None
) -> dict[int, list[datetime]]:
    """Per user, the times of their searches and clicks in the window, sorted: what sessions and the
    time spent on an opened result (until the next search or click) are estimated from."""
    times: dict[int, list[datetime]] = {user_id: [] for user_id in user_ids}
    if not user_ids:
        return times
    for model in (QueryLog, Click):
        rows = _window(model.objects.filter(user_id__in=user_ids), "created_at", since, until)
        for user_id, created_at in rows.values_list("user_id", "created_at").iterator(chunk_size=5000):
            times[user_id].append(created_at)
    for moments in times.values():
        moments.sort()
    return times
