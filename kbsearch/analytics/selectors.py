"""Reads over the query log: a user's own searches, the admin reports (top and zero-result
queries), the relevance dashboard's figures over time, the queries needing attention, and the
judgements (clicks, thumbs up/down) and activity times training data is built from."""
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import (
    Avg,
    Count,
    DateField,
    Exists,
    FloatField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Lower, Trunc
from django.utils import timezone

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


def _since(queryset: QuerySet, since: datetime | None) -> QuerySet:
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


# --- the relevance dashboard and the queries needing attention -------------------------------------

BUCKETS = ("day", "week")


@dataclass(frozen=True)
class RelevanceBucket:
    """One day or week of first-page searches, their clicks, and the thumbs given in it.

    Click measures count a search's best-ranked click (clicks tied to the logged search); thumbs
    count by the time they were given.
    """

    start: date
    searches: int = 0
    empty: int = 0  # found nothing the user may see, or nothing by keyword (the zero-result report's rule)
    no_results: int = 0  # found nothing at all
    clicked: int = 0  # searches with a click
    clicked_at_1: int = 0
    clicked_in_10: int = 0
    reciprocal_rank_sum: float = 0.0  # of each clicked search's best click
    thumbs_up: int = 0
    thumbs_down: int = 0

    def _share(self, count: float, of: int) -> float | None:
        return count / of if of else None

    @property
    def zero_result_rate(self) -> float | None:
        return self._share(self.empty, self.searches)

    @property
    def click_through_at_1(self) -> float | None:
        return self._share(self.clicked_at_1, self.searches)

    @property
    def click_through_at_10(self) -> float | None:
        return self._share(self.clicked_in_10, self.searches)

    @property
    def mean_reciprocal_rank(self) -> float | None:
        """Over the searches with a click: 1 when people open the first result, 1/2 the second..."""
        return self._share(self.reciprocal_rank_sum, self.clicked)

    def __add__(self, other: "RelevanceBucket") -> "RelevanceBucket":
        summed = {
            name: getattr(self, name) + getattr(other, name)
            for name in ("searches", "empty", "no_results", "clicked", "clicked_at_1", "clicked_in_10",
                         "reciprocal_rank_sum", "thumbs_up", "thumbs_down")
        }
        return RelevanceBucket(start=min(self.start, other.start), **summed)


def _bucket_starts(since: datetime, until: datetime, bucket: str) -> list[date]:
    first, last = timezone.localtime(since).date(), timezone.localtime(until).date()
    if bucket == "week":
        first, last = first - timedelta(days=first.weekday()), last - timedelta(days=last.weekday())
    step = timedelta(days=7 if bucket == "week" else 1)
    starts = []
    while first <= last:
        starts.append(first)
        first += step
    return starts


def relevance_over_time(*, since: datetime, until: datetime | None = None, bucket: str = "day") -> list[RelevanceBucket]:
    """Every day (or Monday-started week) from ``since`` to ``until`` (default now), empty ones included.

    Aggregated in the database (one grouped query over the log, one over feedback), in the
    current time zone, on PostgreSQL and SQLite alike.
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}")
    until = until or timezone.now()
    period = Trunc("created_at", bucket, output_field=DateField())
    best_click = Subquery(
        Click.objects.filter(query_log=OuterRef("pk")).order_by().values("query_log").annotate(best=Min("rank")).values("best")
    )
    searches = (
        QueryLog.objects.filter(offset=0, created_at__gte=since, created_at__lt=until)
        .annotate(period=period, best=best_click)
        .values("period")
        .annotate(
            searches=Count("id"),
            empty=Count("id", filter=Q(total=0) | Q(lexical_total=0)),
            no_results=Count("id", filter=Q(total=0)),
            clicked=Count("best"),
            clicked_at_1=Count("id", filter=Q(best=1)),
            clicked_in_10=Count("id", filter=Q(best__lte=10)),
            reciprocal_rank_sum=Sum(Cast(Value(1.0), FloatField()) / Cast("best", FloatField())),
        )
        .order_by()
    )
    thumbs = (
        Feedback.objects.filter(created_at__gte=since, created_at__lt=until)
        .annotate(period=period)
        .values("period")
        .annotate(thumbs_up=Count("id", filter=Q(value=1)), thumbs_down=Count("id", filter=Q(value=-1)))
        .order_by()
    )
    buckets = {start: RelevanceBucket(start=start) for start in _bucket_starts(since, until, bucket)}
    for row in searches:
        row["reciprocal_rank_sum"] = float(row["reciprocal_rank_sum"] or 0.0)
        start = row.pop("period")
        buckets[start] = buckets.get(start, RelevanceBucket(start=start)) + RelevanceBucket(start=start, **row)
    for row in thumbs:
        start = row.pop("period")
        buckets[start] = buckets.get(start, RelevanceBucket(start=start)) + RelevanceBucket(start=start, **row)
    return [buckets[start] for start in sorted(buckets)]


@dataclass(frozen=True)
class FeedbackQueryStats:
    """One query's thumbs over a period (grouped like the log's reports)."""

    query: str
    thumbs_down: int
    thumbs_up: int
    users: int
    last_given_at: datetime


def feedback_most_downvoted_queries(*, since: datetime | None = None, limit: int = 50) -> list[FeedbackQueryStats]:
    """Queries with thumbs down, most first; the query is the logged search's normalised form when
    the feedback names one, else its text in lower case."""
    rows = (
        _since(Feedback.objects.all(), since)
        .annotate(grouped=Coalesce("query_log__query_normalized", Lower("query")))
        .values("grouped")
        .annotate(
            down=Count("id", filter=Q(value=-1)), up=Count("id", filter=Q(value=1)),
            users=Count("user", distinct=True), last=Max("created_at"),
        )
        .filter(down__gt=0)
        .order_by("-down", "up", "-last")[:limit]
    )
    return [
        FeedbackQueryStats(query=row["grouped"], thumbs_down=row["down"], thumbs_up=row["up"], users=row["users"],
                           last_given_at=row["last"])
        for row in rows
    ]


@dataclass(frozen=True)
class ClickThroughStats:
    """One query's first-page searches and how many of them had a result opened."""

    query: str
    searches: int
    clicked: int
    users: int
    last_searched_at: datetime

    @property
    def click_through(self) -> float:
        return self.clicked / self.searches


def query_log_low_click_through_queries(
    *, since: datetime | None = None, min_searches: int = 5, below: float = 0.3, limit: int = 50
) -> list[ClickThroughStats]:
    """Queries searched at least ``min_searches`` times whose share of searches with a click is
    below ``below``, lowest first, then the most searched (rare queries are too noisy to judge)."""
    clicked = Exists(Click.objects.filter(query_log=OuterRef("pk")))
    rows = (
        _since(QueryLog.objects.filter(offset=0), since)
        .values("query_normalized")
        .annotate(
            searches=Count("id"), clicked=Count("id", filter=Q(clicked)),
            users=Count("user", distinct=True), last=Max("created_at"),
        )
        .filter(searches__gte=min_searches)
        .annotate(share=Cast("clicked", FloatField()) / Cast("searches", FloatField()))
        .filter(share__lt=below)
        .order_by("share", "-searches", "-last")[:limit]
    )
    return [
        ClickThroughStats(query=row["query_normalized"], searches=row["searches"], clicked=row["clicked"],
                          users=row["users"], last_searched_at=row["last"])
        for row in rows
    ]
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
