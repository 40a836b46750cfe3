"""The admin's model versions: the evaluation report, and promote / rollback.

Versions are written by training runs and by ``registry.model_versions_reconcile``, so the pages are
read-only apart from two POST actions, which need the ``relevance.promote_modelversion``
permission: promote (refused unless the gate passed against the serving model; the registry says
why) and rollback (switch back to the previous generation). Statuses are reconciled with the index
when the list or a version is shown, so a switch made elsewhere is reflected.
"""
import logging

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from kbsearch.documents.generations import ReembedBusy
from kbsearch.documents.models import ReembedRun
from kbsearch.index.base import IndexBackendError
from kbsearch.relevance.gate import GATE_METRIC, IN_DOMAIN, METRICS
from kbsearch.relevance.models import ModelVersion
from kbsearch.relevance.registry import (
    PromotionRefused,
    model_rollback,
    model_version_promote,
    model_versions_reconcile,
)

logger = logging.getLogger(__name__)
PROMOTE_PERMISSION = "relevance.promote_modelversion"
REFRESH_SECONDS = 5


def report_rows(report: dict) -> list[dict]:
    """One row per set and mode: before, after and delta of each metric (or the set's error)."""
    rows = []
    for entry in report.get("sets", []):
        if "error" in entry:
            rows.append({"set": entry["name"], "kind": entry["kind"], "error": entry["error"]})
            continue
        for mode, scores in entry.get("modes", {}).items():
            rows.append({
                "set": entry["name"], "kind": entry["kind"], "mode": mode, "queries": entry.get("queries"),
                "metrics": [(scores["before"][m], scores["after"][m], scores["delta"][m]) for m in METRICS],
                "gate": mode == report.get("options", {}).get("gate_mode"),
            })
    return rows


def _in_domain_gain(version: ModelVersion) -> float | None:
    mode = version.report.get("options", {}).get("gate_mode")
    for entry in version.report.get("sets", []):
        if entry.get("kind") == IN_DOMAIN:
            return entry.get("modes", {}).get(mode, {}).get("delta", {}).get(GATE_METRIC)
    return None


def _reconcile() -> None:
    try:
        model_versions_reconcile()
    except Exception as error:  # noqa: BLE001 (an unreachable index: show the versions as last known)
        logger.warning("model versions not reconciled with the index: %s", error)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "gate", "in_domain_gain", "parent", "created_at")
    list_filter = ("status", "gate_passed")
    list_select_related = ("parent",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="gate")
    def gate(self, version: ModelVersion) -> str:
        return {True: "passed", False: "refused", None: "not evaluated"}[version.gate_passed]

    @admin.display(description="in-domain nDCG@10 gain")
    def in_domain_gain(self, version: ModelVersion) -> str:
        gain = _in_domain_gain(version)
        return "-" if gain is None else f"{gain:+.4f}"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:version_id>/promote/", wrap(self.promote_view), name="relevance_modelversion_promote"),
            path("rollback/", wrap(self.rollback_view), name="relevance_modelversion_rollback"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        if self.has_view_or_change_permission(request):
            _reconcile()
        extra_context = {**(extra_context or {}), "can_promote": request.user.has_perm(PROMOTE_PERMISSION)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        _reconcile()
        version = get_object_or_404(
            ModelVersion.objects.select_related("parent", "training_run", "snapshot", "reembed_run"), pk=object_id
        )
        promoting = version.reembed_run is not None and version.reembed_run.status in ReembedRun.ACTIVE
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Model version {version.name}",
            "version": version,
            "rows": report_rows(version.report),
            "metrics": METRICS,
            "error_colspan": 2 + 3 * len(METRICS),
            "verdict": version.report.get("verdict", {}),
            "promoting": promoting,
            "can_promote": request.user.has_perm(PROMOTE_PERMISSION),
            "promotable": version.gate_passed is True and version.status != ModelVersion.Status.PROMOTED
            and not promoting,
            "refresh_seconds": REFRESH_SECONDS if promoting else None,
        }
        return TemplateResponse(request, "admin/relevance/modelversion_detail.html", context)

    def _act(self, request, action, success: str, back: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(PROMOTE_PERMISSION):
            raise PermissionDenied
        try:
            action()
        except (PromotionRefused, ReembedBusy, IndexBackendError, ValueError) as error:
            self.message_user(request, str(error), level=messages.ERROR)
        else:
            self.message_user(request, success, level=messages.SUCCESS)
        return HttpResponseRedirect(back)

    def promote_view(self, request, version_id: int):
        version = get_object_or_404(ModelVersion, pk=version_id)
        return self._act(
            request, lambda: model_version_promote(version=version),
            f"Promotion of {version.name} started: it serves when its generation is built and switched.",
            reverse("admin:relevance_modelversion_change", args=[version.pk]),
        )

    def rollback_view(self, request):
        return self._act(
            request, model_rollback, "Rolled back to the previous generation.",
            reverse("admin:relevance_modelversion_changelist"),
        )
