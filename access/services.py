"""Directory writes: register a directory, sync it, confirm a held sync; accounts and audit of sign-ins.

A sync reads the directory first, with no transaction open (a read of a large directory takes
seconds to minutes), then, in one transaction holding the directory's row, compares the read with
what is stored and applies the difference. A failed read changes nothing: users keep their last
synced groups, and the grace period (``Directory.grace_period``, enforced by the resolver) runs
from the last sync that succeeded.

The implausible-change guard: a sync that would take away more than ``max_removal_share`` of all
users (deleted or newly disabled) or of all memberships is not applied. Its run is recorded as
``held`` with what it would have changed, an audit event says so, and nothing is written; a
broken filter or an emptied OU therefore cannot strip everyone's access at once. An admin who
confirms (``directory_sync_confirm``, or ``manage.py sync_directory KEY --confirm RUN``) lets a new
full read apply removals up to what the held run showed; a read that would remove even more is
held again. A held sync does not count as a success, so the grace period keeps running.

A run stays ``running`` while its process holds the run's lock (``access.liveness``). A worker
killed mid-sync leaves its run ``running`` with the lock free; the next sync of the directory marks
it failed ("abandoned"). Overlapping syncs of one directory are allowed, and one never marks
another that is still alive.

Sign-in (``access.authentication``) gives a directory user a Django account named as the directory
names them (``directory_account_get_or_create``): no password, no groups, no staff flags; access
comes from the resolver. A local account of the same name (one with a usable password) is never
taken over by a directory sign-in. Every sign-in and refused sign-in is an audit event
(``sign_in_record``), with the name typed but never the password.

A sync that adds, changes or removes users or groups remaps the source identities matched against
the directory (``access.mapping``) in its own transaction.
"""
import logging

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from access.directory.client import ConnectionSettings, DirectoryClient, DirectoryConfigError, DirectoryUnavailable
from access.directory.reading import Reading, directory_read, newer_cursor
from access.directory.schema import AD, OPENLDAP
from access.directory.state import Plan, plan_apply, plan_build
from access.liveness import run_is_alive, run_lock_try
from access.mapping import identities_remap_for_directory
from access.models import AuditEvent, Directory, DirectorySyncRun, DirectoryUser
from access.selectors import SignInRefused

logger = logging.getLogger(__name__)
# Changes listed in a run's record and its audit event; the counts are always complete.
CHANGES_LISTED = 200
ABANDONED = "abandoned: the process running this sync stopped before it finished"
# Counts of a sync that mean a source identity may now match another entry (memberships do not).
_ENTRIES_CHANGED = ("users_added", "users_updated", "users_removed", "groups_added", "groups_updated", "groups_removed")


class SyncNotConfirmable(ValueError):
    """The run is not a held run that can still be confirmed."""


def directory_create(*, key: str, kind: str, server_urls: str, user_base_dn: str, group_base_dn: str, **options) -> Directory:
    """Register (or update) a directory after checking its configuration can work."""
    if kind not in (OPENLDAP, AD):
        raise DirectoryConfigError(f"kind must be {OPENLDAP!r} or {AD!r}, got {kind!r}")
    directory = Directory.objects.filter(key=key).first() or Directory(key=key)
    for name, value in {"kind": kind, "server_urls": server_urls, "user_base_dn": user_base_dn,
                        "group_base_dn": group_base_dn, **options}.items():
        setattr(directory, name, value)
    directory.full_clean()  # before saving: a bad value is refused, not stored
    switched = directory.pk is not None and Directory.objects.filter(pk=directory.pk).exclude(enabled=directory.enabled).exists()
    directory.save()
    if switched:  # mappings that match in every enabled directory now match in more or fewer
        identities_remap_for_directory(directory=directory)
    return directory


