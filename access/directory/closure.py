"""Transitive group membership: which groups each user is in through any chain of nested groups.

Directories allow cycles (group A lists group B, which lists A; AD permits it, OpenLDAP does not
check): a walk that remembers where it has been ends anyway, and everyone in a cycle is in every
group of it. Plain Python over external ids, so the same code serves a full and an incremental
sync and is tested without a server.
"""
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping


def group_ancestors(group_members: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """For each group named as a member: itself and every group containing it, directly or not."""
    parents: dict[str, set[str]] = defaultdict(set)
    for parent, children in group_members.items():
        for child in children:
            parents[child].add(parent)
    ancestors: dict[str, set[str]] = {}
    for start in set(parents) | set(group_members):
        seen = {start}
        queue = deque([start])
        while queue:
            for parent in parents.get(queue.popleft(), ()):
                if parent not in seen:
                    seen.add(parent)
                    queue.append(parent)
        ancestors[start] = seen
    return ancestors


def membership_closure(
    *,
    user_members: Mapping[str, Iterable[str]],
    group_members: Mapping[str, Iterable[str]],
    enabled_users: set[str],
) -> set[tuple[str, str]]:
    """(user, group) for every group an enabled user is in, through any chain.

    ``user_members``: group -> the users it lists; ``group_members``: group -> the groups it lists.
    Disabled users get no rows: they lose their groups at the sync that sees them disabled.
    """
    ancestors = group_ancestors(group_members)
    closure: set[tuple[str, str]] = set()
    for group, users in user_members.items():
        reach = ancestors.get(group, {group})
        for user in users:
            if user in enabled_users:
                closure.update((user, each) for each in reach)
    return closure
