"""Admin for directories: configuration, sync runs, synced users and groups, the audit log.

Directories are configured here; every add, edit and deletion is an ADMIN_CHANGE audit event
(``access.audit``). Runs, users, groups and audit events are written by syncs and sign-ins only, so
their pages are read-only: an edit would be undone by the next sync, or would falsify the log.
Syncing and confirming a held sync need the permission to change directories.

A synced user's page shows what their directory entry gives them (each group with the chain of
nested groups behind it) and links to the permissions pages (``kbsearch.permissions``), which
show the account's effective principals as the configured resolver computes them. Source
identities and identity mappings have their own admin (``access.admin_identities``).
"""
import json

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, Subquery
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

# Registers IdentityMapping and SourceIdentity (unmapped identities per source) on import.
from access import admin_identities  # noqa: F401
from access.admin_base import ReadOnlyAdmin
from access.audit import directory_admin_change_record
from access.directory.client import DirectoryConfigError, DirectoryUnavailable
from access.explanations import directory_closure_without_chain, directory_entries_for, directory_group_chains
from access.mapping import identities_remap_for_directory
from access.models import AuditEvent, Directory, DirectoryGroup, DirectorySyncRun, DirectoryUser
from access.resolvers import principals_for
from access.services import SyncNotConfirmable, directory_sync_confirm
from access.tasks import enqueue_directory_sync

RECENT_RUNS = 10
MEMBERS_LISTED = 200


def _admin_link(obj, text=None) -> str:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def _permissions_url(name: str, **params) -> str | None:
    """A permissions page's URL, or None when that app is not installed (the admin still works)."""
    try:
        return f"{reverse(f'permissions:{name}')}?{urlencode(params)}"
    except NoReverseMatch:
        return None


def _pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def _counts_summary(counts: dict) -> str:
    if not counts:
        return "-"
    return f"{counts.get('users', 0)} users, {counts.get('groups', 0)} groups, {counts.get('memberships', 0)} memberships"


def chain_html(chain) -> str:
    """``directory: group -> parent -> ...`` with each group linked to its page."""
    return format_html(
        "{}: {}", chain.directory_key, format_html_join(" → ", "{}", ((_admin_link(group, group.name),) for group in chain.groups))
    )


@admin.register(Directory)
class DirectoryAdmin(admin.ModelAdmin):
    list_display = ("key", "kind", "enabled", "last_success_at", "latest_run", "latest_counts", "latest_errors")
    list_filter = ("kind", "enabled")
    search_fields = ("key", "name", "server_urls")
    actions = ("sync_incremental", "sync_full")
    # Written by syncs: an edit would make the next incremental sync skip or repeat changes.
    readonly_fields = ("cursor", "cursor_server", "last_success_at", "last_full_success_at", "last_read_at", "recent_runs")
    fieldsets = (
        (None, {"fields": ("key", "name", "kind", "enabled")}),
        ("Connection", {"fields": ("server_urls", "bind_dn", "bind_password_env", "start_tls", "ca_file", "timeout_seconds")}),
        ("What to read", {"fields": ("user_base_dn", "user_filter", "group_base_dn", "group_filter", "page_size")}),
        ("Safety", {"fields": ("grace_period", "max_removal_share", "full_sync_interval")}),
        ("Sync state", {"fields": ("last_success_at", "last_full_success_at", "last_read_at", "cursor", "cursor_server", "recent_runs")}),
    )

    def get_queryset(self, request):
        latest = DirectorySyncRun.objects.filter(directory=OuterRef("pk")).order_by("-started_at", "-pk").values("pk")[:1]
        return super().get_queryset(request).annotate(latest_run_id=Subquery(latest))

    def _latest(self, obj) -> DirectorySyncRun | None:
        if not hasattr(obj, "_latest_run"):
            run_id = getattr(obj, "latest_run_id", None)
            obj._latest_run = DirectorySyncRun.objects.filter(pk=run_id).first() if run_id else None
        return obj._latest_run

    @admin.display(description="latest run")
    def latest_run(self, obj) -> str:
        run = self._latest(obj)
        if run is None:
            return "never synced"
        return _admin_link(run, f"{run.started_at:%Y-%m-%d %H:%M} {run.mode} {run.status}")

    @admin.display(description="counts")
    def latest_counts(self, obj) -> str:
        run = self._latest(obj)
        return _counts_summary(run.counts) if run else "-"

    @admin.display(description="errors")
    def latest_errors(self, obj) -> str:
        run = self._latest(obj)
        if run is None or not run.errors:
            return "-"
        more = f" (+{len(run.errors) - 1} more)" if len(run.errors) > 1 else ""
        return f"{run.errors[0][:200]}{more}"

    @admin.display(description="recent runs")
    def recent_runs(self, obj) -> str:
        if obj.pk is None:
            return "-"
        runs = DirectorySyncRun.objects.filter(directory=obj)[:RECENT_RUNS]
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((_admin_link(run, run.pk), f"{run.started_at:%Y-%m-%d %H:%M:%S}", f"{run.mode} {run.status}",
              _counts_summary(run.counts), "; ".join(run.errors)[:300] or "-") for run in runs),
        )
        return format_html(
            "<table><thead><tr><th>run</th><th>started</th><th>mode, status</th><th>counts</th><th>errors</th></tr>"
            "</thead><tbody>{}</tbody></table>", rows or format_html("<tr><td colspan=5>no runs yet</td></tr>"),
        )

    @admin.action(description="Sync now (incremental)", permissions=["change"])
    def sync_incremental(self, request, queryset) -> None:
        self._enqueue(request, queryset, full=False)

    @admin.action(description="Full sync", permissions=["change"])
    def sync_full(self, request, queryset) -> None:
        self._enqueue(request, queryset, full=True)

    def _enqueue(self, request, queryset, *, full: bool) -> None:
        queued, skipped = [], []
        for directory in queryset:
            if not directory.enabled:
                skipped.append(directory.key)
                continue
            try:
                enqueue_directory_sync(directory=directory, full=full)
            except (DirectoryUnavailable, DirectoryConfigError) as error:
                # Without a broker the task runs inline, so its failure surfaces here (the run is recorded).
                self.message_user(request, f"{directory.key}: the sync failed: {error}", level=messages.ERROR)
                continue
            queued.append(directory.key)
        if queued:
            kind = "full" if full else "incremental"
            self.message_user(request, f"Started a {kind} sync of {', '.join(queued)} (a worker runs it; "
                                       "without a broker it ran now). Its run is listed on the directory's page.")
        if skipped:
            self.message_user(request, f"Not queued, disabled: {', '.join(skipped)}.", level=messages.WARNING)

    def save_model(self, request, obj, form, change) -> None:
        before = Directory.objects.filter(pk=obj.pk).first() if change else None
        super().save_model(request, obj, form, change)
        if before is None:
            directory_admin_change_record(directory=obj, actor=request.user.get_username(), action="added")
            return
        changes = {
            name: (getattr(before, name), getattr(obj, name))
            for name in form.changed_data
            if getattr(before, name) != getattr(obj, name)
        }
        if changes:
            directory_admin_change_record(directory=obj, actor=request.user.get_username(), action="changed", changes=changes)
        if "enabled" in changes:
            # As directory_create does: a mapping that matches in every enabled directory now
            # matches in more or fewer; a key now found twice must turn ambiguous (nobody's) at once.
            identities_remap_for_directory(directory=obj)

    def delete_model(self, request, obj) -> None:
        directory_admin_change_record(directory=obj, actor=request.user.get_username(), action="deleted")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for directory in queryset:
            directory_admin_change_record(directory=directory, actor=request.user.get_username(), action="deleted")
        super().delete_queryset(request, queryset)


