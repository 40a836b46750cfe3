"""Signing in with the directory against the real slapd: the login page and ``authenticate``, wrong
passwords, non-ASCII users, disabled, deleted and not-yet-synced users, the directory down while a
local superuser still signs in, local accounts never taken over, the trusted proxy header (only
from configured addresses, only for enabled directory users), the audit log, and the principals a
directory-signed-in user searches with."""
import json
import logging

import ldap
import pytest
from django.contrib.auth import SESSION_KEY, authenticate
from django.contrib.auth.models import User
from django.test import Client

from access.authentication import LDAP_BACKEND, PROXY_BACKEND
from access.models import AuditEvent
from access.services import directory_sync
from kbsearch.search.services import search_run
from scripts.slapd import free_port
from tests.access.directory_data import AD_PASSWORDS, PASSWORDS, PEOPLE, ad_user_dn, person_dn

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
PROXY = "10.0.0.5"  # inside the configured 10.0.0.0/24
ELSEWHERE = "203.0.113.9"


@pytest.fixture(autouse=True)
def _directory_sign_in(settings):
    settings.KBSEARCH_LDAP_SIGN_IN = True
    settings.AUTHENTICATION_BACKENDS = [LDAP_BACKEND, MODEL_BACKEND]
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"


@pytest.fixture
def synced(openldap):
    directory_sync(directory=openldap, full=True)
    return openldap


@pytest.fixture
def synced_ad(ad):
    directory_sync(directory=ad, full=True)
    return ad


def sign_in(username: str, password: str) -> tuple[Client, object]:
    client = Client()
    return client, client.post("/accounts/login/", {"username": username, "password": password})


def signed_in_as(client: Client) -> str | None:
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id).username if user_id else None


def last_audit() -> AuditEvent:
    return AuditEvent.objects.filter(kind__in=[AuditEvent.Kind.SIGN_IN, AuditEvent.Kind.SIGN_IN_FAILED]).first()


def test_the_login_page_signs_a_directory_user_in_and_creates_their_account(synced):
    client, response = sign_in("alice", PASSWORDS["alice"])
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in_as(client) == "alice"
    user = User.objects.get(username="alice")
    assert (user.first_name, user.last_name, user.email) == ("Alice", "Archer", "alice@example.com")
    # Nothing granted from LDAP: no password here, no groups, no flags.
    assert not user.has_usable_password() and not user.is_staff and not user.is_superuser
    assert not user.groups.exists() and not user.user_permissions.exists()
    event = last_audit()
    assert (event.kind, event.actor, event.directory, event.details["method"]) == ("sign_in", "alice", synced, "ldap")
    assert client.get("/").status_code == 200


def test_authenticate_maps_any_spelling_onto_the_directory_name(synced):
    first = authenticate(username="ALICE", password=PASSWORDS["alice"])
    again = authenticate(username=" alice ", password=PASSWORDS["alice"])
    assert first is not None and first.username == "alice" and first.backend == LDAP_BACKEND
    assert again.pk == first.pk and User.objects.count() == 1


def test_a_wrong_password_is_refused_with_no_session_and_no_account(synced):
    client, response = sign_in("alice", "not-her-password")
    assert response.status_code == 200 and "did not match" in response.content.decode()
    assert signed_in_as(client) is None and not User.objects.exists()
    assert authenticate(username="alice", password="not-her-password") is None
    event = last_audit()
    assert (event.kind, event.actor, event.details["reason"], event.directory) == ("sign_in_failed", "alice", "rejected", synced)
    # The audit log never holds a password, tried or real.
    logged = json.dumps(list(AuditEvent.objects.values("actor", "summary", "details")), ensure_ascii=False)
    assert "not-her-password" not in logged and PASSWORDS["alice"] not in logged


def test_a_non_ascii_user_signs_in_with_a_non_ascii_password(synced):
    client, response = sign_in("tanaka", PASSWORDS["tanaka"])
    assert response.status_code == 302 and signed_in_as(client) == "tanaka"
    user = User.objects.get(username="tanaka")
    assert (user.first_name, user.last_name, user.email) == ("太郎", "田中", "tanaka@example.co.jp")


