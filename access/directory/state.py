"""From a read of the directory to the stored tables: merge, compare, write.

``plan_build`` loads what the database holds for a directory, lays the read over it (replacing it
for a full read; for an incremental one, updating what changed and dropping what the id listing no
longer has), resolves member DNs to ids, recomputes the membership closure and compares: the
``Plan`` says what would be added, changed and removed, so the caller can hold an implausible one
before anything is written. ``plan_apply`` writes it; the caller wraps both in one transaction.

Users who leave the directory keep a row marked deleted (``deleted_at``), without edges or
memberships: a Django account of that name then sees nothing, not ``public`` (see the resolver).
A later user with the same username in the same directory replaces that marker.
"""
from dataclasses import dataclass, field, fields

from access.directory.closure import membership_closure
from access.directory.reading import Reading
from access.directory.schema import GroupRecord, UserRecord, dn_key
from access.models import (
    Directory,
    DirectoryGroup,
    DirectoryGroupEdge,
    DirectoryMembership,
    DirectoryUser,
    DirectoryUserEdge,
)

_BATCH = 2000
_USER_FIELDS = [f.name for f in fields(UserRecord) if f.name != "external_id"]
_GROUP_FIELDS = [f.name for f in fields(GroupRecord) if f.name not in ("external_id", "member_dns")]
Pair = tuple[str, str]


@dataclass
class Plan:
    users: dict[str, UserRecord]  # the directory's users after this sync, by external id
    groups: dict[str, GroupRecord]
    user_rows: dict[str, DirectoryUser]  # stored rows (deleted markers included), by external id
    group_rows: dict[str, DirectoryGroup]
    user_edges_now: dict[Pair, int]  # (group, user) -> row id
    user_edges_next: set[Pair]
    group_edges_now: dict[Pair, int]  # (parent, child) -> row id
    group_edges_next: set[Pair]
    closure_now: dict[Pair, int]  # (user, group) -> row id
    closure_next: set[Pair]
    unresolved_members: int = 0
    users_gone: list[str] = field(default_factory=list)
    users_disabled: list[str] = field(default_factory=list)

    @property
    def live_users_before(self) -> int:
        return sum(1 for row in self.user_rows.values() if row.deleted_at is None)

    @property
    def memberships_added(self) -> set[Pair]:
        return self.closure_next - self.closure_now.keys()

    @property
    def memberships_removed(self) -> set[Pair]:
        return self.closure_now.keys() - self.closure_next


def _user_record(row: DirectoryUser) -> UserRecord:
    return UserRecord(external_id=row.external_id, **{name: getattr(row, name) for name in _USER_FIELDS})


def _group_record(row: DirectoryGroup) -> GroupRecord:
    return GroupRecord(external_id=row.external_id, **{name: getattr(row, name) for name in _GROUP_FIELDS})


def plan_build(*, directory: Directory, reading: Reading) -> Plan:
    user_rows = {row.external_id: row for row in DirectoryUser.objects.filter(directory=directory)}
    group_rows = {row.external_id: row for row in DirectoryGroup.objects.filter(directory=directory)}
    user_edges_now = {
        (g, u): pk
        for pk, g, u in DirectoryUserEdge.objects.filter(group__directory=directory).values_list(
            "pk", "group__external_id", "user__external_id"
        )
    }
    group_edges_now = {
        (p, c): pk
        for pk, p, c in DirectoryGroupEdge.objects.filter(parent__directory=directory).values_list(
            "pk", "parent__external_id", "child__external_id"
        )
    }
    closure_now = {
        (u, g): pk
        for pk, u, g in DirectoryMembership.objects.filter(group__directory=directory).values_list(
            "pk", "user__external_id", "group__external_id"
        )
    }
    if reading.full:
        users = {record.external_id: record for record in reading.users}
        groups = {record.external_id: record for record in reading.groups}
        to_resolve = list(groups.values())
        user_members: dict[str, set[str]] = {}
        group_members: dict[str, set[str]] = {}
    else:
        users = {ext: _user_record(row) for ext, row in user_rows.items() if row.deleted_at is None}
        groups = {ext: _group_record(row) for ext, row in group_rows.items()}
        users.update((record.external_id, record) for record in reading.users)
        groups.update((record.external_id, record) for record in reading.groups)
        # Gone from the listing: deleted, or moved out of the base DN or filter.
        users = {ext: record for ext, record in users.items() if ext in reading.listed_user_ids}
        groups = {ext: record for ext, record in groups.items() if ext in reading.listed_group_ids}
        to_resolve = [record for record in reading.groups if record.external_id in groups]
        changed = {record.external_id for record in to_resolve}
        user_members, group_members = {}, {}
        for g, u in user_edges_now:
            if g in groups and g not in changed and u in users:
                user_members.setdefault(g, set()).add(u)
        for p, c in group_edges_now:
            if p in groups and p not in changed and c in groups:
                group_members.setdefault(p, set()).add(c)
    unresolved = _resolve_members(to_resolve, users, groups, user_members, group_members)
    enabled = {ext for ext, record in users.items() if record.enabled}
    plan = Plan(
        users=users,
        groups=groups,
        user_rows=user_rows,
        group_rows=group_rows,
        user_edges_now=user_edges_now,
        user_edges_next={(g, u) for g, members in user_members.items() for u in members},
        group_edges_now=group_edges_now,
        group_edges_next={(p, c) for p, members in group_members.items() for c in members},
        closure_now=closure_now,
        closure_next=membership_closure(user_members=user_members, group_members=group_members, enabled_users=enabled),
        unresolved_members=unresolved,
    )
    plan.users_gone = [ext for ext, row in user_rows.items() if row.deleted_at is None and ext not in users]
    plan.users_disabled = [
        ext for ext, record in users.items()
        if not record.enabled and ext in user_rows and user_rows[ext].enabled and user_rows[ext].deleted_at is None
    ]
    return plan


