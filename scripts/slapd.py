"""A throwaway OpenLDAP server for the directory tests, the directory benchmark and ``make demo``.

``Slapd.start(folder)`` writes a ``slapd.conf`` into ``folder`` (mdb backend, suffix
``dc=example,dc=com`` unless told otherwise), loads LDIF with ``slapadd`` before the server starts,
and runs ``slapd -d 0`` (foreground, so the process handle we keep is the server) on a free loopback
port, or on the port given (the demo's fixed one). Besides the LDIF given, the tree always holds the
suffix entry and the read-only service account kbsearch binds as (``cn=kbsearch,<suffix>``).

It lives here, outside ``tests/``, because the demo runs the same server; nothing in the product
(``access/``) imports it.
The schema is Debian's core, cosine, inetorgperson and nis plus a small Active-Directory-shaped
schema written here (``AD_SCHEMA``): the AD code paths (objectGUID, objectSid, userAccountControl,
uSNChanged, ``user``/``group`` with ``member``) run against the same server as the OpenLDAP ones.

The tools are looked up on PATH and then in ``/usr/sbin`` and ``/usr/bin``: Debian installs slapd
and slapadd in ``/usr/sbin``, which a non-root user's PATH usually lacks.

By default the server enforces a size limit smaller than the test data (``SIZE_LIMIT``) on
searches that do not page, as Active Directory's MaxPageSize does, so a client that forgets paging
fails loudly; the demo lifts it, so ``ldapsearch`` without paging shows the whole tree.

``stable_ids=True`` gives every entry an ``entryUUID`` derived from its DN instead of a random one:
loading the same LDIF again gives the same ids, so a directory sync after a restart sees the same
people rather than everyone leaving and new people with the same names arriving (which the sync's
removal guard would hold, and whose deleted markers would leave those names seeing nothing).

``Slapd.start(folder, ldif, tls=TLSFiles(...))`` also serves TLS with the certificate given: StartTLS
on the ``ldap://`` port and TLS from the first byte on a second, ``ldaps://`` port (``ldaps_url``).
The administrator's own connections (``admin``, ``ldapmodify``) stay on plain ``ldap://``.
"""
import io
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import ldap
import ldap.dn
import ldap.modlist
import ldif

SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
# The account kbsearch binds as: it may read everything and change nothing.
SERVICE_DN = f"cn=kbsearch,{SUFFIX}"
SERVICE_PASSWORD = "service-secret"
SIZE_LIMIT = 5
SCHEMA_DIR = Path("/etc/ldap/schema")

# The Active Directory attributes and classes the AD code reads, with Microsoft's OIDs. Matching
# rules are chosen so filters work as on AD: uSNChanged orders (the incremental cursor), the binary
# ids compare byte for byte.
AD_SCHEMA = """\
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID'
    EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.146 NAME 'objectSid'
    EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.120 NAME 'uSNChanged'
    EQUALITY integerMatch ORDERING integerOrderingMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP top STRUCTURAL
    MUST ( cn )
    MAY ( sAMAccountName $ userPrincipalName $ objectGUID $ objectSid $ userAccountControl $
          uSNChanged $ mail $ displayName $ sn $ givenName $ userPassword ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL
    MUST ( cn )
    MAY ( member $ sAMAccountName $ objectGUID $ objectSid $ uSNChanged $ description $ mail ) )
"""

# Namespace of the DN-derived entryUUIDs of ``stable_ids``.
STABLE_ID_NAMESPACE = uuid.UUID("5d0b6c1e-9a43-4c56-8f0e-3c1d2b7a4e90")


def base_ldif(suffix: str, organization: str, service_password: str) -> str:
    """The suffix entry (a dcObject organization) and the service account below it."""
    first_dc = ldap.dn.str2dn(suffix)[0][0]
    if first_dc[0].lower() != "dc":
        raise ValueError(f"the suffix must start with a dc= part, got {suffix!r}")
    return (
        f"dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: {first_dc[1]}\no: {organization}\n\n"
        f"dn: cn=kbsearch,{suffix}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: kbsearch\nuserPassword: {service_password}\n"
    )