def test_an_ad_user_signs_in_by_sam_account_name(synced_ad):
    user = authenticate(username="hanako", password=AD_PASSWORDS["hanako"])
    assert user is not None and user.username == "hanako" and user.email == "hanako@example.com"


def test_a_disabled_directory_user_is_refused_although_ldap_accepts_the_password(synced_ad, slapd):
    conn = ldap.initialize(slapd.url)
    conn.simple_bind_s(ad_user_dn("Mary Lee"), AD_PASSWORDS["mlee"])  # slapd accepts it: the refusal is ours
    conn.unbind_s()
    assert authenticate(username="mlee", password=AD_PASSWORDS["mlee"]) is None
    assert not User.objects.filter(username="mlee").exists()
    assert last_audit().details["reason"] == "disabled"


def test_a_user_in_ldap_but_not_yet_synced_is_refused_until_the_next_sync(synced, slapd):
    slapd.ldapmodify(
        f"dn: uid=newhire,{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: newhire\ncn: New Hire\n"
        "sn: Hire\nmail: newhire@example.com\nuserPassword: newhire-pass-1\n"
    )
    assert authenticate(username="newhire", password="newhire-pass-1") is None
    assert last_audit().details["reason"] == "unknown"
    directory_sync(directory=synced)
    assert authenticate(username="newhire", password="newhire-pass-1").username == "newhire"


def test_a_user_deleted_from_the_directory_loses_their_session_and_cannot_sign_in_again(synced, slapd):
    client, _ = sign_in("alice", PASSWORDS["alice"])
    assert client.get("/").status_code == 200
    slapd.ldapmodify(f"dn: {person_dn('alice')}\nchangetype: delete\n")
    directory_sync(directory=synced)
    assert client.get("/").status_code == 302  # the session's user is no longer vouched for
    assert authenticate(username="alice", password=PASSWORDS["alice"]) is None


def test_directory_down_refuses_cleanly_while_a_local_superuser_signs_in(synced):
    User.objects.create_superuser("admin", password="local-admin-pw")
    synced.server_urls = f"ldap://127.0.0.1:{free_port()}"  # nothing listens there
    synced.save()
    client, response = sign_in("alice", PASSWORDS["alice"])
    assert response.status_code == 200 and signed_in_as(client) is None
    event = last_audit()
    assert (event.details["reason"], event.directory) == ("directory_unavailable", synced)
    admin, response = sign_in("admin", "local-admin-pw")
    assert response.status_code == 302 and signed_in_as(admin) == "admin"
    assert last_audit().details["method"] == "local"


def test_a_local_account_is_never_taken_over_by_a_directory_sign_in(synced):
    User.objects.create_user("bob", password="bob-local-pw")
    assert authenticate(username="bob", password=PASSWORDS["bob"]) is None  # LDAP's password: refused
    assert last_audit().details["reason"] == "local_account"
    assert authenticate(username="bob", password="bob-local-pw").backend == MODEL_BACKEND


def test_a_directory_signed_in_user_searches_with_their_directory_principals(synced, kb):
    client, _ = sign_in("tanaka", PASSWORDS["tanaka"])
    user = User.objects.get(pk=client.session[SESSION_KEY])
    found = {result.document.external_id for result in search_run(user=user, query="handbook", mode="bm25", limit=50).results}
    assert found == {"welcome/welcome.md", "platform/runbook.md", "eigyo/plan.md"}


@pytest.fixture
def kb_files():
    return {
        "welcome/_access.yaml": "principals: [public]\n",
        "welcome/welcome.md": "# Welcome\n\nThe handbook starts here.\n",
        "platform/_access.yaml": "principals: [group:platform]\n",
        "platform/runbook.md": "# Platform runbook\n\nThe handbook for the platform team.\n",
        "eigyo/_access.yaml": "principals: ['group:営業部']\n",
        "eigyo/plan.md": "# 営業計画\n\nThe sales handbook, 営業部 only.\n",
        "sales/_access.yaml": "principals: [group:sales]\n",
        "sales/targets.md": "# Targets\n\nThe sales team's handbook.\n",
        "alice/_access.yaml": "principals: [user:alice]\n",
        "alice/notes.md": "# Alice notes\n\nAlice's own handbook notes.\n",
    }


