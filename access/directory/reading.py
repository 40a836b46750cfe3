"""One read of a directory: everything (full) or what changed since the cursor (incremental).

Incremental reads ask for entries changed since the cursor (``modifyTimestamp>=`` on OpenLDAP,
``uSNChanged>=cursor+1`` on AD). Neither server reports deletions to such a query, so an
incremental read also lists the ids (and nothing else) of every user and group in scope: whatever
the database holds and the listing lacks was deleted or moved out of scope. That keeps "a user
deleted in the directory loses access at the next sync" true for incremental runs too, at the
cost of one id-only paged search per kind (a second per 10,000 entries on a LAN).

A group changed since the cursor is read whole, member list included, so a membership removed in
the directory is seen by the next incremental run. Member DNs are resolved to ids later
(``state.merge``), against every user and group then known.
"""
from dataclasses import dataclass, field

from ldap.filter import escape_filter_chars

from access.directory.client import DirectoryClient
from access.directory.schema import (
    AD,
    ATTRIBUTES,
    GroupRecord,
    InvalidEntry,
    UserRecord,
    external_id,
    group_from_entry,
    user_from_entry,
)


@dataclass
class Reading:
    full: bool
    users: list[UserRecord] = field(default_factory=list)
    groups: list[GroupRecord] = field(default_factory=list)
    # Incremental only: the ids of everything in scope now.
    listed_user_ids: set[str] | None = None
    listed_group_ids: set[str] | None = None
    cursor: str = ""
    cursor_server: str = ""
    errors: list[str] = field(default_factory=list)
    pages: int = 0


def newer_cursor(kind: str, current: str, candidate: str) -> str:
    """The later of two change markers (USNs compare as numbers, GeneralizedTime as text)."""
    if not candidate:
        return current
    if not current:
        return candidate
    if kind == AD:
        return candidate if int(candidate) > int(current) else current
    return max(current, candidate)


def _changed_filter(kind: str, base_filter: str, cursor: str) -> str:
    if kind == AD:
        return f"(&{base_filter}(uSNChanged>={int(cursor) + 1}))"
    # The cursor came from the server; escaped so no value can change the filter's meaning.
    return f"(&{base_filter}(modifyTimestamp>={escape_filter_chars(cursor)}))"


def directory_read(*, directory, client: DirectoryClient, full: bool) -> Reading:
    """Read ``directory`` through a bound ``client``; ``full=False`` needs ``directory.cursor``."""
    kind = directory.kind
    names = ATTRIBUTES[kind]
    user_filter = directory.user_filter or names.user_filter
    group_filter = directory.group_filter or names.group_filter
    reading = Reading(full=full, cursor=directory.cursor if not full else "")
    if kind == AD:
        # USNs are per domain controller: remember which one the cursor belongs to.
        reading.cursor_server = (client.root_dse(["dsServiceName"]).get("dsservicename") or [b""])[0].decode()
    if not full:
        user_filter = _changed_filter(kind, user_filter, directory.cursor)
        group_filter = _changed_filter(kind, group_filter, directory.cursor)
    entries = client.search(directory.user_base_dn, user_filter, names.user_attrs)
    _collect(reading, kind, entries, user_from_entry, reading.users, "user")
    entries = client.search(directory.group_base_dn, group_filter, names.group_attrs)
    _collect(reading, kind, entries, group_from_entry, reading.groups, "group")
    if not full:
        reading.listed_user_ids = _ids(client, kind, directory.user_base_dn, directory.user_filter or names.user_filter)
        reading.listed_group_ids = _ids(client, kind, directory.group_base_dn, directory.group_filter or names.group_filter)
    reading.pages = client.pages
    return reading


def _ids(client: DirectoryClient, kind: str, base: str, filterstr: str) -> set[str]:
    ids = set()
    for dn, attrs in client.search(base, filterstr, [ATTRIBUTES[kind].user_id]):
        try:
            ids.add(external_id(kind, dn, attrs))
        except InvalidEntry:
            continue  # an entry without an id was skipped by the read too
    return ids


def _collect(reading: Reading, kind: str, entries, parse, into: list, label: str) -> None:
    """Parse entries into ``into``, advancing the cursor; an entry that cannot be parsed is reported."""
    for dn, attrs in entries:
        try:
            record = parse(kind, dn, attrs)
        except (InvalidEntry, UnicodeDecodeError) as error:
            reading.errors.append(f"{label} skipped: {error}")
            continue
        into.append(record)
        reading.cursor = newer_cursor(kind, reading.cursor, record.changed)
