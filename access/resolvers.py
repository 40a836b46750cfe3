"""Who a user is to the index: the principal resolver seam.

A resolver turns a signed-in user into the principal strings their documents' access lists may
name (``user:<name>``, ``group:<name>``, ``public``). It is chosen by a dotted path in
``settings.KBSEARCH_PRINCIPAL_RESOLVER``, the way Django picks its backends; the default reads
Django's own groups, and the directory (LDAP/AD) resolver plugs in here.

Everything that filters by permission asks ``principals_for(user)``. The rules no resolver can
change live there, so a resolver cannot fail open: an anonymous or inactive user has no principals,
and a resolver that raises (a directory outage, say) leaves the user with none for that request,
never with more. Within a request (``access.middleware.principals_scope``) the answer is computed
once and reused by the search, its access re-check, the facets and the document page.

``DirectoryPrincipalResolver`` answers from the tables the directory sync keeps (``access.models``,
rules in ``access.selectors.directory_principals``): ``public``, ``user:<username>`` (uid or
sAMAccountName) and ``group:<cn>`` for every group the user is in through nested groups (the
company namespace, which sources without an identity mapping name directly), plus the principal
of every source identity mapped to the user or to one of those groups
(``source/<key>/user:<id>``, ``source/<key>/group:<id>``; ``access.mapping``). Unmapped and
ambiguous identities are nobody's. ``DjangoGroupsPrincipalResolver`` never returns scoped
principals: under it, a mapped source's documents are visible only through ``public``.
"""
import logging
import threading
from contextvars import ContextVar

from django.conf import settings
from django.utils.module_loading import import_string

from access.principals import PUBLIC, InvalidPrincipal, normalize_principal

logger = logging.getLogger(__name__)
DEFAULT_RESOLVER = "access.resolvers.DjangoGroupsPrincipalResolver"

# Per-request cache: user pk -> principals. None outside a request (commands, Celery, tests), where
# every call resolves afresh so a changed membership is never served stale.
_request_cache: ContextVar[dict[int, frozenset[str]] | None] = ContextVar("kbsearch_principals", default=None)
_lock = threading.Lock()
_resolver: "BasePrincipalResolver | None" = None


class BasePrincipalResolver:
    """Base class of principal resolvers."""

    def resolve(self, user) -> frozenset[str]:
        """The principals of an active, signed-in ``user`` (normalized strings)."""
        raise NotImplementedError


class DjangoGroupsPrincipalResolver(BasePrincipalResolver):
    """The user, their Django groups and ``public``; never a source-scoped identity (nothing maps them here)."""

    def resolve(self, user) -> frozenset[str]:
        principals = {PUBLIC, normalize_principal(f"user:{user.get_username()}")}
        principals.update(
            normalize_principal(f"group:{name}") for name in user.groups.values_list("name", flat=True)
        )
        return frozenset(principals)


class DirectoryPrincipalResolver(BasePrincipalResolver):
    """The user's synced directory identity: ``public``, ``user:<name>``, ``group:<cn>`` (transitive),
    and the source identities mapped to the user or those groups (``source/<key>/...``).

    Unknown to the directory: ``public`` only; disabled or deleted: nothing; every directory past
    its grace period without a successful sync: ``public`` only (``access.selectors``).
    """

    def resolve(self, user) -> frozenset[str]:
        # Imported here: this module is imported while apps load, before models may be.
        from access.selectors import directory_principals

        return directory_principals(username=user.get_username())


def get_principal_resolver() -> BasePrincipalResolver:
    """The process-wide resolver configured in settings."""
    global _resolver
    with _lock:
        if _resolver is None:
            path = getattr(settings, "KBSEARCH_PRINCIPAL_RESOLVER", DEFAULT_RESOLVER)
            _resolver = import_string(path)()
        return _resolver


def reset_principal_resolver() -> None:
    """Forget the configured resolver (settings changes in tests)."""
    global _resolver
    with _lock:
        _resolver = None


def principals_for(user) -> frozenset[str]:
    """Everything ``user`` is known as; empty (sees nothing) when anonymous, inactive or unresolvable."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return frozenset()
    cache = _request_cache.get()
    if cache is not None and user.pk in cache:
        return cache[user.pk]
    try:
        principals = _normalized(get_principal_resolver().resolve(user))
    except Exception:
        # Fail closed: a user whose principals cannot be worked out sees nothing this request.
        logger.exception("resolving the principals of user %s failed; they see nothing", user.pk)
        principals = frozenset()
    if cache is not None:
        cache[user.pk] = principals
    return principals


def _normalized(principals) -> frozenset[str]:
    """Resolver output in canonical form; a malformed entry is dropped (it can only narrow access)."""
    normalized = set()
    for principal in principals:
        try:
            normalized.add(normalize_principal(principal))
        except InvalidPrincipal:
            logger.warning("principal resolver returned %r, which is not a principal; ignored", principal)
    return frozenset(normalized)


def open_request_scope():
    """Start caching principals for the current request; returns the token for ``close_request_scope``."""
    return _request_cache.set({})


def close_request_scope(token) -> None:
    _request_cache.reset(token)
