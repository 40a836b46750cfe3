"""Admin for sources and documents: sources are configured here, documents only inspected.

Documents, chunks and access lists are written by syncs; an edit here would be overwritten by the
next sync and would bypass the search index, so the document pages are read-only.
"""
from django.contrib import admin

from kbsearch.documents.models import Document, DocumentAccess, Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "connector", "enabled", "last_synced_at")
    list_filter = ("connector", "enabled")
    search_fields = ("key", "name")
    # Written by the connector while syncing; editing them would confuse the next incremental run.
    readonly_fields = ("checkpoint", "last_synced_at", "created_at")


class DocumentAccessInline(admin.TabularInline):
    model = DocumentAccess
    extra = 0
    can_delete = False
    fields = ("principal",)
    readonly_fields = ("principal",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "source", "language", "version", "source_updated_at", "updated_at")
    list_filter = ("source", "language")
    search_fields = ("title", "external_id")
    list_select_related = ("source",)
    inlines = [DocumentAccessInline]
    readonly_fields = (
        "source", "external_id", "title", "url", "language", "content_hash", "indexed_hash",
        "access_hash", "version", "source_updated_at", "created_at", "updated_at", "body",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting here would leave the document in the search index; syncs prune documents properly.
        return False
