"""``make demo`` on its directory, end to end: the bundled LDIF in a real slapd (started by the demo
runner's own function), ``add_directory`` with the runner's arguments, ``sync_directory --full``,
``demo_setup --directory``, then people signing in on the login page through LDAP and searching.

What each person may see is written by hand below from demo/README.md's table (folders per user);
the documents in those folders are listed from ``demo/sample_kb``. A query returns every document
the user may see (hybrid search has no threshold), so each search is checked for exactly that set,
for the README's expected answer being there or not, and for that answer's marker text (a figure
only its folder's documents contain) never reaching a user who may not read it.
"""
import socket
from pathlib import Path

import ldap
import pytest
import yaml
from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from access.authentication import LDAP_BACKEND
from access.models import DirectoryMembership, DirectoryUserEdge
from kbsearch.documents.models import Document
from scripts.demo import (
    PASSWORD_VARIABLE,
    SUFFIX,
    DemoError,
    add_directory_arguments,
    demo_slapd_start,
    stale_slapd_stop,
)
from scripts.slapd import SERVICE_PASSWORD, free_port
from tests.knowledge_base import use_encoder

DEMO = Path(django_settings.BASE_DIR) / "demo"
PASSWORD = "kbsearch-demo"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# demo/README.md, "Users": the folders of demo/sample_kb each person may read.
FOLDERS = {
    "alice": {"public", "hr", "hr/managers"},
    "bob": {"public", "engineering"},  # engineering only through platform
    "carol": {"public", "engineering", "engineering/security"},  # security folder names user:carol
    "dave": {"public", "hr", "hr/managers"},  # both through hr-leads
    "erin": {"public"},
    "hanako": {"public", "engineering", "hr/managers"},  # managers without hr: inherit: true
    "wei": {"public", "engineering", "engineering/security"},  # engineering through security
    "admin": {"public"},  # local, unknown to the directory
}
# demo/README.md queries 8, 12 and 15: the expected answer and a marker only its folder holds.
QUERIES = {
    "salary band L3 Tokyo": ("hr/salary-bands-2026.en.html", "7,800,000"),
    "部署 回滚": ("engineering/deployment-runbook.zh.md", "v4.11.3"),
    "robot CA rotation": ("engineering/security/key-rotation.ja.md", "robot issuing ca"),
}


def sample_documents() -> dict[str, str]:
    """{external id: folder} of every document in demo/sample_kb."""
    root = DEMO / "sample_kb"
    return {
        str(path.relative_to(root)): str(path.parent.relative_to(root))
        for path in root.rglob("*") if path.is_file() and path.name != "_access.yaml"
    }


def visible(name: str) -> set[str]:
    return {external_id for external_id, folder in sample_documents().items() if folder in FOLDERS[name]}


@pytest.fixture(scope="module")
def demo_slapd(tmp_path_factory):
    server = demo_slapd_start(tmp_path_factory.mktemp("demo-ldap") / "ldap", port=free_port())
    yield server
    server.stop()


@pytest.fixture
def demo_settings(settings, monkeypatch):
    monkeypatch.setenv(PASSWORD_VARIABLE, SERVICE_PASSWORD)  # as scripts/demo.py sets it
    settings.KBSEARCH_LDAP_SIGN_IN = True
    settings.AUTHENTICATION_BACKENDS = [LDAP_BACKEND, MODEL_BACKEND]
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"
    return settings


@pytest.fixture
def demo(db, demo_slapd, demo_settings, index_backend, tiny_encoder, monkeypatch):
    """What ``make demo`` runs before serving, through the same commands."""
    use_encoder(monkeypatch, tiny_encoder)
    call_command(*add_directory_arguments(demo_slapd), verbosity=0)
    call_command("sync_directory", "demo", "--full", verbosity=0)
    call_command("demo_setup", "--directory", "demo", verbosity=0)
    return {d.pk: d.external_id for d in Document.objects.filter(source__key="handbook")}


def sign_in(username: str, password: str = PASSWORD) -> tuple[Client, object]:
    client = Client()
    return client, client.post("/accounts/login/", {"username": username, "password": password})


def signed_in_as(client: Client) -> str | None:
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id).username if user_id else None


def test_each_person_signs_in_through_ldap_and_sees_exactly_their_folders(demo):
    assert set(demo.values()) == set(sample_documents())
    for name in FOLDERS:
        client, response = sign_in(name)
        assert response.status_code == 302 and response["Location"] == "/", (name, response.content[:300])
        assert signed_in_as(client) == name
        expected = visible(name)
        for query, (answer, marker) in QUERIES.items():
            response = client.get("/api/v1/search", {"q": query, "limit": 50})
            assert response.status_code == 200, response.content
            body = response.json()
            shown = {demo[result["document_id"]] for result in body["results"]}
            assert shown == expected and body["total"] == len(expected), (name, query, shown ^ expected)
            assert (answer in shown) == (answer in expected), (name, query)
            if answer not in expected:
                assert marker not in response.content.decode().casefold(), (name, query, marker)


