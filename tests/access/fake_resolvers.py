"""Resolvers for the seam's tests, importable by dotted path (``tests.access.fake_resolvers``)."""
from access.resolvers import BasePrincipalResolver

CALLS: list[int] = []


class CountingResolver(BasePrincipalResolver):
    """Grants a fixed extra group and counts how often it is asked."""

    def resolve(self, user) -> frozenset[str]:
        CALLS.append(user.pk)
        return frozenset({"public", f"user:{user.username}", "group:from-directory"})


class BrokenResolver(BasePrincipalResolver):
    def resolve(self, user) -> frozenset[str]:
        raise ConnectionError("directory unreachable")
