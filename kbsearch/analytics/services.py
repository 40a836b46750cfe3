"""Capturing search signals: the query log, thumbs up/down feedback and result clicks.

Feedback and clicks are accepted only for documents the user may see: the document is fetched
through ``access_document_by_id``, so a hidden document answers exactly like a missing one and
cannot be probed through these endpoints. A ``query_id`` must name one of the user's own searches,
which ties the judgement to the ranked list it was made on (what training needs).
"""
import unicodedata

from django.db import transaction

from kbsearch.analytics.models import Click, Feedback, QueryLog
from kbsearch.analytics.selectors import query_log_for_user
from kbsearch.documents.selectors import access_document_by_id
from kbsearch.text.query import InvalidQuery, clean_query


def query_normalize(text: str) -> str:
    """The form queries are grouped by in reports: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def query_log_create(
    *,
    user,
    query: str,
    filters: dict,
    mode: str,
    channel: str,
    limit: int,
    offset: int,
    results: list[dict],
    total: int,
    lexical_total: int | None,
    latency_ms: float,
) -> QueryLog:
    """Store one search; ``results`` is the page as shown: [{"document", "rank", "score"}, ...]."""
    return QueryLog.objects.create(
        user=user if getattr(user, "is_authenticated", False) else None,
        query=query,
        query_normalized=query_normalize(query),
        filters=filters,
        mode=mode,
        channel=channel,
        limit=limit,
        offset=offset,
        results=results,
        result_count=len(results),
        total=total,
        lexical_total=lexical_total,
        latency_ms=round(latency_ms, 3),
    )


def _judgement_context(*, user, query: str | None, query_id: int | None) -> tuple[str, QueryLog | None]:
    """The query text and log row a judgement refers to; raises InvalidQuery or UnknownQueryLog."""
    query_log = query_log_for_user(query_id=query_id, user=user) if query_id is not None else None
    if query is not None and query.strip():
        return clean_query(query), query_log
    if query_log is not None:
        return query_log.query, query_log
    raise InvalidQuery("give the query text or the query_id of the search the result came from")


def _rank_in_log(query_log: QueryLog | None, document_id: int) -> int | None:
    if query_log is None:
        return None
    for row in query_log.results:
        if row.get("document") == document_id:
            return row.get("rank")
    return None


def feedback_record(
    *,
    user,
    document_id: int,
    value: int,
    query: str | None = None,
    query_id: int | None = None,
    rank: int | None = None,
) -> tuple[Feedback, bool]:
    """Record thumbs up (1) or down (-1); a second vote on the same pair replaces the first.

    Returns (feedback, created). Raises DocumentNotFound for missing or hidden documents,
    InvalidQuery for a bad or missing query, UnknownQueryLog for a foreign or unknown query_id.
    """
    if value not in (Feedback.Value.UP, Feedback.Value.DOWN):
        raise ValueError(f"feedback value must be 1 or -1, got {value!r}")
    document = access_document_by_id(document_id, user)
    text, query_log = _judgement_context(user=user, query=query, query_id=query_id)
    rank = rank if rank is not None else _rank_in_log(query_log, document.pk)
    with transaction.atomic():
        existing = Feedback.objects.select_for_update().filter(user=user, document=document, query_log=query_log)
        if query_log is None:
            existing = existing.filter(query=text)
        feedback = existing.first()
        if feedback is not None:
            feedback.value, feedback.rank, feedback.query = value, rank, text
            feedback.save(update_fields=["value", "rank", "query", "updated_at"])
            return feedback, False
        feedback = Feedback.objects.create(
            user=user, document=document, query=text, query_log=query_log, rank=rank, value=value
        )
    return feedback, True


def click_record(
    *, user, document_id: int, rank: int, query: str | None = None, query_id: int | None = None
) -> tuple[Click, bool]:
    """Record that a result was opened at ``rank``; returns (click, created).

    Opening the same result of the same logged search again (a reload, the back button) is one
    click, so click counts stay a signal of interest rather than of navigation habits.
    """
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}")
    document = access_document_by_id(document_id, user)
    text, query_log = _judgement_context(user=user, query=query, query_id=query_id)
    if query_log is not None:
        existing = Click.objects.filter(user=user, document=document, query_log=query_log).first()
        if existing is not None:
            return existing, False
    click = Click.objects.create(user=user, document=document, query=text, query_log=query_log, rank=rank)
    return click, True
