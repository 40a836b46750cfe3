"""Reading a directory over LDAP with python-ldap: bind, TLS, paged searches, ranged attributes.

Every search asks for pages (the Simple Paged Results control, RFC 2696): Active Directory caps an
unpaged search at MaxPageSize (1,000 by default) and OpenLDAP at its size limit, and a capped
answer would look like users and groups that no longer exist. Large multi-valued attributes come
back from AD in ranges (``member;range=0-1499``, then ``member;range=1500-*`` ...); they are read
range by range until the server marks the last one with ``*``, so a big group is never truncated.

Every failure to reach, bind or read (refused connection, timeout, TLS error, bad credentials,
a server error mid-search) is raised as ``DirectoryUnavailable`` with the server and the reason, so
a sync can fail as a whole and change nothing.

TLS options are set on each connection, then ``OPT_X_TLS_NEWCTX`` gives it a TLS context of its
own: two directories with different CA files in one process never share (or inherit) trust. The
certificate is always checked (``OPT_X_TLS_DEMAND``). libldap reports a failed handshake only as
"Can't contact LDAP server" (ldaps://) or "Connect error" (StartTLS), with no reason; so when a TLS
connection fails and the server does accept TCP connections, the error says that the TLS handshake
failed and which CA file was trusted (``tls_failure_hint``), instead of suggesting the server is down. The bind password is read from the environment
variable the directory names, at connection time; it is never stored or logged.
"""
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import ldap
from ldap.controls import SimplePagedResultsControl

# "member;range=0-1499" or "member;range=1500-*", as Active Directory names ranged values.
_RANGED = re.compile(r"^(?P<name>[^;]+);range=(?P<start>\d+)-(?P<end>\d+|\*)$", re.IGNORECASE)
Entry = tuple[str, dict[str, list[bytes]]]


class DirectoryUnavailable(RuntimeError):
    """The directory could not be reached, bound to or read; nothing read from it may be trusted."""


class DirectoryConfigError(ValueError):
    """The directory's configuration cannot work (no URL, a missing password variable, ldaps + StartTLS)."""


@dataclass(frozen=True)
class ConnectionSettings:
    urls: tuple[str, ...]
    bind_dn: str
    password: str
    start_tls: bool
    ca_file: str
    timeout: float
    page_size: int

    def __repr__(self) -> str:  # never show the password
        return f"ConnectionSettings(urls={self.urls!r}, bind_dn={self.bind_dn!r}, start_tls={self.start_tls})"

    @classmethod
    def for_directory(cls, directory) -> "ConnectionSettings":
        """Settings from a ``Directory`` row, with the password from the variable it names."""
        urls = tuple(directory.server_urls.split())
        if not urls or any(not url.lower().startswith(("ldap://", "ldaps://")) for url in urls):
            raise DirectoryConfigError(f"directory {directory.key}: server URLs must be ldap:// or ldaps://, got {directory.server_urls!r}")
        if directory.start_tls and any(url.lower().startswith("ldaps://") for url in urls):
            raise DirectoryConfigError(f"directory {directory.key}: StartTLS is for ldap:// URLs; ldaps:// is TLS already")
        password = ""
        if directory.bind_password_env:
            if directory.bind_password_env not in os.environ:
                raise DirectoryConfigError(
                    f"directory {directory.key}: the bind password variable {directory.bind_password_env} is not set"
                )
            password = os.environ[directory.bind_password_env]
        if directory.bind_dn and not password:
            raise DirectoryConfigError(
                f"directory {directory.key}: a bind DN needs a password (an empty one would bind anonymously)"
            )
        return cls(
            urls=urls,
            bind_dn=directory.bind_dn,
            password=password,
            start_tls=directory.start_tls,
            ca_file=directory.ca_file,
            timeout=float(directory.timeout_seconds),
            page_size=directory.page_size,
        )


def _reason(error: ldap.LDAPError) -> str:
    if error.args and isinstance(error.args[0], dict):
        details = error.args[0]
        return "; ".join(str(details[key]) for key in ("desc", "info") if details.get(key))
    return str(error) or type(error).__name__


def _accepts_tcp(url: str, timeout: float) -> bool:
    parts = urlsplit(url)
    try:
        port = parts.port or (636 if parts.scheme.lower() == "ldaps" else 389)
        with socket.create_connection((parts.hostname or "localhost", port), timeout=min(timeout, 5.0)):
            return True
    except (OSError, ValueError):
        return False


def tls_failure_hint(settings: ConnectionSettings, error: ldap.LDAPError) -> str:
    """Why a TLS connection probably failed, or "" when TLS is not the likely cause.

    A StartTLS that fails with a connect error, or an ldaps:// server that takes TCP connections
    but "cannot be contacted", failed the handshake: most often a certificate the CA file does not
    vouch for, or one that does not name the host in the URL.
    """
    trusted = f"the CA file {settings.ca_file}" if settings.ca_file else "the system's CA certificates (no ca_file set)"
    problem = f"the server's certificate is not signed by {trusted}, has expired, or does not name the host in the URL"
    if settings.start_tls and isinstance(error, ldap.CONNECT_ERROR):
        return f"StartTLS failed: TLS handshake refused ({problem})"
    ldaps = [url for url in settings.urls if url.lower().startswith("ldaps://")]
    if isinstance(error, ldap.SERVER_DOWN) and any(_accepts_tcp(url, settings.timeout) for url in ldaps):
        return f"TLS handshake failed ({problem})"
    return ""


