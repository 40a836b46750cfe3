"""The admin's training runs: status, progress and loss curve, and cancelling a run.

Runs are started by ``manage.py train`` (or by whatever schedules it) and written by the training
job, so the pages are read-only apart from cancelling, a POST (the list's action or the run page's
button) that needs the change permission on training runs. The loss curve is an inline SVG drawn
here (no script, nothing fetched from elsewhere). A page of an active run reloads itself.
"""
import math

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from kbsearch.relevance.models import TrainingRun
from kbsearch.relevance.training_runs import training_run_cancel

REFRESH_SECONDS = 5
_WIDTH, _HEIGHT, _PAD = 640, 220, 40


def loss_curve_svg(history) -> str:
    """The loss over steps as an inline SVG polyline with its axes' ranges; empty under 2 points."""
    points = [(int(step), float(loss)) for step, loss in history if math.isfinite(float(loss))]
    if len(points) < 2:
        return ""
    first, last = points[0][0], points[-1][0]
    low, high = min(loss for _, loss in points), max(loss for _, loss in points)
    span_x, span_y = (last - first) or 1, (high - low) or 1.0

    def place(step: int, loss: float) -> str:
        x = _PAD + (step - first) / span_x * (_WIDTH - 2 * _PAD)
        y = _HEIGHT - _PAD - (loss - low) / span_y * (_HEIGHT - 2 * _PAD)
        return f"{x:.1f},{y:.1f}"

    return format_html(
        '<svg class="loss-curve" role="img" aria-label="training loss by step" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">'
        '<rect x="0" y="0" width="{w}" height="{h}" fill="none" stroke="#ccc"/>'
        '<polyline fill="none" stroke="#417690" stroke-width="2" points="{points}"/>'
        '<text x="4" y="{top}" font-size="11">{high}</text><text x="4" y="{bottom}" font-size="11">{low}</text>'
        '<text x="{left}" y="{under}" font-size="11">step {first}</text>'
        '<text x="{right}" y="{under}" font-size="11" text-anchor="end">step {last}</text></svg>',
        w=_WIDTH, h=_HEIGHT, points=" ".join(place(step, loss) for step, loss in points),
        top=_PAD, bottom=_HEIGHT - _PAD, high=f"{high:.3f}", low=f"{low:.3f}", left=_PAD,
        right=_WIDTH - _PAD, under=_HEIGHT - 8, first=first, last=last,
    )


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "phase", "progress", "snapshot", "base_spec", "created_at", "finished_at")
    list_filter = ("status",)
    actions = ["cancel_runs"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="progress")
    def progress(self, run: TrainingRun) -> str:
        return f"{run.step}/{run.total_steps} ({run.percent}%)" if run.total_steps else "-"

    @admin.action(description="Cancel the selected runs", permissions=["change"])
    def cancel_runs(self, request, queryset) -> None:
        cancelled = [training_run_cancel(run=run).pk for run in queryset.filter(status__in=TrainingRun.ACTIVE)]
        self.message_user(request, f"Cancel requested for {len(cancelled)} run(s).", level=messages.SUCCESS)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:run_id>/cancel/", wrap(self.cancel_view), name="relevance_trainingrun_cancel"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = get_object_or_404(TrainingRun.objects.select_related("snapshot"), pk=object_id)
        if not self.has_view_or_change_permission(request, run):
            raise PermissionDenied
        version = getattr(run, "model_version", None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Training run #{run.pk}",
            "run": run,
            "version": version,
            "loss_curve": loss_curve_svg(run.loss_history),
            "last_loss": run.loss_history[-1][1] if run.loss_history else None,
            "can_cancel": self.has_change_permission(request, run) and run.status in TrainingRun.ACTIVE
            and not run.cancel_requested,
            "refresh_seconds": REFRESH_SECONDS if run.status in TrainingRun.ACTIVE else None,
        }
        return TemplateResponse(request, "admin/relevance/trainingrun_detail.html", context)

    def cancel_view(self, request, run_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = get_object_or_404(TrainingRun, pk=run_id)
        if not self.has_change_permission(request, run):
            raise PermissionDenied
        training_run_cancel(run=run)
        self.message_user(request, f"Training run #{run.pk}: cancel requested.", level=messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:relevance_trainingrun_change", args=[run.pk]))