@admin.register(DirectorySyncRun)
class DirectorySyncRunAdmin(ReadOnlyAdmin):
    list_display = ("pk", "directory", "mode", "status", "started_at", "finished_at", "counts_summary", "error_count")
    list_filter = ("directory", "status", "mode")
    list_select_related = ("directory",)
    date_hierarchy = "started_at"
    actions = ("confirm_held",)
    fields = ("directory", "mode", "status", "started_at", "finished_at", "confirms", "counts_json", "changes_json", "errors_json")
    readonly_fields = fields

    @admin.display(description="counts")
    def counts_summary(self, obj) -> str:
        return _counts_summary(obj.counts)

    @admin.display(description="errors")
    def error_count(self, obj) -> int:
        return len(obj.errors)

    @admin.display(description="counts")
    def counts_json(self, obj) -> str:
        return _pretty_json(obj.counts)

    @admin.display(description="changes (who gains and loses what)")
    def changes_json(self, obj) -> str:
        return _pretty_json(obj.changes)

    @admin.display(description="errors")
    def errors_json(self, obj) -> str:
        return _pretty_json(obj.errors)

    def has_confirm_permission(self, request) -> bool:
        # Confirming applies removals: the same right as editing the directory.
        return request.user.has_perm("access.change_directory")

    @admin.action(description="Confirm held run (apply its removals with a fresh full read)", permissions=["confirm"])
    def confirm_held(self, request, queryset) -> None:
        for held in queryset.select_related("directory"):
            try:
                run = directory_sync_confirm(run_id=held.pk, actor=request.user.get_username())
            except SyncNotConfirmable as error:
                self.message_user(request, str(error), level=messages.ERROR)
                continue
            except (DirectoryUnavailable, DirectoryConfigError) as error:
                self.message_user(request, f"{held.directory.key}: run {held.pk} not confirmed, the directory "
                                           f"could not be read: {error}", level=messages.ERROR)
                continue
            if run.status == DirectorySyncRun.Status.SUCCEEDED:
                self.message_user(request, f"Run {held.pk} confirmed: run {run.pk} applied it ({_counts_summary(run.counts)}).")
            else:
                self.message_user(request, f"Run {held.pk}: the fresh read (run {run.pk}) ended {run.status}; "
                                           "it would remove more than the held run showed.", level=messages.WARNING)