BASE_LDIF = base_ldif(SUFFIX, "Example Corp", SERVICE_PASSWORD)


def with_stable_ids(text: str) -> str:
    """LDIF ``text`` with an ``entryUUID`` derived from each entry's DN where it has none."""
    parser = ldif.LDIFRecordList(io.StringIO(text))
    parser.parse()
    out = io.StringIO()
    writer = ldif.LDIFWriter(out, cols=1000)
    for dn, entry in parser.all_records:
        if not any(name.lower() == "entryuuid" for name in entry):
            key = ldap.dn.dn2str([[(kind.lower(), value, flags) for kind, value, flags in rdn] for rdn in ldap.dn.str2dn(dn)])
            entry = {**entry, "entryUUID": [str(uuid.uuid5(STABLE_ID_NAMESPACE, key.casefold())).encode("ascii")]}
        writer.unparse(dn, entry)
    return out.getvalue()


def tool(name: str) -> str:
    """Path of an OpenLDAP program: PATH first, then where Debian installs it."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/bin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(f"{name} not found on PATH, in /usr/sbin or /usr/bin: install slapd and ldap-utils")


def port_free(port: int) -> bool:
    """Whether nothing listens on loopback ``port`` (a server could still take it before slapd does)."""
    with socket.socket() as probe:
        # As slapd binds: connections of an earlier server still closing (TIME_WAIT) do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class TLSFiles:
    """PEM files slapd serves TLS with: the CA certificates it trusts, its certificate and its key."""

    ca_file: Path
    certificate_file: Path
    key_file: Path


def _tls_config(tls: TLSFiles | None) -> str:
    if tls is None:
        return ""
    return (
        f"TLSCACertificateFile {tls.ca_file}\n"
        f"TLSCertificateFile {tls.certificate_file}\n"
        f"TLSCertificateKeyFile {tls.key_file}\n"
    )


def _config(folder: Path, suffix: str, size_limit: int | None, tls: TLSFiles | None = None) -> str:
    limits = (
        f"sizelimit size.soft={size_limit} size.hard={size_limit} size.pr=unlimited size.prtotal=unlimited\n"
        if size_limit else ""
    )
    includes = "".join(
        f"include {SCHEMA_DIR / name}.schema\n" for name in ("core", "cosine", "inetorgperson", "nis")
    )
    return f"""\
{includes}include {folder / "ad.schema"}
pidfile {folder / "slapd.pid"}
argsfile {folder / "slapd.args"}
modulepath /usr/lib/ldap
moduleload back_mdb
{_tls_config(tls)}{limits}database mdb
maxsize 1073741824
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw {ROOT_PASSWORD}
directory {folder / "data"}
index objectClass eq
index entryUUID eq
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="cn=kbsearch,{suffix}" read by * none
"""


class Slapd:
    """One running slapd; ``url`` to reach it, ``modify``/``add``/``delete`` as its administrator."""

    def __init__(
        self, folder: Path, process: subprocess.Popen, port: int, suffix: str = SUFFIX, ldaps_port: int | None = None
    ) -> None:
        self.folder = folder
        self.process = process
        self.port = port
        self.url = f"ldap://127.0.0.1:{port}"
        # Served only when started with TLS files: TLS from the first byte (StartTLS works on ``url``).
        self.ldaps_url = f"ldaps://127.0.0.1:{ldaps_port}" if ldaps_port else None
        self.suffix = suffix
        self.root_dn = f"cn=admin,{suffix}"
        self.service_dn = f"cn=kbsearch,{suffix}"
        self.changed = False  # set by ldapmodify: the tree is no longer as loaded

    @classmethod
    def start(
        cls, folder: Path, ldif: str = "", *, port: int | None = None, suffix: str = SUFFIX,
        organization: str = "Example Corp", size_limit: int | None = SIZE_LIMIT, stable_ids: bool = False,
        tls: TLSFiles | None = None,
    ) -> "Slapd":
        """Load ``ldif`` into a new database in ``folder`` (which must not hold one) and serve it."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data").mkdir(exist_ok=True)
        (folder / "ad.schema").write_text(AD_SCHEMA, encoding="utf-8")
        config = folder / "slapd.conf"
        config.write_text(_config(folder, suffix, size_limit, tls), encoding="utf-8")
        text = base_ldif(suffix, organization, SERVICE_PASSWORD) + "\n" + ldif
        data = folder / "data.ldif"
        data.write_text(with_stable_ids(text) if stable_ids else text, encoding="utf-8")
        # slapadd writes the database directly (entryUUID, timestamps included): fast for bulk data.
        loaded = subprocess.run([tool("slapadd"), "-q", "-f", str(config), "-l", str(data)], capture_output=True)
        if loaded.returncode:
            raise RuntimeError(f"slapadd could not load {data} ({loaded.returncode}): {loaded.stderr.decode(errors='replace')}")
        if port is None:
            port = free_port()
        elif not port_free(port):
            # Checked first: the readiness check below would otherwise talk to whatever holds the port.
            raise RuntimeError(f"127.0.0.1:{port} is already in use")
        ldaps_port = free_port() if tls else None
        listen = f"ldap://127.0.0.1:{port}/" + (f" ldaps://127.0.0.1:{ldaps_port}/" if tls else "")
        log = open(folder / "slapd.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
        process = subprocess.Popen(
            [tool("slapd"), "-d", "0", "-f", str(config), "-h", listen],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = cls(folder, process, port, suffix, ldaps_port)
        server._wait_ready()
        return server

    def _wait_ready(self, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.folder / "slapd.log").read_text(errors="replace")
                raise RuntimeError(f"slapd exited with {self.process.returncode}:\n{log}")
            try:
                self.admin().unbind_s()
                return
            except (ldap.SERVER_DOWN, ldap.TIMEOUT):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slapd did not answer on {self.url} within {seconds} s")

    def admin(self):
        """A connection bound as the root DN."""
        conn = ldap.initialize(self.url)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 2)
        conn.set_option(ldap.OPT_TIMEOUT, 5)  # a bind nobody answers fails instead of waiting forever
        conn.simple_bind_s(self.root_dn, ROOT_PASSWORD)
        return conn

    def ldapmodify(self, ldif: str) -> None:
        """Apply LDIF change records (``changetype: ...``) with ldapmodify, as an administrator would."""
        self.changed = True
        done = subprocess.run(
            [tool("ldapmodify"), "-x", "-H", self.url, "-D", self.root_dn, "-w", ROOT_PASSWORD],
            input=ldif.encode("utf-8"),
            capture_output=True,
        )
        if done.returncode:
            raise RuntimeError(f"ldapmodify failed ({done.returncode}): {done.stderr.decode(errors='replace')}\n{ldif}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def reload(self, text: str) -> None:
        """Replace everything below the suffix (but the service account) with the entries of LDIF ``text``.

        Entries get new entryUUIDs and timestamps, as if re-created: each test starts from the same
        tree without restarting the server.
        """
        conn = self.admin()
        try:
            found = conn.search_s(self.suffix, ldap.SCOPE_SUBTREE, "(objectClass=*)", ["1.1"])
            keep = {self.suffix.lower(), self.service_dn.lower()}
            # Children before parents: the deepest DNs first.
            for dn in sorted((dn for dn, _ in found if dn.lower() not in keep), key=lambda d: -len(ldap.dn.str2dn(d))):
                conn.delete_s(dn)
            parser = ldif.LDIFRecordList(io.StringIO(text))
            parser.parse()
            for dn, entry in parser.all_records:
                conn.add_s(dn, ldap.modlist.addModlist(entry))
            self.changed = False
        finally:
            conn.unbind_s()