def directory_sync(*, directory: Directory, full: bool = False, connection=None, confirms: DirectorySyncRun | None = None) -> DirectorySyncRun:
    """Sync ``directory`` now; returns the run (succeeded, held, skipped or failed).

    Incremental unless ``full``, or there is no cursor yet, or the AD cursor came from another
    domain controller. Raises ``DirectoryUnavailable`` (after recording the failed run) when the
    directory cannot be read, so a task can retry; ``DirectoryConfigError`` when it cannot work.
    """
    directory.refresh_from_db()  # the cursor as the last sync left it
    mode = DirectorySyncRun.Mode.FULL if full or not directory.cursor else DirectorySyncRun.Mode.INCREMENTAL
    with transaction.atomic():
        run = DirectorySyncRun.objects.create(directory=directory, mode=mode, confirms=confirms)
        # Locked before the run is committed: no other sync can see it running and unlocked.
        release = run_lock_try(run.pk)
    try:
        _abandoned_runs_fail(directory, current=run)
        return _sync(directory, run, mode, connection, confirms)
    finally:
        if release is not None:
            release()


def _abandoned_runs_fail(directory: Directory, *, current: DirectorySyncRun) -> None:
    """Mark failed the runs of ``directory`` still ``running`` whose process has gone (``access.liveness``)."""
    stale = DirectorySyncRun.objects.filter(directory=directory, status=DirectorySyncRun.Status.RUNNING).exclude(pk=current.pk)
    for run_id in stale.values_list("pk", flat=True):
        if run_is_alive(run_id):
            continue  # an overlapping sync, still reading or applying
        # Conditional: the run cannot finish now (its lock was free), but it may have finished already.
        DirectorySyncRun.objects.filter(pk=run_id, status=DirectorySyncRun.Status.RUNNING).update(
            status=DirectorySyncRun.Status.FAILED, finished_at=timezone.now(), errors=[ABANDONED],
        )
        logger.warning("directory %s: sync run %s was abandoned by a process that stopped", directory.key, run_id)


def _sync(directory: Directory, run: DirectorySyncRun, mode: str, connection, confirms) -> DirectorySyncRun:
    read_at = timezone.now()
    try:
        settings = ConnectionSettings.for_directory(directory)
        with DirectoryClient(settings, connection=connection) as client:
            reading = directory_read(directory=directory, client=client, full=mode == DirectorySyncRun.Mode.FULL)
            if reading.cursor_server != directory.cursor_server and mode == DirectorySyncRun.Mode.INCREMENTAL:
                # Another domain controller answered: its USNs are not ours. Read everything instead.
                run.mode = DirectorySyncRun.Mode.FULL
                reading = directory_read(directory=directory, client=client, full=True)
        run = _apply(directory, run, reading, read_at, confirms)
        directory.refresh_from_db()  # the caller's copy shows the new cursor and last success
        return run
    except (DirectoryUnavailable, DirectoryConfigError) as error:
        _finish(run, DirectorySyncRun.Status.FAILED, errors=[str(error)])
        logger.warning("directory %s was not synced: %s", directory.key, error)
        raise
    except Exception as error:
        _finish(run, DirectorySyncRun.Status.FAILED, errors=[f"sync failed: {error}"])
        logger.exception("sync of directory %s failed", directory.key)
        raise


