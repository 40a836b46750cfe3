"""Admin for syncing sources: sync runs (read-only, cancellable) and sync actions on sources.

The source admin itself lives with the Source model (``kbsearch.documents.admin``), which may not
reach the connectors; it is re-registered here with the actions that start syncs. Runs are written
by syncs only, so their pages are read-only; the one thing an admin does to a run is ask a running
one to stop (it stops at its next checkpoint, keeps what it committed, and the next run resumes).
"""
from django.contrib import admin, messages

from access.admin_base import ReadOnlyAdmin
from connectors.base import ConnectorConfigError, ConnectorError, PermissionSyncMixin, get_connector_class
from connectors.models import SyncRun
from connectors.schedules import source_schedule_set
from connectors.services import sync_run_cancel
from connectors.tasks import enqueue_source_sync
from kbsearch.documents.admin import SourceAdmin, SourceForm
from kbsearch.documents.credentials import CredentialsUnavailable
from kbsearch.documents.locks import SourceBusy
from kbsearch.documents.models import Source


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ("source", "mode", "status", "started_at", "finished_at", "added", "changed", "removed", "failed")
    list_filter = ("status", "mode", "source")
    list_select_related = ("source",)
    readonly_fields = (
        "source", "mode", "status", "started_at", "finished_at", "counts", "errors", "checkpoint", "cancel_requested",
    )
    actions = ("cancel",)

    def _count(self, run: SyncRun, name: str) -> int:
        return run.counts.get(name, 0)

    @admin.display(description="added")
    def added(self, run: SyncRun) -> int:
        return self._count(run, "added")

    @admin.display(description="changed")
    def changed(self, run: SyncRun) -> int:
        return self._count(run, "changed")

    @admin.display(description="removed")
    def removed(self, run: SyncRun) -> int:
        return self._count(run, "removed")

    @admin.display(description="failed")
    def failed(self, run: SyncRun) -> int:
        return self._count(run, "failed")

    @admin.action(description="Cancel (stops at the next checkpoint)", permissions=["view"])
    def cancel(self, request, queryset) -> None:
        if not request.user.has_perm("documents.change_source"):
            self.message_user(request, "Cancelling a sync needs permission to change sources.", level=messages.ERROR)
            return
        asked = [run.pk for run in queryset if sync_run_cancel(run_id=run.pk)]
        if asked:
            self.message_user(request, f"Asked run(s) {', '.join(map(str, asked))} to stop.")
        if len(asked) < queryset.count():
            self.message_user(request, "Runs that were not running were left alone.", level=messages.WARNING)


class ConnectorSourceForm(SourceForm):
    """The source form, refusing what ``source_create`` refuses: an unknown connector, a configuration
    it cannot work with. Saved anyway, such a source would fail every sync (and the admin's actions)."""

    def clean(self) -> dict:
        cleaned = super().clean()
        connector, config = cleaned.get("connector"), cleaned.get("config")
        if connector is None or "config" in self.errors:
            return cleaned
        if not isinstance(config, dict):
            self.add_error("config", "give a JSON object of the connector's settings")
            return cleaned
        try:
            connector_class = get_connector_class(connector)
        except ConnectorConfigError as error:
            self.add_error("connector", str(error))
            return cleaned
        try:
            connector_class(config=config)
        except ConnectorConfigError as error:
            self.add_error("config", str(error))
        except (TypeError, ValueError, LookupError) as error:  # a setting of a shape the connector did not check
            self.add_error("config", f"the {connector} connector cannot use this configuration: {error}")
        return cleaned


def _can_sync_permissions(source: Source) -> bool:
    try:
        return issubclass(get_connector_class(source.connector), PermissionSyncMixin)
    except ConnectorConfigError:  # an unknown connector (saved before the form checked): no sync at all
        return False


class SyncingSourceAdmin(SourceAdmin):
    form = ConnectorSourceForm
    actions = ("sync_now", "sync_full", "sync_permissions")

    def save_model(self, request, obj: Source, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:  # a new source gets the default schedule, as source_create gives it
            source_schedule_set(source=obj)

    @admin.action(description="Sync now", permissions=["change"])
    def sync_now(self, request, queryset) -> None:
        self._enqueue(request, queryset)

    @admin.action(description="Full sync (reload everything, repair the index)", permissions=["change"])
    def sync_full(self, request, queryset) -> None:
        self._enqueue(request, queryset, full=True)

    @admin.action(description="Sync permissions only", permissions=["change"])
    def sync_permissions(self, request, queryset) -> None:
        able = [s for s in queryset if _can_sync_permissions(s)]
        unable = sorted({s.key for s in queryset} - {s.key for s in able})
        if unable:
            self.message_user(request, f"No permission-only sync for {', '.join(unable)}.", level=messages.WARNING)
        self._enqueue(request, able, permissions=True)

    def _enqueue(self, request, sources, *, full: bool = False, permissions: bool = False) -> None:
        queued, skipped = [], []
        for source in sources:
            if not source.enabled:
                skipped.append(source.key)
                continue
            try:
                get_connector_class(source.connector)  # a sync of an unknown connector could only fail
                enqueue_source_sync(source=source, full=full, permissions=permissions)
            except (ConnectorError, ConnectorConfigError, CredentialsUnavailable, SourceBusy) as error:
                # Without a broker the task runs inline, so its failure surfaces here (the run is recorded).
                self.message_user(request, f"{source.key}: the sync failed: {error}", level=messages.ERROR)
                continue
            queued.append(source.key)
        if queued:
            self.message_user(request, f"Started syncs of {', '.join(queued)} (a worker runs them; without a "
                                       "broker they ran now). Their runs are listed under Sync runs.")
        if skipped:
            self.message_user(request, f"Not queued, disabled: {', '.join(skipped)}.", level=messages.WARNING)


admin.site.unregister(Source)
admin.site.register(Source, SyncingSourceAdmin)
