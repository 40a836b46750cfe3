"""A real slapd for the directory tests (session-wide) and directories configured against it.

The tree (``tests.access.directory_data``) is loaded once; a test that changes it with
``slapd.ldapmodify`` gets it reloaded afterwards, so every test starts from the same entries.

A second server (``tls_slapd_server``) holds the same tree and serves it over StartTLS and
ldaps:// with a certificate from a throwaway CA (``tls_authority``); ``wrong_ca_file`` is another
CA's certificate, which cannot verify it. The plain server stays as it is for every other test.
"""
import pytest

from access.services import directory_create
from scripts.slapd import SERVICE_DN, SERVICE_PASSWORD, Slapd, TLSFiles
from tests.access.certificates import Authority, authority_create, server_certificate_create
from tests.access.directory_data import CORP, GROUPS, PEOPLE, TEST_LDIF

PASSWORD_VARIABLE = "KBSEARCH_TEST_DIRECTORY_PASSWORD"
# The OpenLDAP-shaped tree read three entries a page (fewer than it has of either kind), on the
# plain server and on the TLS one alike.
OPENLDAP_SHAPED = {
    "kind": "openldap", "bind_dn": SERVICE_DN, "bind_password_env": PASSWORD_VARIABLE,
    "user_base_dn": PEOPLE, "group_base_dn": GROUPS, "page_size": 3, "timeout_seconds": 5,
}


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory):
    server = Slapd.start(tmp_path_factory.mktemp("slapd"), TEST_LDIF)
    yield server
    server.stop()


def _restored_after_the_test(server: Slapd):
    yield server
    if server.changed:
        server.reload(TEST_LDIF)


@pytest.fixture
def slapd(slapd_server):
    """The running server, its tree as loaded; changes a test makes are undone after it."""
    yield from _restored_after_the_test(slapd_server)


@pytest.fixture
def directory_password(monkeypatch):
    monkeypatch.setenv(PASSWORD_VARIABLE, SERVICE_PASSWORD)


@pytest.fixture
def openldap(db, slapd, directory_password):
    """The OpenLDAP-shaped tree, read three entries a page (fewer than it has of either kind)."""
    return directory_create(key="corp-ldap", server_urls=slapd.url, **OPENLDAP_SHAPED)


@pytest.fixture
def ad(db, slapd, directory_password):
    """The AD-shaped tree, two entries a page. Its filter is set: slapd has no objectCategory."""
    return directory_create(
        key="corp-ad",
        kind="ad",
        server_urls=slapd.url,
        bind_dn=SERVICE_DN,
        bind_password_env=PASSWORD_VARIABLE,
        user_base_dn=f"ou=users,{CORP}",
        user_filter="(objectClass=user)",
        group_base_dn=f"ou=groups,{CORP}",
        page_size=2,
        timeout_seconds=5,
    )


@pytest.fixture(scope="session")
def tls_authority(tmp_path_factory) -> Authority:
    return authority_create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def wrong_ca_file(tmp_path_factory):
    """Another CA with the same name: every host name matches, the signature does not."""
    return authority_create(tmp_path_factory.mktemp("other-pki")).certificate_file


@pytest.fixture(scope="session")
def tls_slapd_server(tmp_path_factory, tls_authority):
    folder = tmp_path_factory.mktemp("slapd-tls")
    certificate = server_certificate_create(tls_authority.certificate_file.parent, tls_authority)
    files = TLSFiles(tls_authority.certificate_file, certificate.certificate_file, certificate.key_file)
    server = Slapd.start(folder, TEST_LDIF, tls=files)
    yield server
    server.stop()


@pytest.fixture
def tls_slapd(tls_slapd_server):
    """The TLS server, restored after the test like ``slapd``."""
    yield from _restored_after_the_test(tls_slapd_server)


@pytest.fixture
def tls_openldap(db, tls_slapd, directory_password, tls_authority):
    """Makes the OpenLDAP-shaped directory on the TLS server: tls_openldap(url, start_tls=..., ca_file=...)."""

    def make(url: str, *, start_tls: bool = False, ca_file=tls_authority.certificate_file, key: str = "corp-tls"):
        return directory_create(
            key=key, server_urls=url, start_tls=start_tls, ca_file=str(ca_file or ""), **OPENLDAP_SHAPED
        )

    return make