def _apply(directory: Directory, run: DirectorySyncRun, reading: Reading, read_at, confirms) -> DirectorySyncRun:
    with transaction.atomic():
        directory = Directory.objects.select_for_update().get(pk=directory.pk)
        if directory.last_read_at and directory.last_read_at > read_at:
            _finish(run, DirectorySyncRun.Status.SKIPPED, errors=["a newer read of the directory was applied meanwhile"])
            return run
        plan = plan_build(directory=directory, reading=reading)
        counts = _plan_counts(plan, reading)
        changes = _changes(plan)
        if _implausible(directory, plan, confirms):
            _finish(run, DirectorySyncRun.Status.HELD, counts=counts, changes=changes, errors=reading.errors)
            _audit(directory, AuditEvent.Kind.SYNC_HELD, run, counts, changes,
                   f"sync held: it would remove {counts['users_removed']} of {counts['users_before']} users and "
                   f"{counts['memberships_removed']} of {counts['memberships_before']} memberships")
            return run
        now = timezone.now()
        counts.update(plan_apply(directory=directory, plan=plan, now=now))
        if any(counts[name] for name in _ENTRIES_CHANGED):
            # In the same transaction: a user's new email or a deleted group never maps stale.
            identities_remap_for_directory(directory=directory)
        directory.cursor = _cursor_after(directory, reading)
        directory.cursor_server = reading.cursor_server
        directory.last_success_at = now
        directory.last_read_at = read_at
        if reading.full:
            directory.last_full_success_at = now
        directory.save(update_fields=["cursor", "cursor_server", "last_success_at", "last_read_at", "last_full_success_at"])
        _finish(run, DirectorySyncRun.Status.SUCCEEDED, counts=counts, changes=changes, errors=reading.errors)
        if confirms is not None:
            DirectorySyncRun.objects.filter(pk=confirms.pk).update(status=DirectorySyncRun.Status.CONFIRMED)
        if counts["memberships_added"] or counts["memberships_removed"] or counts["users_removed"]:
            _audit(directory, AuditEvent.Kind.SYNC_APPLIED, run, counts, changes,
                   f"{run.mode} sync: {counts['memberships_added']} memberships added, "
                   f"{counts['memberships_removed']} removed, {counts['users_removed']} users removed or disabled")
    return run


def directory_sync_confirm(*, run_id: int, actor: str = "", connection=None) -> DirectorySyncRun:
    """Let the removals a held run showed happen: a fresh full read, applied if it removes no more."""
    held = DirectorySyncRun.objects.select_related("directory").filter(pk=run_id).first()
    if held is None or held.status != DirectorySyncRun.Status.HELD:
        raise SyncNotConfirmable(f"run {run_id} is not a held sync")
    later = DirectorySyncRun.objects.filter(
        directory=held.directory, pk__gt=held.pk,
        status__in=[DirectorySyncRun.Status.SUCCEEDED, DirectorySyncRun.Status.CONFIRMED],
    )
    if later.exists():
        raise SyncNotConfirmable(f"run {run_id} was superseded by a later successful sync; nothing to confirm")
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.SYNC_CONFIRMED, directory=held.directory, actor=actor or "admin",
        summary=f"held sync run {held.pk} confirmed", details={"run": held.pk, "counts": held.counts},
    )
    return directory_sync(directory=held.directory, full=True, connection=connection, confirms=held)


def _implausible(directory: Directory, plan: Plan, confirms: DirectorySyncRun | None) -> bool:
    users_removed = len(plan.users_gone) + len(plan.users_disabled)
    memberships_removed = len(plan.memberships_removed)
    if confirms is not None:
        # An admin accepted removals up to what the held run showed.
        if users_removed <= confirms.counts.get("users_removed", 0) and memberships_removed <= confirms.counts.get(
            "memberships_removed", 0
        ):
            return False
    share = directory.max_removal_share
    users_before, memberships_before = plan.live_users_before, len(plan.closure_now)
    return bool(
        (users_before and users_removed / users_before > share)
        or (memberships_before and memberships_removed / memberships_before > share)
    )


def _cursor_after(directory: Directory, reading: Reading) -> str:
    if reading.full:
        return reading.cursor
    return newer_cursor(directory.kind, directory.cursor, reading.cursor)


def _plan_counts(plan: Plan, reading: Reading) -> dict[str, int]:
    return {
        "users": len(plan.users),
        "users_enabled": sum(1 for record in plan.users.values() if record.enabled),
        "groups": len(plan.groups),
        "memberships": len(plan.closure_next),
        "users_read": len(reading.users),
        "groups_read": len(reading.groups),
        "pages": reading.pages,
        "users_before": plan.live_users_before,
        "memberships_before": len(plan.closure_now),
        "users_removed": len(plan.users_gone) + len(plan.users_disabled),
        "memberships_added": len(plan.memberships_added),
        "memberships_removed": len(plan.memberships_removed),
        "unresolved_members": plan.unresolved_members,
    }