@pytest.fixture
def proxy(settings):
    settings.KBSEARCH_TRUSTED_PROXY_HEADER = "X-Remote-User"
    settings.KBSEARCH_TRUSTED_PROXY_ADDRESSES = ["10.0.0.0/24", "192.0.2.7"]
    settings.AUTHENTICATION_BACKENDS = [PROXY_BACKEND, MODEL_BACKEND]


def from_address(address: str, username: str) -> Client:
    client = Client(REMOTE_ADDR=address, HTTP_X_REMOTE_USER=username)
    client.response = client.get("/")
    return client


def test_the_proxy_header_is_honoured_from_a_configured_address(synced, proxy):
    client = from_address(PROXY, "alice")
    assert client.response.status_code == 200 and signed_in_as(client) == "alice"
    assert from_address("192.0.2.7", "tanaka").response.status_code == 200
    event = AuditEvent.objects.filter(actor="alice").first()
    assert (event.kind, event.details["method"], event.details["address"]) == ("sign_in", "proxy", PROXY)
    assert not User.objects.get(username="alice").has_usable_password()


def test_the_proxy_header_from_another_address_is_ignored_and_logged(synced, proxy, caplog):
    with caplog.at_level(logging.WARNING, logger="access.middleware"):
        client = from_address(ELSEWHERE, "alice")
    assert client.response.status_code == 302 and signed_in_as(client) is None
    assert not User.objects.exists()
    assert any(ELSEWHERE in record.getMessage() for record in caplog.records)


def test_a_proxy_session_ends_when_the_header_stops_coming_or_comes_from_elsewhere(synced, proxy):
    for later in ({"REMOTE_ADDR": PROXY}, {"REMOTE_ADDR": ELSEWHERE},
                  {"REMOTE_ADDR": ELSEWHERE, "HTTP_X_REMOTE_USER": "alice"}):
        client = from_address(PROXY, "alice")
        assert signed_in_as(client) == "alice"
        del client.defaults["HTTP_X_REMOTE_USER"]
        response = client.get("/", **later)
        assert response.status_code == 302 and signed_in_as(client) is None, later
    # A password session is not the proxy's to end.
    User.objects.create_user("root", password="pw-root")
    client, _ = sign_in("root", "pw-root")
    assert client.get("/", REMOTE_ADDR=ELSEWHERE).status_code == 200 and signed_in_as(client) == "root"


def test_the_proxy_header_is_ignored_when_the_setting_is_off(synced, settings):
    settings.KBSEARCH_TRUSTED_PROXY_HEADER = ""
    settings.KBSEARCH_TRUSTED_PROXY_ADDRESSES = ["10.0.0.0/24"]
    client = from_address(PROXY, "alice")
    assert client.response.status_code == 302 and signed_in_as(client) is None


def test_the_proxy_header_is_refused_for_users_unknown_or_disabled_in_the_directory(synced, synced_ad, proxy):
    for name, reason in (("zoe", "unknown"), ("mlee", "disabled")):
        client = from_address(PROXY, name)
        assert client.response.status_code == 302 and signed_in_as(client) is None
        event = last_audit()
        assert (event.kind, event.actor, event.details["reason"]) == ("sign_in_failed", name, reason)
    assert not User.objects.exists()


def test_a_name_now_on_another_entry_than_the_synced_one_is_refused(synced, slapd):
    # grace's entry is replaced by another one carrying her uid: the bind would find a different person.
    slapd.ldapmodify(
        f"dn: {person_dn('grace')}\nchangetype: delete\n\n"
        f"dn: cn=Grace Two,{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: grace\ncn: Grace Two\n"
        "sn: Two\nuserPassword: grace-two-pass\n"
    )
    assert authenticate(username="grace", password="grace-two-pass") is None
    assert last_audit().details["reason"] == "entry_changed_since_sync"