@admin.register(DirectoryUser)
class DirectoryUserAdmin(ReadOnlyAdmin):
    list_display = ("username", "display_name", "email", "directory", "enabled", "deleted_at")
    list_filter = ("directory", "enabled")
    search_fields = ("username", "display_name", "email", "upn", "dn")
    list_select_related = ("directory",)
    fields = ("directory", "username", "display_name", "email", "upn", "dn", "external_id", "sid", "enabled",
              "deleted_at", "changed", "directory_groups", "effective_access")
    readonly_fields = fields

    @admin.display(description="groups from this entry (chain of nested groups)")
    def directory_groups(self, obj) -> str:
        entry = next((entry for entry in directory_entries_for(username=obj.username) if entry.row.pk == obj.pk), None)
        status = entry.status if entry else "unknown"
        chains = directory_group_chains(directory_user=obj)
        lines = [format_html("<li>{} &rarr; {}</li>", obj.username, chain_html(chain))
                 for chain in sorted(chains.values(), key=lambda chain: (chain.group.name.casefold(), len(chain.groups)))]
        lines += [format_html("<li>{}: in the closure, but no stored chain reaches it (the next sync recomputes it)</li>",
                              _admin_link(group, group.name))
                  for group in directory_closure_without_chain(directory_user=obj, chains=chains)]
        notes = {
            "active": "These count: the directory resolver gives user:{} and group:&lt;cn&gt; for each.",
            "disabled": "Disabled in the directory: this account gets no principals at all.",
            "deleted": "Deleted from the directory: this account gets no principals at all.",
            "stale": "The directory is past its grace period without a successful sync: these do not count now "
                     "(public only).",
        }
        note = format_html(notes.get(status, "{}"), obj.username_key)
        return format_html("<p>{}</p><ul>{}</ul>", note, format_html_join("", "{}", ((line,) for line in lines))
                           if lines else format_html("<li>in no group</li>"))

    @admin.display(description="effective access of the account")
    def effective_access(self, obj) -> str:
        model = get_user_model()
        account = next((user for user in model._default_manager.filter(**{f"{model.USERNAME_FIELD}__iexact": obj.username})
                        if user.get_username().casefold() == obj.username_key), None)
        if account is None:
            return "No Django account yet (created at the first sign-in)."
        principals = ", ".join(sorted(principals_for(account))) or "none: sees nothing"
        url = _permissions_url("effective_access", username=account.get_username())
        link = format_html(' <a href="{}">Why? (effective access)</a>', url) if url else ""
        return format_html("principals as the configured resolver gives them: {}{}", principals, link)


@admin.register(DirectoryGroup)
class DirectoryGroupAdmin(ReadOnlyAdmin):
    list_display = ("name", "directory", "account_name", "direct_users", "direct_groups")
    list_filter = ("directory",)
    search_fields = ("name", "account_name", "dn")
    list_select_related = ("directory",)
    fields = ("directory", "name", "account_name", "dn", "external_id", "sid", "changed", "members", "parents")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            user_count=Count("user_edges", distinct=True), group_count=Count("child_edges", distinct=True)
        )

    @admin.display(description="direct users", ordering="user_count")
    def direct_users(self, obj) -> int:
        return obj.user_count

    @admin.display(description="direct groups", ordering="group_count")
    def direct_groups(self, obj) -> int:
        return obj.group_count

    @admin.display(description="direct members")
    def members(self, obj) -> str:
        users = DirectoryUser.objects.filter(group_edges__group=obj).order_by("username_key")
        groups = DirectoryGroup.objects.filter(parent_edges__parent=obj).order_by("name")
        total_users, total_groups = users.count(), groups.count()
        transitive = obj.memberships.count()
        items = [_admin_link(group, f"group {group.name}") for group in groups[:MEMBERS_LISTED]]
        items += [_admin_link(user, f"user {user.username}") for user in users[:MEMBERS_LISTED]]
        more = total_users + total_groups - len(items)
        return format_html(
            "<p>{} users and {} groups directly; {} users in all through nested groups.</p><ul>{}</ul>{}",
            total_users, total_groups, transitive, format_html_join("", "<li>{}</li>", ((item,) for item in items)),
            format_html("<p>and {} more</p>", more) if more > 0 else "",
        )

    @admin.display(description="member of (direct parents)")
    def parents(self, obj) -> str:
        parents = DirectoryGroup.objects.filter(child_edges__child=obj).order_by("name")
        return format_html_join(", ", "{}", ((_admin_link(group, group.name),) for group in parents)) or "-"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "kind", "directory", "actor", "summary")
    list_filter = ("kind", "directory", "at")
    search_fields = ("summary", "actor")
    date_hierarchy = "at"
    list_select_related = ("directory",)
    fields = ("at", "kind", "directory", "actor", "summary", "details_json")
    readonly_fields = fields

    @admin.display(description="details")
    def details_json(self, obj) -> str:
        return _pretty_json(obj.details)
