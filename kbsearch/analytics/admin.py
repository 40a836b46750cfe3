"""Admin for search analytics: the query log, feedback, clicks, and the top / zero-result reports.

The log is written by searches only, so every page here is read-only. The two reports are proxy
models with their own changelist page (an aggregate table instead of rows), which puts them in the
admin index next to the raw log; each query links to its searches in the log.
"""
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from kbsearch.analytics.models import Click, Feedback, QueryLog, TopQuery, ZeroResultQuery
from kbsearch.analytics.selectors import query_log_top_queries, query_log_zero_result_queries

# Periods offered by the reports, in days; None is all time.
_PERIODS = (1, 7, 30, 90, None)
_DEFAULT_PERIOD = 30


def _period(value: str | None) -> int | None:
    """Days to report on from the ``days`` parameter: one of _PERIODS, "all" for all time."""
    if value == "all":
        return None
    try:
        days = int(value or _DEFAULT_PERIOD)
    except ValueError:
        return _DEFAULT_PERIOD
    return days if days in _PERIODS else _DEFAULT_PERIOD


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(QueryLog)
class QueryLogAdmin(_ReadOnlyAdmin):
    list_display = ("created_at", "query", "user", "channel", "total", "result_count", "offset", "latency_ms")
    list_filter = ("channel", "mode", "created_at")
    search_fields = ("query", "query_normalized", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("user",)


@admin.register(Feedback)
class FeedbackAdmin(_ReadOnlyAdmin):
    list_display = ("created_at", "value", "query", "document", "rank", "user")
    list_filter = ("value", "created_at")
    search_fields = ("query", "document__title", "user__username")
    list_select_related = ("user", "document__source")
    raw_id_fields = ("document", "query_log")


@admin.register(Click)
class ClickAdmin(_ReadOnlyAdmin):
    list_display = ("created_at", "query", "document", "rank", "user")
    list_filter = ("created_at",)
    search_fields = ("query", "document__title", "user__username")
    list_select_related = ("user", "document__source")
    raw_id_fields = ("document", "query_log")


class _QueryReportAdmin(_ReadOnlyAdmin):
    """A changelist replaced by an aggregate table; subclasses choose the selector."""

    report_title = ""
    report_help = ""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        # Reports aggregate the query log, so whoever may read the log may read them.
        return request.user.has_perm("analytics.view_querylog")

    def rows(self, since):
        raise NotImplementedError

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = _period(request.GET.get("days"))
        since = timezone.now() - timedelta(days=days) if days else None
        log_url = reverse("admin:analytics_querylog_changelist")
        rows = [
            {"stats": stats, "log_url": f"{log_url}?{urlencode({'query_normalized': stats.query})}"}
            for stats in self.rows(since)
        ]
        periods = [{"days": p, "param": p or "all", "current": p == days} for p in _PERIODS]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": self.report_title,
            "help": self.report_help,
            "rows": rows,
            "periods": periods,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/analytics/query_report.html", context)


@admin.register(TopQuery)
class TopQueryAdmin(_QueryReportAdmin):
    report_title = "Top queries"
    report_help = "Most frequent queries (first result pages only), with how often they found nothing."

    def rows(self, since):
        return query_log_top_queries(since=since)


@admin.register(ZeroResultQuery)
class ZeroResultQueryAdmin(_QueryReportAdmin):
    report_title = "Zero-result queries"
    report_help = (
        "Queries that found nothing the searching user may see, or nothing by keyword (only "
        "documents similar in meaning): missing content, vocabulary gaps, or documents the user "
        "lacks access to."
    )

    def rows(self, since):
        return query_log_zero_result_queries(since=since)


# The relevance dashboard and the queries needing attention register themselves beside the reports.
from kbsearch.analytics import admin_relevance  # noqa: E402, F401
