"""A real slapd for the directory tests (session-wide) and directories configured against it.

The tree (``tests.access.directory_data``) is loaded once; a test that changes it with
``slapd.ldapmodify`` gets it reloaded afterwards, so every test starts from the same entries.
"""
import pytest

from access.services import directory_create
from scripts.slapd import SERVICE_DN, SERVICE_PASSWORD, Slapd
from tests.access.directory_data import CORP, GROUPS, PEOPLE, TEST_LDIF

PASSWORD_VARIABLE = "KBSEARCH_TEST_DIRECTORY_PASSWORD"


@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory):
    server = Slapd.start(tmp_path_factory.mktemp("slapd"), TEST_LDIF)
    yield server
    server.stop()


@pytest.fixture
def slapd(slapd_server):
    """The running server, its tree as loaded; changes a test makes are undone after it."""
    yield slapd_server
    if slapd_server.changed:
        slapd_server.reload(TEST_LDIF)


@pytest.fixture
def directory_password(monkeypatch):
    monkeypatch.setenv(PASSWORD_VARIABLE, SERVICE_PASSWORD)


@pytest.fixture
def openldap(db, slapd, directory_password):
    """The OpenLDAP-shaped tree, read three entries a page (fewer than it has of either kind)."""
    return directory_create(
        key="corp-ldap",
        kind="openldap",
        server_urls=slapd.url,
        bind_dn=SERVICE_DN,
        bind_password_env=PASSWORD_VARIABLE,
        user_base_dn=PEOPLE,
        group_base_dn=GROUPS,
        page_size=3,
        timeout_seconds=5,
    )


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
