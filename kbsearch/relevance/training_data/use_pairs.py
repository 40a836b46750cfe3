"""From clicks and thumbs up/down to judged (query, document) pairs, with care for what a click
does and does not say.

- **Position bias.** Users open what is on top whether or not it is best, so a click at rank 1 is
  weak evidence and one at rank 6 strong: a click counts ``1 / propensity``, the inverse of the
  chance that its rank was looked at, ``(1 / rank) ** exponent`` (clipped).
- **Sessions.** A user's searches and clicks at most ``session_minutes`` apart form one session.
  The session's last click most likely ended the search satisfied, so it counts ``last_click_boost``
  times more.
- **Dwell.** Time spent on an opened result is not recorded; it is estimated as the time until the
  same user's next search or click in the session. A click left that quickly (``short_dwell_seconds``)
  counts ``short_dwell_factor`` as much. A last click has no next action and is not discounted.
- **Explicit feedback.** A thumbs-up counts ``feedback_weight``; a user's latest thumbs-down on a
  document for a query retracts their clicks on it, and thumbs-down from all users together turn a
  pair into a negative for that query unless other users' evidence outweighs them.
- **De-duplication.** Judgements are merged by normalised query (``query_normalize``) and document,
  across searches and users; weights add up to ``weight_cap``.
- **Privacy and access.** A query that looks like personal data is dropped; a judgement counts only
  if its document still exists, is outside the excluded sources, and its user can see it now.
"""
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model

from access.resolvers import principals_for
from kbsearch.analytics.selectors import JudgementSignal, training_judgements, user_activity_times
from kbsearch.analytics.services import query_normalize
from kbsearch.documents.models import DocumentAccess
from kbsearch.relevance.training_data.params import TrainingDataParams
from kbsearch.relevance.training_data.pii import PersonalDataFilter

DROP_PERSONAL = "query looks like personal data"
DROP_EMPTY = "empty query"
DROP_NOT_VISIBLE = "document not visible to the user now"
DROP_EXCLUDED = "document in an excluded source"
DROP_RETRACTED = "click retracted by the same user's thumbs-down"
DROP_OUTVOTED = "conflicting judgements: clicks and thumbs-up outweighed by thumbs-down"


@dataclass
class Judged:
    """One (normalised query, document) with the evidence of every user who judged it."""

    query_key: str
    document_id: int
    query: str = ""  # as last searched (cleaned, not normalised)
    searched_at: datetime | None = None  # the latest search it was judged on
    weight: float = 0.0  # net positive evidence, capped
    clicks: int = 0
    ups: int = 0
    downs: int = 0
    # Principals of the users whose judgements it carries: hard negatives are taken only from
    # documents one of them may see.
    audience: set[str] = field(default_factory=set)

    @property
    def origin(self) -> str:
        return "feedback" if self.ups else "click"


@dataclass
class UseJudgements:
    positives: list[Judged]
    negatives: dict[str, list[Judged]]  # query key -> documents given a thumbs-down for it
    # Query key -> documents anybody clicked or gave a thumbs-up for it: never a negative for it.
    endorsed: dict[str, set[int]]
    dropped: Counter
    signals: Counter


@dataclass
class _UserPair:
    """One user's evidence on one (query key, document)."""

    click_weight: float = 0.0
    clicks: int = 0
    vote: int = 0
    voted_at: datetime | None = None
    query: str = ""
    searched_at: datetime | None = None


def click_weight(rank: int | None, params: TrainingDataParams) -> float:
    """Inverse propensity of examination of ``rank`` (1-based), clipped; an unknown rank counts 1."""
    if not rank or rank < 1:
        return 1.0
    return min(float(rank) ** params.propensity_exponent, params.propensity_clip)


def _session_starts(times: list[datetime], gap: timedelta) -> list[datetime]:
    starts = []
    for position, moment in enumerate(times):
        if position == 0 or moment - times[position - 1] > gap:
            starts.append(moment)
    return starts


def _click_factors(
    clicks: list[JudgementSignal], activity: dict[int, list[datetime]], params: TrainingDataParams, gap: timedelta
) -> dict[int, float]:
    """Click id -> last-click boost times dwell factor."""
    by_session: dict[tuple[int, int], JudgementSignal] = {}
    starts = {user_id: _session_starts(times, gap) for user_id, times in activity.items()}
    factors = {}
    for click in clicks:
        times = activity.get(click.user_id) or [click.judged_at]
        session = (click.user_id, bisect_right(starts.get(click.user_id) or times, click.judged_at))
        last = by_session.get(session)
        if last is None or (click.judged_at, click.id) > (last.judged_at, last.id):
            by_session[session] = click
        following = bisect_right(times, click.judged_at)
        factor = 1.0
        if following < len(times):
            dwell = times[following] - click.judged_at
            if dwell <= gap and dwell.total_seconds() < params.short_dwell_seconds:
                factor = params.short_dwell_factor
        factors[click.id] = factor
    for last in by_session.values():
        factors[last.id] *= params.last_click_boost
    return factors


