"""Directory reads: a user's principals from the synced tables.

``directory_principals`` is what ``access.resolvers.DirectoryPrincipalResolver`` returns. It
reads the user's directory rows, their directories' last successful sync and their transitive
groups in one query (a join of DirectoryUser, Directory, DirectoryMembership and DirectoryGroup on
an indexed casefolded username), then applies the rules below, in this order:

1. Unknown to every directory: ``{public}``. The account exists in Django (a local superuser, a
   user the directory has not been synced for yet) but nothing vouches for their groups.
2. Disabled, or deleted from a directory (its row is kept as a marker): nothing at all, not even
   ``public``; a directory that says "this person no longer works here" wins over any other.
3. Every directory they are in was last synced longer ago than its grace period (the directory has
   been unreachable or its syncs held): ``{public}`` only, until a sync succeeds again.
4. Otherwise ``public``, ``user:<username>`` and ``group:<cn>`` for every group they are in
   through any chain of nested groups, from the directories still within their grace period.
"""
from datetime import datetime

from django.utils import timezone

from access.models import DirectoryUser
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
        "directory__last_success_at",
        "directory__grace_period",
        "memberships__group__name",
    )
    now = current_time()
    known = False
    fresh = False
    groups: set[str] = set()
    for _pk, enabled, deleted_at, last_success_at, grace_period, group_name in rows:
        known = True
        if not enabled or deleted_at is not None:
            return frozenset()
        if last_success_at is None or now - last_success_at > grace_period:
            continue
        fresh = True
        if group_name:
            groups.add(f"group:{group_name}")
    if not known or not fresh:
        return frozenset({PUBLIC})
    return frozenset({PUBLIC, f"user:{username}", *groups})