def _changes(plan: Plan) -> dict:
    """Who gains and loses what, by name (capped at CHANGES_LISTED per list)."""

    def username(ext: str) -> str:
        record = plan.users.get(ext)
        return record.username if record else plan.user_rows[ext].username

    def group_name(ext: str) -> str:
        record = plan.groups.get(ext)
        return record.name if record else plan.group_rows[ext].name

    def listed(pairs) -> list[list[str]]:
        return sorted([username(u), group_name(g)] for u, g in pairs)[:CHANGES_LISTED]

    return {
        "memberships_added": listed(plan.memberships_added),
        "memberships_removed": listed(plan.memberships_removed),
        "users_removed": sorted(username(ext) for ext in plan.users_gone)[:CHANGES_LISTED],
        "users_disabled": sorted(username(ext) for ext in plan.users_disabled)[:CHANGES_LISTED],
    }


def _finish(run: DirectorySyncRun, status: str, *, counts=None, changes=None, errors=()) -> None:
    run.status = status
    run.counts = counts or {}
    run.changes = changes or {}
    run.errors = list(errors)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "mode", "counts", "changes", "errors", "finished_at"])


def _audit(directory: Directory, kind: str, run: DirectorySyncRun, counts: dict, changes: dict, summary: str) -> None:
    AuditEvent.objects.create(
        kind=kind, directory=directory, actor="sync", summary=summary[:500],
        details={"run": run.pk, "mode": run.mode, "counts": counts, "changes": changes},
    )


def directory_account_get_or_create(*, directory_user: DirectoryUser, first_name: str | None = None,
                                    last_name: str | None = None, email: str | None = None):
    """The Django account of ``directory_user``, created on first sign-in; names and email given are updated.

    Found by the casefolded name the resolver matches on, so ``Alice`` typed at the sign-in form
    and ``alice`` in the directory are one account. A value left ``None`` keeps what the account
    has (a new account: empty names, the synced email). Raises ``SignInRefused`` when the name
    belongs to a local account (it has a password: a bootstrap admin, say) or to two accounts.
    """
    model = get_user_model()
    found = [
        user for user in model._default_manager.filter(**{f"{model.USERNAME_FIELD}__iexact": directory_user.username})
        if user.get_username().casefold() == directory_user.username_key
    ]
    if len(found) > 1:
        raise SignInRefused("ambiguous", f"several accounts are named {directory_user.username!r}")
    if found and found[0].has_usable_password():
        raise SignInRefused("local_account", f"{directory_user.username!r} is a local account; it signs in with its own password")
    values = {}
    if first_name is not None:
        values["first_name"] = first_name[:150]  # Django's field lengths
    if last_name is not None:
        values["last_name"] = last_name[:150]
    if email or directory_user.email:
        values["email"] = email or directory_user.email
    if not found:
        user = model(**{model.USERNAME_FIELD: directory_user.username}, **values)
        user.set_unusable_password()
        user.save()
        return user
    user = found[0]
    changed = [name for name, value in values.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, values[name])
    if changed:
        user.save(update_fields=changed)
    return user


def sign_in_record(*, username: str, succeeded: bool, method: str, reason: str = "", directory: Directory | None = None,
                   address: str = "") -> AuditEvent:
    """An audit event for one sign-in or refused sign-in (never with the password)."""
    outcome = "signed in" if succeeded else f"sign-in refused ({reason or 'invalid credentials'})"
    return AuditEvent.objects.create(
        kind=AuditEvent.Kind.SIGN_IN if succeeded else AuditEvent.Kind.SIGN_IN_FAILED,
        directory=directory,
        actor=username[:256],
        summary=f"{username[:200]} {outcome} via {method}"[:500],
        details={"method": method, "reason": reason, "address": address},
    )