def _visible_documents(user_ids: set[int], wanted: dict[int, set[int]]) -> tuple[dict[int, set[int]], dict[int, frozenset]]:
    """Per user, which of the documents they judged they may see now, and their principals."""
    users = get_user_model().objects.in_bulk(list(user_ids))
    visible: dict[int, set[int]] = {}
    principals_by_user: dict[int, frozenset] = {}
    for user_id in user_ids:
        user = users.get(user_id)
        principals = principals_for(user) if user is not None else frozenset()
        principals_by_user[user_id] = principals
        visible[user_id] = set()
        if principals and wanted.get(user_id):
            visible[user_id] = set(
                DocumentAccess.objects.filter(document_id__in=wanted[user_id], principal__in=principals)
                .values_list("document_id", flat=True)
                .distinct()
            )
    return visible, principals_by_user


def use_judgements_collect(*, params: TrainingDataParams, excluded_documents: set[int]) -> UseJudgements:
    """Judged pairs from the clicks and votes in the window (see the module docstring)."""
    gap = timedelta(minutes=params.session_minutes or settings.KBSEARCH_TRAINING_SESSION_MINUTES)
    personal = PersonalDataFilter(params.pii_patterns)
    dropped: Counter = Counter()
    signals: Counter = Counter()
    kept: list[tuple[str, JudgementSignal]] = []
    for signal in training_judgements(since=params.since, until=params.until):
        signals["click" if signal.kind == "click" else "thumbs-up" if signal.value > 0 else "thumbs-down"] += 1
        key = query_normalize(signal.query)
        if not key:
            dropped[DROP_EMPTY] += 1
        elif personal.looks_personal(signal.query):
            dropped[DROP_PERSONAL] += 1
        elif signal.document_id in excluded_documents:
            dropped[DROP_EXCLUDED] += 1
        else:
            kept.append((key, signal))
    user_ids = {signal.user_id for _, signal in kept}
    activity = user_activity_times(
        user_ids=user_ids,
        since=params.since - gap if params.since else None,
        until=params.until + gap if params.until else None,
    )
    factors = _click_factors([s for _, s in kept if s.kind == "click"], activity, params, gap)

    per_user: dict[tuple[int, str, int], _UserPair] = {}
    for key, signal in kept:
        pair = per_user.setdefault((signal.user_id, key, signal.document_id), _UserPair())
        if signal.kind == "click":
            pair.click_weight += click_weight(signal.rank, params) * factors[signal.id]
            pair.clicks += 1
        elif pair.voted_at is None or signal.judged_at >= pair.voted_at:
            pair.vote, pair.voted_at = signal.value, signal.judged_at
        if pair.searched_at is None or signal.searched_at >= pair.searched_at:
            pair.query, pair.searched_at = signal.query, signal.searched_at

    wanted: dict[int, set[int]] = {}
    for user_id, _, document_id in per_user:
        wanted.setdefault(user_id, set()).add(document_id)
    visible, principals_by_user = _visible_documents(user_ids, wanted)
    # Clicked or thumbs-up'd for a query (and not taken back by the same user): never a negative for
    # it, even where the user cannot see the document any more or others voted it down.
    endorsed: dict[str, set[int]] = {}
    for (_, key, document_id), pair in per_user.items():
        if pair.vote > 0 or (pair.vote == 0 and pair.clicks):
            endorsed.setdefault(key, set()).add(document_id)
    merged = _merge(per_user, visible, principals_by_user, params, dropped)
    positives = [judged for judged in merged.values() if judged.weight > 0]
    negatives: dict[str, list[Judged]] = {}
    for judged in merged.values():
        if judged.weight <= 0 and judged.downs and judged.document_id not in endorsed.get(judged.query_key, ()):
            negatives.setdefault(judged.query_key, []).append(judged)
    return UseJudgements(positives, negatives, endorsed, dropped, signals)


def _merge(
    per_user: dict[tuple[int, str, int], _UserPair],
    visible: dict[int, set[int]],
    principals_by_user: dict[int, frozenset],
    params: TrainingDataParams,
    dropped: Counter,
) -> dict[tuple[str, int], Judged]:
    """Users' evidence merged per (query key, document): positive weight net of thumbs-down."""
    merged: dict[tuple[str, int], Judged] = {}
    against: Counter = Counter()
    for (user_id, key, document_id), pair in per_user.items():
        if document_id not in visible[user_id]:
            dropped[DROP_NOT_VISIBLE] += pair.clicks + (1 if pair.vote else 0)
            continue
        judged = merged.setdefault((key, document_id), Judged(key, document_id))
        if judged.searched_at is None or pair.searched_at >= judged.searched_at:
            judged.query, judged.searched_at = pair.query, pair.searched_at
        judged.audience |= principals_by_user[user_id]
        if pair.vote < 0:
            dropped[DROP_RETRACTED] += pair.clicks
            judged.downs += 1
            against[(key, document_id)] += params.feedback_weight
            continue
        judged.clicks += pair.clicks
        judged.weight += pair.click_weight
        if pair.vote > 0:
            judged.ups += 1
            judged.weight += params.feedback_weight
    for item, judged in merged.items():
        if against[item] and judged.weight and against[item] >= judged.weight:
            dropped[DROP_OUTVOTED] += 1  # neither a positive nor, having been clicked, a negative
        judged.weight = round(min(max(judged.weight - against[item], 0.0), params.weight_cap), 4)
    return merged