def test_directory_people_get_accounts_without_local_passwords_or_groups(demo):
    for name in ("bob", "hanako", "wei"):
        client, _ = sign_in(name)
        assert signed_in_as(client) == name
    hanako, wei, bob = (User.objects.get(username=name) for name in ("hanako", "wei", "bob"))
    assert (hanako.first_name, hanako.last_name, hanako.email) == ("花子", "田中", "hanako.tanaka@northwind-robotics.example")
    assert (wei.first_name, wei.last_name) == ("伟", "王")
    for user in (hanako, wei, bob):
        assert not user.has_usable_password() and not user.groups.exists() and not user.is_staff


def test_the_page_shows_the_name_the_directory_displays_in_its_own_order(demo):
    for name, shown in (("hanako", "田中 花子"), ("wei", "王伟")):
        client, _ = sign_in(name)
        page = client.get("/").content.decode()
        assert f'<span class="account-name">{shown}</span>' in page, name


def test_a_wrong_password_is_refused_for_directory_people_and_the_local_admin(demo):
    for name in ("bob", "hanako", "wei", "admin"):
        client, response = sign_in(name, "kbsearch-demo-wrong")
        assert response.status_code == 200 and signed_in_as(client) is None, name
    client, _ = sign_in("wei", "")
    assert signed_in_as(client) is None
    # Not in the directory: no password lets a name the directory does not know sign in.
    client, _ = sign_in("mallory")
    assert signed_in_as(client) is None


def test_the_directory_groups_are_the_groups_users_yaml_gives_the_demo_without_a_directory(demo):
    spec = yaml.safe_load((DEMO / "users.yaml").read_text(encoding="utf-8"))
    closure: dict[str, set[str]] = {}
    for username, group in DirectoryMembership.objects.values_list("user__username", "group__name"):
        closure.setdefault(username, set()).add(group)
    assert {entry["username"]: set(entry["groups"]) for entry in spec["users"]} == {
        name: closure.get(name, set()) for name in sorted(FOLDERS) if name != "admin"
    }
    # Some access comes only through nesting: the groups that list these people directly.
    direct: dict[str, set[str]] = {}
    for username, group in DirectoryUserEdge.objects.values_list("user__username", "group__name"):
        direct.setdefault(username, set()).add(group)
    assert direct == {
        "alice": {"hr"}, "bob": {"platform"}, "carol": {"engineering"}, "dave": {"hr-leads"}, "erin": {"sales"},
        "hanako": {"platform", "managers"}, "wei": {"security"},
    }


def test_demo_setup_takes_over_the_local_accounts_of_a_directory_less_demo(db, demo_slapd, demo_settings, index_backend,
                                                                           tiny_encoder, monkeypatch):
    use_encoder(monkeypatch, tiny_encoder)
    with pytest.raises(CommandError, match="has never synced"):
        call_command("demo_setup", "--directory", "demo", verbosity=0)
    call_command("demo_setup", verbosity=0)  # `make demo DEMO_DIRECTORY=0` ran here before
    alice = User.objects.get(username="alice")
    assert alice.has_usable_password() and alice.groups.exists()
    call_command(*add_directory_arguments(demo_slapd), verbosity=0)
    call_command("sync_directory", "demo", "--full", verbosity=0)
    # A local account with a password is never bound through LDAP: only its local password works.
    client, _ = sign_in("alice")
    assert signed_in_as(client) == "alice" and client.session["_auth_user_backend"] == MODEL_BACKEND
    call_command("demo_setup", "--directory", "demo", verbosity=0)
    alice.refresh_from_db()
    assert not alice.has_usable_password() and not alice.groups.exists()
    assert User.objects.get(username="admin").check_password(PASSWORD)  # the local admin stays local
    client, _ = sign_in("alice")
    assert signed_in_as(client) == "alice" and client.session["_auth_user_backend"] == LDAP_BACKEND


def test_a_second_start_stops_the_slapd_a_killed_demo_left_and_loads_the_same_ids(tmp_path):
    folder, port = tmp_path / "demo-ldap", free_port()
    first = demo_slapd_start(folder, port=port)
    try:
        ids = _entry_ids(first)
        # The runner was killed: nothing stopped this slapd, its pid file and database are still there.
        second = demo_slapd_start(folder, port=port)
        try:
            assert first.process.wait(timeout=10) is not None
            assert _entry_ids(second) == ids and len(ids) == 7 + 7 + 4  # people, groups, suffix/service/ous
        finally:
            second.stop()
        assert stale_slapd_stop(folder) is None  # stopped properly: nothing left to stop
    finally:
        first.stop()


def _entry_ids(server) -> dict[str, str]:
    conn = server.admin()
    try:
        found = conn.search_s(SUFFIX, ldap.SCOPE_SUBTREE, "(objectClass=*)", ["entryUUID"])
    finally:
        conn.unbind_s()
    return {dn: attrs["entryUUID"][0].decode() for dn, attrs in found}


def test_a_taken_directory_port_is_refused_with_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DemoError, match=f"127.0.0.1:{port} is already in use"):
            demo_slapd_start(tmp_path / "demo-ldap", port=port)
