"""Principal strings: ``public`` (every signed-in employee), ``user:<username>`` or ``group:<name>``.

Connectors translate their source's permissions into these; search intersects them with the
requesting user's (``access.resolvers.principals_for``). Names are compared case-insensitively, as
directories (AD, LDAP) do, so both sides are folded the same way here.
"""
import re

PUBLIC = "public"
_PRINCIPAL = re.compile(r"^(user|group):(\S(?:.*\S)?)$")


class InvalidPrincipal(ValueError):
    """A string that is not ``public``, ``user:<name>`` or ``group:<name>``."""


def normalize_principal(value: str) -> str:
    """Canonical form of a principal string; raises InvalidPrincipal for anything else."""
    if not isinstance(value, str):
        raise InvalidPrincipal(f"principal must be a string, got {type(value).__name__}")
    text = value.strip()
    if text.casefold() == PUBLIC:
        return PUBLIC
    match = _PRINCIPAL.match(text)
    if not match or any(ch in match.group(2) for ch in "\r\n\t\x00"):
        raise InvalidPrincipal(f"not a principal: {value!r} (expected public, user:<name> or group:<name>)")
    return f"{match.group(1)}:{match.group(2).casefold()}"
