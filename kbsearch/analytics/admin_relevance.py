"""Admin pages of the relevance loop: the dashboard over time and the queries needing attention.

Both are proxy-model changelists replaced by one page, like the top-queries report, so they sit in
the admin index and take its permission: whoever may read the query log (``view_querylog``) may
read them, and nobody else, staff or not. They show aggregates only (counts, rates, normalised
query text), never who searched.

The dashboard counts first-page searches (paging on is not a new search) per day or per week:
the zero-result rate (nothing the user may see, or nothing by keyword; see ``QueryLog``),
click-through at 1 and 10 (the search's best-ranked click), the mean reciprocal rank of that click
over the searches with one, and the thumbs given. Charts are inline SVG (``charts``) with the
numbers in a table below.
"""
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from kbsearch.analytics import charts
from kbsearch.analytics.admin import _PERIODS, _period, _QueryReportAdmin
from kbsearch.analytics.models import QueryNeedingAttention, RelevanceDashboard
from kbsearch.analytics.selectors import (
    BUCKETS,
    RelevanceBucket,
    feedback_most_downvoted_queries,
    query_log_low_click_through_queries,
    query_log_zero_result_queries,
    relevance_over_time,
)

DASHBOARD_DAYS = (7, 30, 90, 365)
DEFAULT_DASHBOARD_DAYS = 30
MIN_SEARCHES = (3, 5, 10, 20, 50)
DEFAULT_MIN_SEARCHES = 5
LOW_CLICK_THROUGH = 0.3  # searches with a click below this share make a query "low click-through"


def _choice(value: str | None, allowed: tuple, default):
    """``value`` as one of ``allowed`` (ints or strings), else ``default``: a bad link shows the default."""
    for option in allowed:
        if value == str(option):
            return option
    return default


def _log_url(query: str) -> str:
    return f"{reverse('admin:analytics_querylog_changelist')}?{urlencode({'query_normalized': query})}"


def _charts(buckets: list[RelevanceBucket], bucket: str) -> list:
    labels = [b.start.isoformat() if bucket == "day" else f"week of {b.start.isoformat()}" for b in buckets]

    def line(name: str, value) -> charts.Series:
        return charts.Series(name, [value(b) for b in buckets])

    return [
        charts.line_chart(title=f"Searches per {bucket}", labels=labels, series=[line("Searches", lambda b: b.searches)]),
        charts.line_chart(
            title="Zero-result rate", labels=labels, shown=charts.percent, ceiling=1.0,
            series=[line("No result or no keyword match", lambda b: b.zero_result_rate),
                    line("No result at all", lambda b: b.no_results / b.searches if b.searches else None)],
        ),
        charts.line_chart(
            title="Click-through", labels=labels, shown=charts.percent, ceiling=1.0,
            series=[line("Clicked result 1", lambda b: b.click_through_at_1),
                    line("Clicked within top 10", lambda b: b.click_through_at_10)],
        ),
        charts.line_chart(
            title="Mean reciprocal rank of the best click", labels=labels, shown=charts.ratio, ceiling=1.0,
            series=[line("MRR (searches with a click)", lambda b: b.mean_reciprocal_rank)],
        ),
        charts.line_chart(
            title=f"Thumbs per {bucket}", labels=labels,
            series=[line("Thumbs up", lambda b: b.thumbs_up), line("Thumbs down", lambda b: b.thumbs_down)],
        ),
    ]


def _shown(value: float | None, shown) -> str:
    return "–" if value is None else shown(value)


def _table_row(b: RelevanceBucket) -> dict:
    """One bucket as the table shows it (rates as percentages, a rate of nothing as a dash)."""
    return {
        "start": b.start, "searches": b.searches, "no_results": b.no_results, "clicked": b.clicked,
        "thumbs_up": b.thumbs_up, "thumbs_down": b.thumbs_down,
        "zero_result_rate": _shown(b.zero_result_rate, charts.percent),
        "click_through_at_1": _shown(b.click_through_at_1, charts.percent),
        "click_through_at_10": _shown(b.click_through_at_10, charts.percent),
        "mean_reciprocal_rank": _shown(b.mean_reciprocal_rank, charts.ratio),
    }


@admin.register(RelevanceDashboard)
class RelevanceDashboardAdmin(_QueryReportAdmin):
    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = _choice(request.GET.get("days"), DASHBOARD_DAYS, DEFAULT_DASHBOARD_DAYS)
        bucket = _choice(request.GET.get("bucket"), BUCKETS, "day" if days <= 90 else "week")
        now = timezone.now()
        buckets = relevance_over_time(since=now - timedelta(days=days), until=now, bucket=bucket)
        total = sum(buckets[1:], buckets[0]) if buckets else RelevanceBucket(start=now.date())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Relevance dashboard",
            "charts": _charts(buckets, bucket),
            "rows": [_table_row(b) for b in reversed(buckets)],
            "total": _table_row(total),
            "bucket": bucket,
            "periods": [{"days": d, "current": d == days, "query": urlencode({"days": d, "bucket": bucket})}
                        for d in DASHBOARD_DAYS],
            "buckets": [{"name": b, "current": b == bucket, "query": urlencode({"days": days, "bucket": b})}
                        for b in BUCKETS],
            "attention_url": reverse("admin:analytics_queryneedingattention_changelist"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/analytics/relevance_dashboard.html", context)


@admin.register(QueryNeedingAttention)
class QueryNeedingAttentionAdmin(_QueryReportAdmin):
    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = _period(request.GET.get("days"))
        since = timezone.now() - timedelta(days=days) if days else None
        min_searches = _choice(request.GET.get("min_searches"), MIN_SEARCHES, DEFAULT_MIN_SEARCHES)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Queries needing attention",
            "zero": [{"stats": s, "log_url": _log_url(s.query)} for s in query_log_zero_result_queries(since=since, limit=50)],
            "downvoted": [{"stats": s, "log_url": _log_url(s.query)} for s in feedback_most_downvoted_queries(since=since)],
            "low_click_through": [
                {"stats": s, "log_url": _log_url(s.query)}
                for s in query_log_low_click_through_queries(since=since, min_searches=min_searches, below=LOW_CLICK_THROUGH)
            ],
            "low_click_through_percent": round(LOW_CLICK_THROUGH * 100),
            "min_searches": min_searches,
            "periods": [{"days": p, "current": p == days, "query": urlencode({"days": p or "all", "min_searches": min_searches})}
                        for p in _PERIODS],
            "volumes": [{"value": v, "current": v == min_searches, "query": urlencode({"days": days or "all", "min_searches": v})}
                        for v in MIN_SEARCHES],
            "dashboard_url": reverse("admin:analytics_relevancedashboard_changelist"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/analytics/queries_needing_attention.html", context)
