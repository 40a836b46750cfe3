"""A throwaway OpenLDAP server for the directory tests and the directory benchmark.

``Slapd.start(folder)`` writes a ``slapd.conf`` into ``folder`` (mdb backend, suffix
``dc=example,dc=com``), loads LDIF with ``slapadd`` before the server starts, and runs
``slapd -d 0`` (foreground, so the process handle we keep is the server) on a free loopback port.
The schema is Debian's core, cosine, inetorgperson and nis plus a small Active-Directory-shaped
schema written here (``AD_SCHEMA``): the AD code paths (objectGUID, objectSid, userAccountControl,
uSNChanged, ``user``/``group`` with ``member``) run against the same server as the OpenLDAP ones.

The tools are looked up on PATH and then in ``/usr/sbin`` and ``/usr/bin``: Debian installs slapd
and slapadd in ``/usr/sbin``, which a non-root user's PATH usually lacks.

The server enforces a size limit smaller than the test data (``SIZE_LIMIT``) on searches that do
not page, as Active Directory's MaxPageSize does, so a client that forgets paging fails loudly.

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
from dataclasses import dataclass
from pathlib import Path

import ldap
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

BASE_LDIF = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example Corp

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: kbsearch
userPassword: {SERVICE_PASSWORD}
"""


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


def _config(folder: Path, tls: TLSFiles | None = None) -> str:
    includes = "".join(
        f"include {SCHEMA_DIR / name}.schema\n" for name in ("core", "cosine", "inetorgperson", "nis")
    )
    return f"""\
{includes}include {folder / "ad.schema"}
pidfile {folder / "slapd.pid"}
argsfile {folder / "slapd.args"}
modulepath /usr/lib/ldap
moduleload back_mdb
{_tls_config(tls)}sizelimit size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.pr=unlimited size.prtotal=unlimited
database mdb
maxsize 1073741824
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {folder / "data"}
index objectClass eq
index entryUUID eq
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="{SERVICE_DN}" read by * none
"""


class Slapd:
    """One running slapd; ``url`` to reach it, ``modify``/``add``/``delete`` as its administrator."""

    def __init__(self, folder: Path, process: subprocess.Popen, port: int, ldaps_port: int | None = None) -> None:
        self.folder = folder
        self.process = process
        self.port = port
        self.url = f"ldap://127.0.0.1:{port}"
        # Served only when started with TLS files: TLS from the first byte (StartTLS works on ``url``).
        self.ldaps_url = f"ldaps://127.0.0.1:{ldaps_port}" if ldaps_port else None
        self.changed = False  # set by ldapmodify: the tree is no longer as loaded

    @classmethod
    def start(cls, folder: Path, ldif: str = "", *, tls: TLSFiles | None = None) -> "Slapd":
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data").mkdir(exist_ok=True)
        (folder / "ad.schema").write_text(AD_SCHEMA, encoding="utf-8")
        config = folder / "slapd.conf"
        config.write_text(_config(folder, tls), encoding="utf-8")
        data = folder / "data.ldif"
        data.write_text(BASE_LDIF + "\n" + ldif, encoding="utf-8")
        # slapadd writes the database directly (entryUUID, timestamps included): fast for bulk data.
        subprocess.run([tool("slapadd"), "-q", "-f", str(config), "-l", str(data)], check=True, capture_output=True)
        port = free_port()
        ldaps_port = free_port() if tls else None
        listen = f"ldap://127.0.0.1:{port}/" + (f" ldaps://127.0.0.1:{ldaps_port}/" if tls else "")
        log = open(folder / "slapd.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
        process = subprocess.Popen(
            [tool("slapd"), "-d", "0", "-f", str(config), "-h", listen],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = cls(folder, process, port, ldaps_port)
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
            except ldap.SERVER_DOWN:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slapd did not answer on {self.url} within {seconds} s")

    def admin(self):
        """A connection bound as the root DN."""
        conn = ldap.initialize(self.url)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 2)
        conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        return conn

    def ldapmodify(self, ldif: str) -> None:
        """Apply LDIF change records (``changetype: ...``) with ldapmodify, as an administrator would."""
        self.changed = True
        done = subprocess.run(
            [tool("ldapmodify"), "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
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
            found = conn.search_s(SUFFIX, ldap.SCOPE_SUBTREE, "(objectClass=*)", ["1.1"])
            keep = {SUFFIX.lower(), SERVICE_DN.lower()}
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
