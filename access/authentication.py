"""Signing in with the directory: LDAP bind (django-auth-ldap) and a trusted proxy's user header.

``DirectoryLDAPBackend`` is django-auth-ldap's backend configured from the ``Directory`` rows the
sync uses (URLs, StartTLS, CA file, service bind DN, the password from the variable the directory
names, the user base and filter of its kind: uid on OpenLDAP, sAMAccountName on AD), not from
``AUTH_LDAP_*`` settings. A sign-in binds only for a name the last sync knows and has enabled
(``access.selectors.directory_sign_in_users``): a disabled or deleted user, or one the directory
gained since the last sync, is refused even with a password the server accepts. The entry the
bind found must be the synced one (same DN), so a name reassigned since the sync waits for it.

``DirectoryRemoteUserBackend`` (with ``access.middleware.TrustedProxyUserMiddleware``) signs in
the user a reverse proxy names in ``KBSEARCH_TRUSTED_PROXY_HEADER``, only for requests from
``KBSEARCH_TRUSTED_PROXY_ADDRESSES`` and only for enabled directory users.

Neither grants Django groups, permissions or staff flags: what a user may see comes from the
principal resolver. Local accounts (``ModelBackend``, listed last) keep working when the directory
is down, for bootstrap and outages. Failures are quiet to the user (the login page says "wrong
name or password") and explicit in the audit log: each refusal notes its reason here
(``_refusal``), and the ``user_login_failed`` receiver writes it with the name typed.
"""
import ipaddress
import logging
from contextvars import ContextVar
from functools import lru_cache

import ldap
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import RemoteUserBackend
from django.core.exceptions import ImproperlyConfigured
from django_auth_ldap.backend import LDAPBackend, ldap_error
from django_auth_ldap.config import LDAPSearch, LDAPSettings

from access.directory.client import ConnectionSettings, DirectoryConfigError, tls_failure_hint
from access.directory.schema import ATTRIBUTES, dn_key
from access.models import Directory
from access.selectors import SignInRefused, directory_sign_in_users
from access.services import directory_account_get_or_create, sign_in_record

logger = logging.getLogger(__name__)
LDAP_BACKEND = "access.authentication.DirectoryLDAPBackend"
PROXY_BACKEND = "access.authentication.DirectoryRemoteUserBackend"
# User attributes read at sign-in besides the name: the Django account's names and email.
PROFILE_ATTRS = ("givenName", "sn", "mail")

# Why the last attempt in this thread/task was refused: {"username", "reason", "directory"}.
_refusal: ContextVar[dict | None] = ContextVar("kbsearch_sign_in_refusal", default=None)
# LDAP errors (server down, TLS) seen during the current bind attempt; django-auth-ldap reports
# them through its ``ldap_error`` signal and then answers as for a wrong password.
_ldap_errors: ContextVar[list | None] = ContextVar("kbsearch_ldap_errors", default=None)


def _note_refusal(username: str, reason: str, directory: Directory | None = None) -> None:
    _refusal.set({"username": username, "reason": reason, "directory": directory})


class _DirectorySettings(LDAPSettings):
    """django-auth-ldap settings from values given here; ``AUTH_LDAP_*`` settings are never read."""

    def __init__(self, values: dict) -> None:  # not calling super(): it would read AUTH_LDAP_* settings
        self._prefix = "directory:"
        for name, default in {**self.defaults, **values}.items():
            setattr(self, name, default)


