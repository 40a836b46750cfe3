"""What each kind of directory calls things, and directory entries turned into user and group records.

OpenLDAP: inetOrgPerson users (uid, mail, cn, displayName), groupOfNames (``member``) and
groupOfUniqueNames (``uniqueMember``) groups, the stable id in the operational ``entryUUID`` and
changes in ``modifyTimestamp``. The memberOf overlay is not needed and not read: membership comes
from the groups' member lists, which every server has, so a server without the overlay (or with a
stale one) gives the same answer.

Active Directory: sAMAccountName, userPrincipalName, objectGUID (16 bytes, shown in the
canonical text form AD tools use, which is the UUID of its little-endian byte layout), objectSid
(binary, shown as ``S-1-5-...``), userAccountControl (bit 2, 0x2, means disabled), ``member``
(ranged for large groups, see ``client``) and uSNChanged for changes. Nested groups are group DNs
in ``member`` on both kinds.

This module is plain Python over python-ldap's DN helpers: no connection, no Django.
"""
import re
import struct
import uuid
from dataclasses import dataclass, field

import ldap.dn

OPENLDAP = "openldap"
AD = "ad"
AD_ACCOUNTDISABLE = 0x2
# A groupOfUniqueNames value may carry an optional bit-string UID after the DN: "dn#'0101'B".
_UNIQUE_MEMBER_UID = re.compile(r"#'[01]*'B$")


class InvalidEntry(ValueError):
    """An entry the sync cannot use (no id, no name); it is reported and skipped."""


@dataclass(frozen=True)
class Attributes:
    """The attributes read for one kind of directory, and its default filters."""

    user_id: str
    username: str
    changed: str
    user_filter: str
    group_filter: str
    user_extra: tuple[str, ...]
    group_extra: tuple[str, ...]
    members: tuple[str, ...]

    @property
    def user_attrs(self) -> list[str]:
        return [self.user_id, self.username, self.changed, *self.user_extra]

    @property
    def group_attrs(self) -> list[str]:
        return [self.user_id, self.changed, "cn", *self.group_extra, *self.members]


ATTRIBUTES = {
    OPENLDAP: Attributes(
        user_id="entryUUID",
        username="uid",
        changed="modifyTimestamp",
        user_filter="(objectClass=inetOrgPerson)",
        group_filter="(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
        user_extra=("mail", "cn", "displayName"),
        group_extra=(),
        members=("member", "uniqueMember"),
    ),
    AD: Attributes(
        user_id="objectGUID",
        username="sAMAccountName",
        changed="uSNChanged",
        # objectCategory=person leaves out computer accounts, which are objectClass=user too.
        user_filter="(&(objectCategory=person)(objectClass=user))",
        group_filter="(objectClass=group)",
        user_extra=("userPrincipalName", "mail", "cn", "displayName", "objectSid", "userAccountControl"),
        group_extra=("sAMAccountName", "objectSid"),
        members=("member",),
    ),
}


@dataclass
class UserRecord:
    external_id: str
    dn: str
    username: str
    email: str = ""
    upn: str = ""
    display_name: str = ""
    sid: str = ""
    enabled: bool = True
    changed: str = ""


@dataclass
class GroupRecord:
    external_id: str
    dn: str
    name: str
    account_name: str = ""
    sid: str = ""
    changed: str = ""
    member_dns: list[str] = field(default_factory=list)


def dn_key(dn: str) -> str:
    """A DN in one comparable form: attribute types and values casefolded, no stray spaces.

    Member lists name entries by DN as typed by whoever added them (``CN=Bob, OU=...``), so they
    are compared in this form; python-ldap's parser handles escapes and multi-valued RDNs.
    """
    try:
        parts = ldap.dn.str2dn(dn.strip())
    except ldap.DECODING_ERROR:
        return dn.strip().casefold()
    return ldap.dn.dn2str([[(kind.casefold(), value.casefold(), flags) for kind, value, flags in rdn] for rdn in parts])


def guid_text(raw: bytes) -> str:
    """objectGUID bytes -> ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` as AD shows it."""
    if len(raw) != 16:
        raise InvalidEntry(f"objectGUID must be 16 bytes, got {len(raw)}")
    return str(uuid.UUID(bytes_le=raw))


def sid_text(raw: bytes) -> str:
    """objectSid bytes -> ``S-1-5-21-...``: revision, 48-bit big-endian authority, little-endian sub-authorities."""
    if len(raw) < 8 or len(raw) != 8 + 4 * raw[1]:
        raise InvalidEntry(f"objectSid of {len(raw)} bytes is malformed")
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack(f"<{raw[1]}I", raw[8:])
    return "-".join(["S", str(raw[0]), str(authority), *(str(sub) for sub in subs)])


def _text(attrs: dict[str, list[bytes]], name: str) -> str:
    values = attrs.get(name.casefold())
    if not values:
        return ""
    return values[0].decode("utf-8").strip()


def _member_dns(attrs: dict[str, list[bytes]], names: tuple[str, ...]) -> list[str]:
    found = []
    for name in names:
        for value in attrs.get(name.casefold(), ()):
            found.append(_UNIQUE_MEMBER_UID.sub("", value.decode("utf-8").strip()))
    return found


def user_from_entry(kind: str, dn: str, attrs: dict[str, list[bytes]]) -> UserRecord:
    """A user record from an entry whose attribute names are casefolded (``client`` does that)."""
    names = ATTRIBUTES[kind]
    username = _text(attrs, names.username)
    if not username:
        raise InvalidEntry(f"{dn}: no {names.username}")
    cn = _text(attrs, "cn")
    record = UserRecord(
        external_id=external_id(kind, dn, attrs),
        dn=dn,
        username=username,
        email=_text(attrs, "mail"),
        display_name=_text(attrs, "displayName") or cn,
        changed=_text(attrs, names.changed),
    )
    if kind == AD:
        record.upn = _text(attrs, "userPrincipalName")
        record.sid = sid_text(attrs["objectsid"][0]) if attrs.get("objectsid") else ""
        control = _text(attrs, "userAccountControl")
        try:
            record.enabled = not (int(control or "0") & AD_ACCOUNTDISABLE)
        except ValueError:
            raise InvalidEntry(f"{dn}: userAccountControl {control!r} is not a number") from None
    return record


def group_from_entry(kind: str, dn: str, attrs: dict[str, list[bytes]]) -> GroupRecord:
    names = ATTRIBUTES[kind]
    name = _text(attrs, "cn")
    if not name:
        raise InvalidEntry(f"{dn}: no cn")
    record = GroupRecord(
        external_id=external_id(kind, dn, attrs),
        dn=dn,
        name=name,
        changed=_text(attrs, names.changed),
        member_dns=_member_dns(attrs, names.members),
    )
    if kind == AD:
        record.account_name = _text(attrs, "sAMAccountName")
        record.sid = sid_text(attrs["objectsid"][0]) if attrs.get("objectsid") else ""
    return record


def external_id(kind: str, dn: str, attrs: dict[str, list[bytes]]) -> str:
    """The entry's stable id as stored (entryUUID text, or objectGUID in canonical text)."""
    name = ATTRIBUTES[kind].user_id
    values = attrs.get(name.casefold())
    if not values:
        raise InvalidEntry(f"{dn}: no {name}")
    if kind == AD:
        return guid_text(values[0])
    return values[0].decode("ascii").strip().lower()
