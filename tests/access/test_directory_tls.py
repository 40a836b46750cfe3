"""The directory over TLS against a real slapd with a throwaway CA: ldaps:// and StartTLS, for the
sync and for sign-in, with the configured CA file trusted and with another CA's (which must fail
closed: a clear TLS error, nothing changed, everyone keeps their groups, sign-in refused). Each
connection gets its own TLS context, so a directory with the wrong CA and one with the right CA
work side by side in one process, in either order."""
import logging

import ldap
import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User

from access.authentication import LDAP_BACKEND, directory_ldap_settings
from access.directory.client import DirectoryUnavailable
from access.models import AuditEvent, DirectorySyncRun, DirectoryUser
from access.resolvers import principals_for
from access.services import directory_sync
from scripts.slapd import free_port
from tests.access.directory_data import OPENLDAP_CLOSURE, PASSWORDS
from tests.access.test_directory_sync import closure

pytestmark = pytest.mark.django_db
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# How each way of speaking TLS is configured: (which URL, StartTLS).
TRANSPORTS = {"ldaps": ("ldaps_url", False), "starttls": ("url", True)}


@pytest.fixture(autouse=True)
def _directory_resolver(settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"


def directory_for(tls_openldap, tls_slapd, transport: str, **options):
    url_attribute, start_tls = TRANSPORTS[transport]
    return tls_openldap(getattr(tls_slapd, url_attribute), start_tls=start_tls, **options)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_full_sync_over_tls_with_the_ca_file_reads_the_whole_tree(tls_openldap, tls_slapd, transport):
    directory = directory_for(tls_openldap, tls_slapd, transport)
    run = directory_sync(directory=directory, full=True)
    assert run.status == DirectorySyncRun.Status.SUCCEEDED, run.errors
    assert closure(directory) == OPENLDAP_CLOSURE
    assert directory_sync(directory=directory).status == "succeeded"  # and an incremental one after it


def test_the_ldaps_port_presents_a_certificate_the_ca_file_verifies(tls_slapd, tls_authority):
    # The server's certificate is what the CA file verifies: read it back through a verified ldaps bind.
    conn = ldap.initialize(tls_slapd.ldaps_url)
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(tls_authority.certificate_file))
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    conn.simple_bind_s("", "")
    assert conn.get_option(ldap.OPT_X_TLS_PEERCERT)  # a certificate was presented and accepted
    conn.unbind_s()


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("trust", ["wrong_ca", "system_cas"])
def test_an_untrusted_certificate_fails_the_sync_clearly_and_changes_nothing(
    tls_openldap, tls_slapd, wrong_ca_file, transport, trust
):
    directory = directory_for(tls_openldap, tls_slapd, transport)
    directory_sync(directory=directory, full=True)
    alice = User.objects.create_user("alice")
    groups_before = principals_for(alice)
    assert "group:platform" in groups_before
    synced_at = directory.last_success_at
    directory.ca_file = str(wrong_ca_file) if trust == "wrong_ca" else ""
    directory.save()
    with pytest.raises(DirectoryUnavailable, match="TLS handshake") as raised:
        directory_sync(directory=directory, full=True)
    message = str(raised.value)
    assert "certificate" in message and (str(wrong_ca_file) if trust == "wrong_ca" else "system's CA") in message
    failed = DirectorySyncRun.objects.filter(directory=directory).first()
    assert (failed.status, failed.errors) == ("failed", [message])
    directory.refresh_from_db()
    assert directory.last_success_at == synced_at
    assert closure(directory) == OPENLDAP_CLOSURE  # fail closed: nothing read, nothing removed
    assert principals_for(alice) == groups_before


def test_a_server_that_is_down_is_not_reported_as_a_tls_problem(tls_openldap):
    directory = tls_openldap(f"ldaps://127.0.0.1:{free_port()}")
    with pytest.raises(DirectoryUnavailable) as raised:
        directory_sync(directory=directory, full=True)
    assert "TLS" not in str(raised.value) and "Can't contact LDAP server" in str(raised.value)


def test_each_connection_has_its_own_trust_in_one_process(tls_openldap, tls_slapd, wrong_ca_file):
    trusting = tls_openldap(tls_slapd.ldaps_url, key="trusting")
    distrusting = tls_openldap(tls_slapd.ldaps_url, ca_file=wrong_ca_file, key="distrusting")
    for _ in range(2):  # neither order leaks one context's trust into the other
        assert directory_sync(directory=trusting, full=True).status == "succeeded"
        with pytest.raises(DirectoryUnavailable, match="TLS handshake"):
            directory_sync(directory=distrusting, full=True)
    assert DirectoryUser.objects.filter(directory=distrusting).count() == 0


def test_sign_in_options_set_the_ca_file_before_the_new_tls_context(tls_openldap, tls_slapd):
    options = list(directory_ldap_settings(tls_openldap(tls_slapd.ldaps_url)).CONNECTION_OPTIONS)
    assert options.index(ldap.OPT_X_TLS_CACERTFILE) < options.index(ldap.OPT_X_TLS_NEWCTX) == len(options) - 1


@pytest.fixture
def ldap_sign_in(settings):
    settings.KBSEARCH_LDAP_SIGN_IN = True
    settings.AUTHENTICATION_BACKENDS = [LDAP_BACKEND, MODEL_BACKEND]


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_sign_in_over_tls_works_with_the_ca_file_and_is_refused_with_another(
    tls_openldap, tls_slapd, wrong_ca_file, ldap_sign_in, transport, caplog
):
    directory = directory_for(tls_openldap, tls_slapd, transport)
    directory_sync(directory=directory, full=True)
    user = authenticate(username="alice", password=PASSWORDS["alice"])
    assert user is not None and user.username == "alice" and user.backend == LDAP_BACKEND

    directory.ca_file = str(wrong_ca_file)
    directory.save()
    with caplog.at_level(logging.WARNING, logger="access.authentication"):
        assert authenticate(username="bob", password=PASSWORDS["bob"]) is None
    assert not User.objects.filter(username="bob").exists()
    refused = AuditEvent.objects.filter(kind=AuditEvent.Kind.SIGN_IN_FAILED).first()
    assert (refused.actor, refused.details["reason"], refused.directory) == ("bob", "directory_unavailable", directory)
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "TLS" in logged and str(wrong_ca_file) in logged and PASSWORDS["bob"] not in logged
