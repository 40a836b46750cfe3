"""The training-data browser: snapshots listed, and one snapshot's summary and rows (query,
positive, negatives, origin, weight) a page at a time, searchable by query.

Queries are personal and passages may be restricted, so every page of it needs staff status (the
admin site sends others to its sign-in) and the ``relevance.view_training_data`` permission: staff
without it get 403, and the admin index does not list it for them. Snapshots are made by
``manage.py training_data``, never added, edited or deleted here (a model version refers to its
snapshot).
"""
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from kbsearch.relevance.models import TrainingDataSnapshot
from kbsearch.relevance.training_data.selectors import PARTS, SnapshotUnreadable, training_data_rows

VIEW_TRAINING_DATA = "relevance.view_training_data"
_ROWS_PER_PAGE = 50


def may_read_training_data(user) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm(VIEW_TRAINING_DATA))


@admin.register(TrainingDataSnapshot)
class TrainingDataSnapshotAdmin(admin.ModelAdmin):
    list_display = ("created_at", "train_rows", "heldout_queries", "origins", "hash")
    list_display_links = ("created_at",)

    def has_module_permission(self, request) -> bool:
        return may_read_training_data(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return may_read_training_data(request.user)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="training rows")
    def train_rows(self, snapshot: TrainingDataSnapshot):
        return snapshot.summary.get("train_rows", "")

    @admin.display(description="held-out queries")
    def heldout_queries(self, snapshot: TrainingDataSnapshot):
        return (snapshot.summary.get("heldout") or {}).get("queries", "")

    @admin.display(description="rows by origin")
    def origins(self, snapshot: TrainingDataSnapshot) -> str:
        counts = snapshot.summary.get("by_origin") or {}
        return ", ".join(f"{origin} {count}" for origin, count in sorted(counts.items()))

    @admin.display(description="sha256")
    def hash(self, snapshot: TrainingDataSnapshot) -> str:
        return snapshot.sha256[:12]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The snapshot's page is the browser: its summary and a page of its rows."""
        if not may_read_training_data(request.user):
            raise PermissionDenied
        snapshot = get_object_or_404(TrainingDataSnapshot, pk=object_id if str(object_id).isdigit() else None)
        part = request.GET.get("part", "train")
        part = part if part in PARTS else "train"
        search = request.GET.get("q", "")[:200]
        page_text = request.GET.get("page", "1")
        page_number = int(page_text) if page_text.isdigit() and len(page_text) < 7 else 1
        rows, error = None, ""
        try:
            rows = training_data_rows(snapshot=snapshot, part=part, search=search, page=page_number,
                                      per_page=_ROWS_PER_PAGE)
        except SnapshotUnreadable as unreadable:
            error = str(unreadable)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Training data {snapshot.sha256[:12]}",
            "snapshot": snapshot,
            "summary_items": _summary_items(snapshot.summary),
            "part": part,
            "parts": PARTS,
            "search": search,
            "rows": rows,
            "error": error,
        }
        return TemplateResponse(request, "admin/relevance/training_data_browser.html", context)


def _summary_items(summary: dict) -> list[tuple[str, str]]:
    """The summary's counts as (label, "key n, key n") lines, largest first."""
    items = []
    for label in ("by_origin", "by_source", "by_language", "heldout_by_origin", "signals", "negatives", "dropped"):
        counts = summary.get(label) or {}
        text = ", ".join(f"{key} {value}" for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        items.append((label.replace("_", " "), text or "none"))
    return items