def directory_ldap_settings(directory: Directory) -> LDAPSettings:
    """How to bind for ``directory``: the sync's connection settings and the kind's user search."""
    connection = ConnectionSettings.for_directory(directory)  # checks URLs, StartTLS, the password variable
    names = ATTRIBUTES[directory.kind]
    # django-auth-ldap fills %(user)s (escaped) with %-formatting: a literal % in the filter is doubled.
    base_filter = (directory.user_filter or names.user_filter).replace("%", "%%")
    search = LDAPSearch(
        directory.user_base_dn, ldap.SCOPE_SUBTREE, f"(&{base_filter}({names.username}=%(user)s))",
        [names.username, *PROFILE_ATTRS],
    )
    options = {
        ldap.OPT_PROTOCOL_VERSION: 3,
        ldap.OPT_REFERRALS: 0,  # AD referrals would be chased with an anonymous bind
        ldap.OPT_NETWORK_TIMEOUT: connection.timeout,
        ldap.OPT_TIMEOUT: connection.timeout,
        ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND,
    }
    if connection.ca_file:
        options[ldap.OPT_X_TLS_CACERTFILE] = connection.ca_file
    options[ldap.OPT_X_TLS_NEWCTX] = 0  # last: applies the TLS options above
    return _DirectorySettings({
        "SERVER_URI": " ".join(connection.urls),  # libldap tries replicas in order
        "START_TLS": connection.start_tls,
        "CONNECTION_OPTIONS": options,
        "BIND_DN": connection.bind_dn,
        "BIND_PASSWORD": connection.password,
        "USER_SEARCH": search,
        "ALWAYS_UPDATE_USER": False,  # the account is written by directory_account_get_or_create
        "CACHE_TIMEOUT": 0,  # a DN cached across syncs could outlive a rename
    })


def _first(attrs, name: str) -> str:
    values = attrs.get(name) if attrs else None
    return values[0] if values else ""


class DirectoryLDAPBackend(LDAPBackend):
    """Sign in by binding to the synced directory that knows the name (see the module docstring)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        _refusal.set(None)
        if not username or not password:  # an empty password would be an anonymous bind
            return None
        try:
            rows = directory_sign_in_users(username=username)
        except SignInRefused as refusal:
            _note_refusal(username, refusal.reason)
            return None
        for row in rows:
            user = self._authenticate_in(request, row, password)
            if user is not None:
                _refusal.set(None)
                return user
        return None

    def _authenticate_in(self, request, row, password):
        directory = row.directory
        _refusal.set(None)
        errors: list = []
        token = _ldap_errors.set(errors)
        try:
            self.settings = directory_ldap_settings(directory)
            self._directory_user = row
            user = super().authenticate(request, username=row.username, password=password)
        except DirectoryConfigError as error:
            logger.error("sign-in through directory %s is not possible: %s", directory.key, error)
            _note_refusal(row.username, "directory_misconfigured", directory)
            return None
        except Exception:
            # Fail closed and keep the login page up: a bug or an odd server answer refuses this sign-in.
            logger.exception("sign-in of %s through directory %s failed", row.username, directory.key)
            _note_refusal(row.username, "error", directory)
            return None
        finally:
            _ldap_errors.reset(token)
        if user is None:
            current = _refusal.get()
            if current is None or current["username"] != row.username:
                reason = "directory_unavailable" if errors else "rejected"
                _note_refusal(row.username, reason, directory)
            if errors:
                _log_unavailable(directory, errors[-1])
            return None
        if not self.user_can_authenticate(user):
            _note_refusal(row.username, "inactive_account", directory)
            return None
        user.kbsearch_directory = directory
        return user

    def user_can_authenticate(self, user) -> bool:
        return getattr(user, "is_active", True)

    def get_or_build_user(self, username, ldap_user):
        """The account of the synced row, provided the bind found the synced entry."""
        row = self._directory_user
        if dn_key(ldap_user.dn) != row.dn_key:
            _note_refusal(row.username, "entry_changed_since_sync", row.directory)
            raise ldap_user.AuthenticationFailed(f"{ldap_user.dn} is not the synced entry {row.dn}")
        attrs = ldap_user.attrs
        try:
            user = directory_account_get_or_create(
                directory_user=row, first_name=_first(attrs, "givenName"), last_name=_first(attrs, "sn"),
                email=_first(attrs, "mail"),
            )
        except SignInRefused as refusal:
            _note_refusal(row.username, refusal.reason, row.directory)
            raise ldap_user.AuthenticationFailed(str(refusal)) from None
        return user, False

    def get_user(self, user_id):
        """The session's user while the directory still lists them enabled: disabling ends sessions."""
        return _directory_session_user(user_id)

    # No permissions from LDAP groups: access is the resolver's, admin rights are Django's.
    def get_group_permissions(self, user, obj=None):
        return set()

    def get_all_permissions(self, user, obj=None):
        return set()


def _directory_session_user(user_id):
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return None
    try:
        directory_sign_in_users(username=user.get_username())
    except SignInRefused:
        return None
    return user