def _resolve_members(to_resolve, users, groups, user_members, group_members) -> int:
    """Fill the member maps of ``to_resolve`` from their member DNs; returns how many named nothing known."""
    by_dn: dict[str, tuple[str, str]] = {dn_key(record.dn): ("user", ext) for ext, record in users.items()}
    by_dn.update((dn_key(record.dn), ("group", ext)) for ext, record in groups.items())
    unresolved = 0
    for group in to_resolve:
        for member_dn in group.member_dns:
            found = by_dn.get(dn_key(member_dn))
            if found is None:
                unresolved += 1  # outside the base DNs or filters, or names no entry
            elif found[0] == "user":
                user_members.setdefault(group.external_id, set()).add(found[1])
            elif found[1] != group.external_id:  # a group listing itself adds nothing
                group_members.setdefault(group.external_id, set()).add(found[1])
    return unresolved


def _user_values(record: UserRecord) -> dict:
    values = {name: getattr(record, name) for name in _USER_FIELDS}
    values.update(dn_key=dn_key(record.dn), username_key=record.username.casefold(), deleted_at=None)
    return values


def _group_values(record: GroupRecord) -> dict:
    values = {name: getattr(record, name) for name in _GROUP_FIELDS}
    values["dn_key"] = dn_key(record.dn)
    return values


def _changed(row, values: dict) -> bool:
    return any(getattr(row, name) != value for name, value in values.items())


def _new_and_changed(model, directory: Directory, records: dict, rows: dict, values_of) -> tuple[list, list]:
    """Rows to create for records not stored yet, and stored rows updated in place where they differ."""
    new, changed = [], []
    for ext, record in records.items():
        values = values_of(record)
        row = rows.get(ext)
        if row is None:
            new.append(model(directory=directory, external_id=ext, **values))
        elif _changed(row, values):
            for name, value in values.items():
                setattr(row, name, value)
            changed.append(row)
    return new, changed


def plan_apply(*, directory: Directory, plan: Plan, now) -> dict[str, int]:
    """Write ``plan``; returns counts. Run it inside the transaction that built the plan."""
    counts = {"users_added": 0, "users_updated": 0, "groups_added": 0, "groups_updated": 0}
    new_users, changed_users = _new_and_changed(DirectoryUser, directory, plan.users, plan.user_rows, _user_values)
    # A new user taking the username of one who left replaces the left one's marker.
    live_names = {record.username.casefold() for record in plan.users.values()}
    stale = [row.pk for row in plan.user_rows.values() if row.deleted_at is not None and row.username_key in live_names
             and row.external_id not in plan.users]
    _delete(DirectoryUser.objects, stale)
    DirectoryUser.objects.bulk_create(new_users, batch_size=_BATCH)
    DirectoryUser.objects.bulk_update(changed_users, [*_USER_FIELDS, "dn_key", "username_key", "deleted_at"], batch_size=_BATCH)
    DirectoryUser.objects.filter(directory=directory, external_id__in=plan.users_gone).update(deleted_at=now)
    counts.update(users_added=len(new_users), users_updated=len(changed_users))

    new_groups, changed_groups = _new_and_changed(
        DirectoryGroup, directory, plan.groups, plan.group_rows, _group_values
    )
    DirectoryGroup.objects.bulk_create(new_groups, batch_size=_BATCH)
    DirectoryGroup.objects.bulk_update(changed_groups, [*_GROUP_FIELDS, "dn_key"], batch_size=_BATCH)
    counts.update(groups_added=len(new_groups), groups_updated=len(changed_groups))

    user_pk = dict(DirectoryUser.objects.filter(directory=directory, deleted_at=None).values_list("external_id", "pk"))
    group_pk = dict(DirectoryGroup.objects.filter(directory=directory).values_list("external_id", "pk"))
    _delete(DirectoryMembership.objects, [pk for pair, pk in plan.closure_now.items() if pair not in plan.closure_next])
    _delete(DirectoryUserEdge.objects, [pk for pair, pk in plan.user_edges_now.items() if pair not in plan.user_edges_next])
    _delete(DirectoryGroupEdge.objects, [pk for pair, pk in plan.group_edges_now.items() if pair not in plan.group_edges_next])
    gone_groups = [row.pk for ext, row in plan.group_rows.items() if ext not in plan.groups]
    _delete(DirectoryGroup.objects, gone_groups)
    DirectoryMembership.objects.bulk_create(
        [DirectoryMembership(user_id=user_pk[u], group_id=group_pk[g]) for u, g in plan.memberships_added],
        batch_size=_BATCH,
    )
    DirectoryUserEdge.objects.bulk_create(
        [DirectoryUserEdge(group_id=group_pk[g], user_id=user_pk[u]) for g, u in plan.user_edges_next - plan.user_edges_now.keys()],
        batch_size=_BATCH,
    )
    DirectoryGroupEdge.objects.bulk_create(
        [DirectoryGroupEdge(parent_id=group_pk[p], child_id=group_pk[c]) for p, c in plan.group_edges_next - plan.group_edges_now.keys()],
        batch_size=_BATCH,
    )
    counts["groups_removed"] = len(gone_groups)
    return counts


def _delete(manager, pks: list[int]) -> None:
    for start in range(0, len(pks), _BATCH):
        manager.filter(pk__in=pks[start : start + _BATCH]).delete()
