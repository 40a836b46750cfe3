"""What the admin pages of synced data share: they are read-only.

Directory users, groups, runs, audit events, source identities and documents are written by syncs
(or, for audit events, by the actions they record); an edit in the admin would be overwritten by
the next sync, bypass the search index, or falsify the record.
"""
from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """A model admin that shows rows and allows no add, change or delete."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
