"""Admin for sources and documents: sources are configured here, documents only inspected.

Documents, chunks and access lists are written by syncs; an edit here would be overwritten by the
next sync and would bypass the search index, so the document pages are read-only. A source's
credentials are write-only: the form takes new ones (encrypted on save) and shows only whether
some are set. Deleting a source
(one, or several with the bulk action) goes through ``source_delete``, which takes its documents out
of the index too.
"""
import json

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from access.admin_base import ReadOnlyAdmin
from kbsearch.documents.credentials import CredentialsUnavailable, source_credentials_set
from kbsearch.documents.locks import SourceBusy
from kbsearch.documents.models import Document, DocumentAccess, Source
from kbsearch.documents.services import source_delete


class SourceForm(forms.ModelForm):
    new_credentials = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text='New credentials as JSON, e.g. {"api_token": "..."}; encrypted on save, never shown. '
        "Leave empty to keep the current ones.",
    )
    clear_credentials = forms.BooleanField(required=False, help_text="Remove the stored credentials.")

    class Meta:
        model = Source
        fields = ("key", "name", "connector", "config", "enabled")

    def clean_new_credentials(self) -> dict | None:
        raw = self.cleaned_data["new_credentials"].strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise forms.ValidationError("not JSON: give an object of names to strings") from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise forms.ValidationError("give an object of names to strings")
        return value


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    list_display = ("key", "name", "connector", "enabled", "has_credentials", "last_synced_at")
    list_filter = ("connector", "enabled")
    search_fields = ("key", "name")
    # Written by the connector while syncing; editing them would confuse the next incremental run.
    readonly_fields = ("has_credentials", "checkpoint", "cursor", "last_synced_at", "created_at")

    @admin.display(boolean=True, description="credentials")
    def has_credentials(self, obj: Source) -> bool:
        return bool(obj.credentials_encrypted)

    def save_model(self, request, obj: Source, form, change) -> None:
        super().save_model(request, obj, form, change)
        credentials = {} if form.cleaned_data.get("clear_credentials") else form.cleaned_data.get("new_credentials")
        if credentials is None:
            return
        try:
            source_credentials_set(source=obj, credentials=credentials)
        except CredentialsUnavailable as error:
            self.message_user(request, f"Credentials not saved: {error}", level=messages.ERROR)

    def get_deleted_objects(self, objs, request):
        # Documents cannot be deleted one by one here (see DocumentAdmin), which would make Django
        # refuse the source's deletion too; source_delete removes them properly, index included.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request, obj: Source) -> None:
        self._delete_sources(request, [obj])

    def delete_queryset(self, request, queryset) -> None:
        self._delete_sources(request, list(queryset))

    def _delete_sources(self, request, sources: list[Source]) -> None:
        busy = []
        for source in sources:
            try:
                source_delete(source=source)
            except SourceBusy:
                busy.append(source.key)
        if busy:
            # Disabled already, so no new sync starts; deleting again once the running one ends works.
            request._kbsearch_delete_failed = True
            self.message_user(
                request,
                f"Not deleted, a sync is running: {', '.join(busy)}. They are disabled now; delete them again shortly.",
                level=messages.ERROR,
            )

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "_kbsearch_delete_failed", False):
            return HttpResponseRedirect(reverse("admin:documents_source_changelist"))
        return super().response_delete(request, obj_display, obj_id)


class DocumentAccessInline(admin.TabularInline):
    model = DocumentAccess
    extra = 0
    can_delete = False
    fields = ("principal",)
    readonly_fields = ("principal",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = ("title", "source", "place_label", "language", "version", "source_updated_at", "updated_at")
    list_filter = ("source", "language")
    search_fields = ("title", "external_id")
    list_select_related = ("source",)
    inlines = [DocumentAccessInline]
    readonly_fields = (
        "source", "external_id", "title", "url", "place_key", "place_label", "language", "content_hash", "version",
        "source_updated_at", "created_at", "updated_at", "access_explained", "body",
    )

    @admin.display(description="access")
    def access_explained(self, obj: Document) -> str:
        # The permissions pages sit above this app; linked by URL name, so nothing here imports them.
        try:
            who, why = reverse("permissions:who"), reverse("permissions:why")
        except NoReverseMatch:
            return "-"
        return format_html(
            '<a href="{}?document={}">Who can see this document?</a> · <a href="{}?document={}">Why can a user see it?</a>',
            who, obj.pk, why, obj.pk,
        )

# The index generations page (re-embeds, switch, rollback, drop) registers itself there.
from kbsearch.documents import admin_generations  # noqa: E402, F401
