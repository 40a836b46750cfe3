"""Admin for identity mapping: mappings are configured here, source identities only inspected.

Saving or deleting a mapping goes through ``identity_mapping_set`` / ``identity_mapping_delete``
(``access.mapping``), so it is audited, the source's identities are remapped and, for a new
mapping, the source's stored access lists re-scoped. Source identities are written by ingest and
remapped by directory syncs; the list shows which are unmapped or ambiguous (visible to nobody).
Imported by ``access.admin``.
"""
from django.contrib import admin, messages

from access.admin_base import ReadOnlyAdmin
from access.mapping import identity_mapping_delete, identity_mapping_set
from access.models import IdentityMapping, SourceIdentity


@admin.register(IdentityMapping)
class IdentityMappingAdmin(admin.ModelAdmin):
    list_display = ("source_key", "directory", "user_key", "group_key", "updated_at")
    search_fields = ("source_key",)
    fields = ("source_key", "directory", "user_key", "group_key")

    def get_readonly_fields(self, request, obj=None):
        # Another key is another source's mapping: delete this one and add that one instead.
        return ("source_key",) if obj is not None else ()

    def save_model(self, request, obj: IdentityMapping, form, change) -> None:
        mapping = identity_mapping_set(
            source_key=obj.source_key,
            directory_key=obj.directory.key if obj.directory_id else None,
            user_key=obj.user_key,
            group_key=obj.group_key,
            actor=request.user.get_username(),
        )
        obj.pk, obj.updated_at = mapping.pk, mapping.updated_at

    def delete_model(self, request, obj: IdentityMapping) -> None:
        self._delete(request, [obj])

    def delete_queryset(self, request, queryset) -> None:
        self._delete(request, list(queryset))

    def _delete(self, request, mappings: list[IdentityMapping]) -> None:
        for mapping in mappings:
            identity_mapping_delete(source_key=mapping.source_key, actor=request.user.get_username())
        keys = ", ".join(mapping.source_key for mapping in mappings)
        self.message_user(
            request,
            f"Documents of {keys} are visible to nobody until a full sync of the source (manage.py sync_source KEY --full).",
            messages.WARNING,
        )


@admin.register(SourceIdentity)
class SourceIdentityAdmin(ReadOnlyAdmin):
    list_display = ("principal", "source_key", "kind", "name", "status", "maps_to", "last_seen_at")
    list_filter = ("source_key", "status", "kind")
    search_fields = ("name", "principal")
    list_select_related = ("directory_user__directory", "directory_group__directory")

    @admin.display(description="maps to")
    def maps_to(self, identity: SourceIdentity) -> str:
        return str(identity.directory_user or identity.directory_group or "nobody")