class DirectoryClient:
    """One bound connection: ``with DirectoryClient(settings) as client: client.search(...)``.

    ``connection`` lets tests hand in an object with python-ldap's ``search_ext``/``result3``.
    """

    def __init__(self, settings: ConnectionSettings, *, connection=None) -> None:
        self.settings = settings
        self.connection = connection
        self.pages = 0  # pages read, for tests and run counts
        self._owned = connection is None

    def __enter__(self) -> "DirectoryClient":
        if self.connection is None:
            self.connection = self._connect()
        return self

    def __exit__(self, *_exc) -> None:
        if self._owned and self.connection is not None:
            try:
                self.connection.unbind_s()
            except ldap.LDAPError:
                pass
            self.connection = None

    def _connect(self):
        where = " ".join(self.settings.urls)
        try:
            # libldap tries space-separated URLs in order: replicas fail over.
            conn = ldap.initialize(where)
            conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
            # AD answers with referrals to other partitions; chasing them would bind anonymously.
            conn.set_option(ldap.OPT_REFERRALS, 0)
            conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.settings.timeout)
            conn.set_option(ldap.OPT_TIMEOUT, self.settings.timeout)
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
            if self.settings.ca_file:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, self.settings.ca_file)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # last: applies the TLS options above
            if self.settings.start_tls:
                conn.start_tls_s()  # never falls back to plain text: a failure ends here
            conn.simple_bind_s(self.settings.bind_dn, self.settings.password)
        except ldap.LDAPError as error:
            hint = tls_failure_hint(self.settings, error)
            raise DirectoryUnavailable(f"cannot bind to {where}: {hint + ': ' if hint else ''}{_reason(error)}") from None
        return conn

    def search(self, base: str, filterstr: str, attrs: list[str], *, scope: int = ldap.SCOPE_SUBTREE) -> Iterator[Entry]:
        """Entries under ``base`` matching ``filterstr``, page by page; attribute names casefolded."""
        try:
            for dn, attributes in self._paged(base, scope, filterstr, attrs):
                entry = {name.casefold(): values for name, values in attributes.items()}
                yield dn, self._complete_ranges(dn, entry)
        except ldap.LDAPError as error:
            raise DirectoryUnavailable(f"search of {base!r} failed: {_reason(error)}") from None

    def root_dse(self, attrs: list[str]) -> dict[str, list[bytes]]:
        for _dn, entry in self.search("", "(objectClass=*)", attrs, scope=ldap.SCOPE_BASE):
            return entry
        return {}

    def _paged(self, base: str, scope: int, filterstr: str, attrs: list[str]) -> Iterator[Entry]:
        control = SimplePagedResultsControl(True, size=self.settings.page_size, cookie=b"")
        while True:
            msgid = self.connection.search_ext(
                base, scope, filterstr, attrs, serverctrls=[control], timeout=self.settings.timeout
            )
            _type, data, _msgid, controls = self.connection.result3(msgid, timeout=self.settings.timeout)
            self.pages += 1
            for dn, attributes in data:
                if dn is not None and isinstance(attributes, dict):  # skip search references
                    yield dn, attributes
            cookie = next(
                (c.cookie for c in controls or () if c.controlType == SimplePagedResultsControl.controlType), b""
            )
            if not cookie:
                return
            control.cookie = cookie

    def _complete_ranges(self, dn: str, entry: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
        """Replace ``name;range=a-b`` keys with the whole attribute, asking for the remaining ranges."""
        for key in [key for key in entry if _RANGED.match(key)]:
            match = _RANGED.match(key)
            name = match["name"].casefold()
            values = list(entry.pop(key))
            end = match["end"]
            while end != "*":
                start = int(end) + 1
                wanted = f"{name};range={start}-*"
                found = None
                for _dn, more in self._paged(dn, ldap.SCOPE_BASE, "(objectClass=*)", [wanted]):
                    found = next(((k, v) for k, v in more.items() if _RANGED.match(k)), None)
                if found is None:
                    raise DirectoryUnavailable(f"{dn}: the server returned no {wanted}")
                next_match = _RANGED.match(found[0])
                bad_end = next_match["end"] != "*" and int(next_match["end"]) < start
                if next_match["name"].casefold() != name or int(next_match["start"]) != start or bad_end:
                    raise DirectoryUnavailable(f"{dn}: asked for {wanted}, got {found[0]}")
                values.extend(found[1])
                end = next_match["end"]
            entry[name] = entry.get(name, []) + values
        return entry