def _log_unavailable(directory: Directory, error) -> None:
    """Why the directory could not be used, for the admin; a TLS failure says so (libldap does not)."""
    hint = tls_failure_hint(ConnectionSettings.for_directory(directory), error) if isinstance(error, ldap.LDAPError) else ""
    reason = error.args[0].get("desc", error) if error.args and isinstance(error.args[0], dict) else error
    logger.warning("sign-in through directory %s failed: %s%s", directory.key, f"{hint}: " if hint else "", reason)


def _on_ldap_error(sender, context=None, exception=None, **_kwargs) -> None:
    errors = _ldap_errors.get()
    if errors is not None:
        errors.append(exception)


ldap_error.connect(_on_ldap_error, sender=DirectoryLDAPBackend, dispatch_uid="kbsearch-directory-ldap-error")


@lru_cache(maxsize=8)
def _networks(addresses: tuple[str, ...]) -> tuple:
    networks = []
    for address in addresses:
        try:
            networks.append(ipaddress.ip_network(address.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"KBSEARCH_TRUSTED_PROXY_ADDRESSES: {address!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def proxy_address_trusted(address: str | None) -> bool:
    """Whether ``address`` (REMOTE_ADDR) is one of the configured proxies; never when none are configured."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    networks = _networks(tuple(getattr(settings, "KBSEARCH_TRUSTED_PROXY_ADDRESSES", ())))
    return any(ip in network for network in networks)


class DirectoryRemoteUserBackend(RemoteUserBackend):
    """The user a trusted proxy names, if the directory knows and has enabled them.

    ``create_unknown_user``: the Django account is created on first sight, as for an LDAP sign-in,
    but only for a name the synced directory vouches for; any other name is refused.
    """

    create_unknown_user = True

    def authenticate(self, request, remote_user):
        _refusal.set(None)
        if not remote_user:
            return None
        # Checked here too, not only in the middleware: nothing else may hand this backend a name.
        if request is None or not proxy_address_trusted(request.META.get("REMOTE_ADDR")):
            _note_refusal(remote_user, "untrusted_address")
            return None
        try:
            row = directory_sign_in_users(username=remote_user)[0]
            user = directory_account_get_or_create(directory_user=row)
        except SignInRefused as refusal:
            _note_refusal(remote_user, refusal.reason)
            return None
        if not self.user_can_authenticate(user):
            _note_refusal(remote_user, "inactive_account", row.directory)
            return None
        user.kbsearch_directory = row.directory
        return user

    def clean_username(self, username):
        """The directory's spelling of the name, so the middleware matches the session's user."""
        try:
            return directory_sign_in_users(username=username)[0].username
        except SignInRefused:
            return username.strip()

    def get_user(self, user_id):
        return _directory_session_user(user_id)


def _method(user) -> str:
    backend = getattr(user, "backend", "")
    return {LDAP_BACKEND: "ldap", PROXY_BACKEND: "proxy"}.get(backend, "local")


def audit_signed_in(sender, request=None, user=None, **_kwargs) -> None:
    """``user_logged_in`` receiver: one audit event per sign-in, whichever backend."""
    sign_in_record(
        username=user.get_username(), succeeded=True, method=_method(user),
        directory=getattr(user, "kbsearch_directory", None),
        address=request.META.get("REMOTE_ADDR", "") if request is not None else "",
    )
    _refusal.set(None)


def audit_sign_in_failed(sender, credentials=None, request=None, **_kwargs) -> None:
    """``user_login_failed`` receiver: the name typed (or sent by the proxy) and why; never the password."""
    credentials = credentials or {}
    proxy = "remote_user" in credentials
    username = str(credentials.get("remote_user") or credentials.get("username") or "")
    refusal = _refusal.get()
    reason, directory = "invalid_credentials", None
    if refusal is not None and refusal["username"].strip().casefold() == username.strip().casefold():
        reason, directory = refusal["reason"], refusal["directory"]
    _refusal.set(None)
    sign_in_record(
        username=username, succeeded=False, method="proxy" if proxy else "password", reason=reason,
        directory=directory, address=request.META.get("REMOTE_ADDR", "") if request is not None else "",
    )
