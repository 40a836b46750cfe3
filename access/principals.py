"""Principal strings: what document access lists and users are both made of.

- ``public``: every signed-in employee.
- ``user:<name>`` and ``group:<name>``: the company namespace, names as the directory knows them
  (uid or sAMAccountName, group cn) or, with the Django groups resolver, Django's user and group names.
  File-share access files name these by default.
- ``source/<source-key>/user:<id>`` and ``source/<source-key>/group:<id>``: an identity as one
  source states it (a Confluence account id, a SharePoint object id, an email). It is nobody's
  until identity mapping (``access.mapping``) links it to a directory user or group, so a Confluence
  group ``engineering`` is never the directory's ``engineering`` unless a mapping says so.

Connectors translate their source's permissions into these; search intersects them with the
requesting user's (``access.resolvers.principals_for``). Names are compared case-insensitively, as
directories (AD, LDAP) do, so both sides are folded the same way here.
"""
import re
from dataclasses import dataclass

PUBLIC = "public"
USER = "user"
GROUP = "group"
SOURCE_SCOPE = "source"
_PRINCIPAL = re.compile(r"^(?:(source)/([A-Za-z0-9][A-Za-z0-9_-]*)/)?(user|group):(\S(?:.*\S)?)$")


class InvalidPrincipal(ValueError):
    """A string that is not ``public``, ``[source/<key>/]user:<name>`` or ``[source/<key>/]group:<name>``."""


@dataclass(frozen=True)
class Principal:
    """A parsed principal; ``source`` is the source key of a source-scoped identity, else None."""

    kind: str  # "public", "user" or "group"
    name: str
    source: str | None = None


def normalize_principal(value: str) -> str:
    """Canonical form of a principal string; raises InvalidPrincipal for anything else."""
    return str_principal(parse_principal(value))


def parse_principal(value: str) -> Principal:
    """The parts of a principal string, normalized; raises InvalidPrincipal."""
    if not isinstance(value, str):
        raise InvalidPrincipal(f"principal must be a string, got {type(value).__name__}")
    text = value.strip()
    if text.casefold() == PUBLIC:
        return Principal(PUBLIC, "")
    match = _PRINCIPAL.match(text)
    if not match or any(ch in match.group(4) for ch in "\r\n\t\x00"):
        raise InvalidPrincipal(
            f"not a principal: {value!r} (expected public, user:<name>, group:<name> "
            "or source/<key>/user:<id>, source/<key>/group:<id>)"
        )
    source = match.group(2).casefold() if match.group(2) else None
    return Principal(match.group(3), match.group(4).casefold(), source)


def str_principal(principal: Principal) -> str:
    if principal.kind == PUBLIC:
        return PUBLIC
    scope = f"{SOURCE_SCOPE}/{principal.source}/" if principal.source else ""
    return f"{scope}{principal.kind}:{principal.name}"


def scoped_principal(*, source_key: str, kind: str, name: str) -> str:
    """The principal of an identity as source ``source_key`` states it (normalized)."""
    return normalize_principal(f"{SOURCE_SCOPE}/{source_key}/{kind}:{name}")
