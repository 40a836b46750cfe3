"""Directory reads: a user's principals from the synced tables; who may sign in.

``directory_principals`` is what ``access.resolvers.DirectoryPrincipalResolver`` returns. It
reads the user's directory rows, their directories' last successful sync and their transitive
groups in one query (a join of DirectoryUser, Directory, DirectoryMembership and DirectoryGroup on
an indexed casefolded username), then applies the rules below, in this order:

1. Unknown to every directory: ``{public}``. The account exists in Django (a local superuser, a
   user the directory has not been synced for yet) but nothing vouches for their groups.
2. Disabled, or deleted from a directory (its row is kept as a marker): nothing at all, not even
   ``public``; a directory that says "this person no longer works here" wins over any other.
3. Every directory they are in was last synced longer ago than its grace period (the directory has
   been unreachable or its syncs held), or was switched off by an admin: ``{public}`` only, until a
   sync succeeds again (or it is switched back on).
4. Otherwise ``public``, ``user:<username>`` and ``group:<cn>`` for every group they are in
   through any chain of nested groups, from the directories still within their grace period; and,
   in a second query (indexed on both foreign keys), the principal of every mapped source identity
   (``access.mapping``) whose directory user is one of theirs in such a directory or whose directory
   group is one of those groups. Unmapped and ambiguous identities are nobody's.

``directory_usernames`` lists who a synced directory vouches for (``manage.py demo_setup``).

``directory_sign_in_users`` answers sign-in (``access.authentication``) by the same match: only a
name the last sync knows and has enabled may sign in; rule 2 refuses it too. A user whose
directories are past their grace period may still sign in (and sees ``public`` only).
"""
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from access.models import Directory, DirectoryUser, IdentityMapping, SourceIdentity
from access.principals import PUBLIC


def current_time() -> datetime:
    """Now; the grace-period tests move this clock instead of sleeping."""
    return timezone.now()


def directory_principals(*, username: str) -> frozenset[str]:
    """The principals of the Django user named ``username`` according to the synced directories."""
    rows = DirectoryUser.objects.filter(username_key=username.casefold()).values_list(
        "pk",
        "enabled",
        "deleted_at",
        "directory__enabled",
        "directory__last_success_at",
        "directory__grace_period",
        "memberships__group_id",
        "memberships__group__name",
    )
    now = current_time()
    known = False
    groups: set[str] = set()
    fresh_users: set[int] = set()
    fresh_groups: set[int] = set()
    for pk, enabled, deleted_at, directory_enabled, last_success_at, grace_period, group_id, group_name in rows:
        known = True
        if not enabled or deleted_at is not None:
            return frozenset()
        # A directory an admin switched off vouches for nobody's groups any more (as for sign-in).
        if not directory_enabled or last_success_at is None or now - last_success_at > grace_period:
            continue
        fresh_users.add(pk)
        if group_name:
            groups.add(f"group:{group_name}")
            fresh_groups.add(group_id)
    if not known or not fresh_users:
        return frozenset({PUBLIC})
    mapped = SourceIdentity.objects.filter(
        Q(directory_user_id__in=fresh_users) | Q(directory_group_id__in=fresh_groups),
        status=SourceIdentity.Status.MAPPED,
    ).values_list("principal", flat=True)
    return frozenset({PUBLIC, f"user:{username}", *groups, *mapped})


def identity_mapping_exists(*, source_key: str) -> bool:
    """Whether ``source_key``'s principals are scoped to it (it has a mapping)."""
    return IdentityMapping.objects.filter(source_key=source_key).exists()


def identity_mapping_get(*, source_key: str) -> IdentityMapping | None:
    """How ``source_key``'s identities map, or None: its principals name the company namespace."""
    return IdentityMapping.objects.filter(source_key=source_key).select_related("directory").first()


def source_identities_list(*, source_key: str | None = None, statuses: list[str] | None = None) -> QuerySet[SourceIdentity]:
    """Source identities (one source's, or all), optionally only those in ``statuses``, by source and principal."""
    identities = SourceIdentity.objects.select_related("directory_user__directory", "directory_group__directory")
    if source_key is not None:
        identities = identities.filter(source_key=source_key)
    if statuses:
        identities = identities.filter(status__in=statuses)
    return identities.order_by("source_key", "principal")


def directory_display_name(*, username: str) -> str:
    """The name the directory shows for ``username`` (displayName, in its own order: 田中 花子), or ""."""
    return (
        DirectoryUser.objects.filter(username_key=username.casefold(), enabled=True, deleted_at__isnull=True)
        .exclude(display_name="")
        .order_by("directory_id")
        .values_list("display_name", flat=True)
        .first()
        or ""
    )


def directory_usernames(*, key: str) -> list[str] | None:
    """The enabled users directory ``key`` had at its last successful sync, sorted; None if it never synced."""
    directory = Directory.objects.filter(key=key, last_success_at__isnull=False).first()
    if directory is None:
        return None
    rows = DirectoryUser.objects.filter(directory=directory, enabled=True, deleted_at__isnull=True)
    return sorted(rows.values_list("username", flat=True))


class SignInRefused(Exception):
    """A sign-in the directory does not vouch for; ``reason`` is a short code for the audit log."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def directory_sign_in_users(*, username: str) -> list[DirectoryUser]:
    """The synced rows someone signing in as ``username`` may bind as, enabled directories first by pk.

    Refused (``SignInRefused``) when no sync knows the name, when any directory has it disabled or
    deleted (the resolver would give them nothing: rule 2 above), or when only disabled
    ``Directory`` configurations know it. Matched on the casefolded name, as the resolver matches.
    """
    rows = list(
        DirectoryUser.objects.filter(username_key=username.strip().casefold())
        .select_related("directory")
        .order_by("directory__pk")
    )
    if not rows:
        raise SignInRefused("unknown", f"{username!r} is not in any synced directory")
    if any(not row.enabled or row.deleted_at is not None for row in rows):
        raise SignInRefused("disabled", f"{username!r} is disabled or deleted in the directory")
    usable = [row for row in rows if row.directory.enabled]
    if not usable:
        raise SignInRefused("directory_disabled", f"{username!r} is only in directories that are switched off")
    return usable
