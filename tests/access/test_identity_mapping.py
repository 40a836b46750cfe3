"""Identity mapping end to end: file shares whose principals are scoped to them, mapped onto users and
groups synced from slapd by email, UPN, sAMAccountName, cn, DN and SID; what each user then finds
through search (exact sets of titles); ambiguous and unmapped identities visible to nobody; a
membership removed in LDAP gone after the next incremental sync with nothing re-embedded; a new
mapping re-scoping documents already stored."""
import pytest
from django.contrib.auth.models import Group, User

from access.mapping import identity_mapping_set
from access.models import AuditEvent, SourceIdentity
from access.resolvers import principals_for
from access.services import directory_create, directory_sync
from kbsearch.documents.models import Chunk, DocumentAccess
from kbsearch.search.services import search_run
from scripts.slapd import SERVICE_DN
from tests.access.conftest import PASSWORD_VARIABLE
from tests.access.directory_data import AD_DOMAIN_SID, GROUPS, PEOPLE, ad_group_dn, group_dn, person_dn
from tests.counting_encoder import CountingEncoder
from tests.knowledge_base import source_from_files, use_encoder

SHARE = {
    "welcome/_access.yaml": "principals: [public]\n",
    "welcome/welcome.md": "# Welcome\n\nThe handbook starts here.\n",
    "eng/_access.yaml": "principals: [group:engineering]\n",
    "eng/design.md": "# Engineering design\n\nThe engineering handbook.\n",
    "platform/_access.yaml": "principals: [group:platform]\n",
    "platform/runbook.md": "# Platform runbook\n\nThe platform handbook.\n",
    "mail/_access.yaml": "principals: [user:Alice@Example.com]\n",
    "mail/alice.md": "# Alice by email\n\nA handbook page for Alice, named by her email.\n",
    "sales/_access.yaml": "principals: [group:sales, user:grace@example.com]\n",
    "sales/plan.md": "# Sales plan\n\nThe sales handbook, and Grace's.\n",
    "ghost/_access.yaml": "principals: [user:ghost@example.com, group:no-such-group]\n",
    "ghost/lost.md": "# Lost page\n\nA handbook page for identities no directory has.\n",
}
WELCOME = {"Welcome"}
EVERYONE = ("Alice", "bob", "tanaka", "carol", "grace", "zoe")


@pytest.fixture(autouse=True)
def _directory_resolver(settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"


@pytest.fixture
def encoder(tiny_encoder, monkeypatch):
    counting = CountingEncoder(tiny_encoder)
    use_encoder(monkeypatch, counting)
    return counting


@pytest.fixture
def add_share(tmp_path, encoder, index_backend):
    def add(key: str, files: dict[str, str]):
        return source_from_files(root=tmp_path / key, key=key, name=key.title(), files=files, encoder=encoder, check=False)

    return add


@pytest.fixture
def people(db):
    names = ("Alice", "bob", "tanaka", "carol", "grace", "zoe", "jsmith", "hanako", "mlee")
    return {name: User.objects.create_user(name) for name in names}


def titles(user) -> set[str]:
    response = search_run(user=user, query="handbook", mode="bm25", limit=50)
    return {result.document.title for result in response.results}


def test_users_see_exactly_what_their_mapped_identities_allow(people, openldap, add_share):
    directory_sync(directory=openldap, full=True)
    identity_mapping_set(source_key="share", user_key="email", group_key="cn", directory_key="corp-ldap")
    add_share("share", SHARE)
    expected = {
        "Alice": WELCOME | {"Engineering design", "Platform runbook", "Alice by email"},
        "bob": WELCOME | {"Engineering design"},
        "tanaka": WELCOME | {"Engineering design", "Platform runbook"},
        "carol": WELCOME | {"Sales plan"},
        "grace": WELCOME | {"Sales plan"},  # by her email, in no group
        "zoe": WELCOME,  # unknown to the directory
    }
    assert {name: titles(people[name]) for name in EVERYONE} == expected
    # Stored and indexed as the source's own identities, never as the company's names.
    assert set(DocumentAccess.objects.values_list("principal", flat=True)) == {
        "public", "source/share/group:engineering", "source/share/group:platform", "source/share/user:alice@example.com",
        "source/share/group:sales", "source/share/user:grace@example.com", "source/share/user:ghost@example.com",
        "source/share/group:no-such-group",
    }
    statuses = dict(SourceIdentity.objects.values_list("principal", "status"))
    assert statuses["source/share/user:ghost@example.com"] == "unmapped"
    assert statuses["source/share/group:no-such-group"] == "unmapped"
    assert sorted(status for status in statuses.values()) == ["mapped"] * 5 + ["unmapped"] * 2
    assert "source/share/group:engineering" in principals_for(people["bob"])
    assert not any(p.startswith("source/") for p in principals_for(people["zoe"]))


def test_a_source_group_is_not_the_directory_group_of_that_name_until_mapped_so(people, openldap, add_share):
    directory_sync(directory=openldap, full=True)
    # "wiki" maps groups by DN: its group "engineering" names no directory group.
    identity_mapping_set(source_key="wiki", user_key="email", group_key="dn")
    add_share("share", {"_access.yaml": "principals: [group:engineering]\n", "a.md": "# Share engineering\n\nhandbook\n"})
    add_share("wiki", {"_access.yaml": "principals: [group:engineering]\n", "b.md": "# Wiki engineering\n\nhandbook\n"})
    # The unmapped share names the company namespace, as it always has.
    assert titles(people["bob"]) == {"Share engineering"}
    assert SourceIdentity.objects.get(principal="source/wiki/group:engineering").status == "unmapped"
    identity_mapping_set(source_key="wiki", user_key="email", group_key="cn")
    assert titles(people["bob"]) == {"Share engineering", "Wiki engineering"}
    assert titles(people["carol"]) == set()


def test_groups_by_dn(people, openldap, add_share):
    directory_sync(directory=openldap, full=True)
    identity_mapping_set(source_key="share", user_key="dn", group_key="dn")
    add_share("share", {
        "staff/_access.yaml": f"principals: ['group:{group_dn('staff').upper()}']\n",
        "staff/a.md": "# Staff by DN\n\nhandbook\n",
        "bob/_access.yaml": f"principals: ['user:UID=bob, {PEOPLE}']\n",  # spaced and in other case: same DN
        "bob/b.md": "# Bob by DN\n\nhandbook\n",
    })
    assert titles(people["carol"]) == {"Staff by DN"}  # staff through sales
    assert titles(people["bob"]) == {"Staff by DN", "Bob by DN"}
    assert titles(people["grace"]) == set()


def test_ad_users_by_upn_and_sam_account_name_groups_by_dn_account_name_and_sid(people, ad, add_share):
    directory_sync(directory=ad, full=True)
    readers_sid = "S-1-5-" + "-".join(str(part) for part in (*AD_DOMAIN_SID, 2001))
    identity_mapping_set(source_key="sp", user_key="upn", group_key="dn", directory_key="corp-ad")
    identity_mapping_set(source_key="sam", user_key="username", group_key="account_name")
    identity_mapping_set(source_key="sid", user_key="sid", group_key="sid")
    add_share("sp", {
        "j/_access.yaml": "principals: [user:JSmith@corp.example.com]\n", "j/a.md": "# John by UPN\n\nhandbook\n",
        "r/_access.yaml": f"principals: ['group:{ad_group_dn('Readers')}']\n", "r/b.md": "# Readers by DN\n\nhandbook\n",
    })
    add_share("sam", {
        "h/_access.yaml": "principals: [user:hanako]\n", "h/a.md": "# Hanako by account name\n\nhandbook\n",
        "s/_access.yaml": "principals: ['group:All Staff']\n", "s/b.md": "# All staff by account name\n\nhandbook\n",
    })
    add_share("sid", {"_access.yaml": f"principals: ['group:{readers_sid}']\n", "a.md": "# Readers by SID\n\nhandbook\n"})
    assert titles(people["jsmith"]) == {
        "John by UPN", "Readers by DN", "All staff by account name", "Readers by SID",  # Readers is in All Staff
    }
    assert titles(people["hanako"]) == {"Hanako by account name", "All staff by account name"}
    assert titles(people["mlee"]) == set()  # disabled: nothing, mapped or not
    assert titles(people["Alice"]) == set()  # not in this directory's sync at all


def test_an_email_in_two_directories_is_ambiguous_and_maps_to_nobody(people, openldap, slapd, add_share):
    twin = directory_create(
        key="corp-ldap-twin", kind="openldap", server_urls=slapd.url, bind_dn=SERVICE_DN,
        bind_password_env=PASSWORD_VARIABLE, user_base_dn=PEOPLE, group_base_dn=GROUPS, timeout_seconds=5,
    )
    directory_sync(directory=openldap, full=True)
    directory_sync(directory=twin, full=True)
    identity_mapping_set(source_key="share", user_key="email", group_key="cn")  # every enabled directory
    add_share("share", SHARE)
    ambiguous = set(SourceIdentity.objects.filter(status="ambiguous").values_list("principal", flat=True))
    assert ambiguous == {
        "source/share/group:engineering", "source/share/group:platform", "source/share/user:alice@example.com",
        "source/share/group:sales", "source/share/user:grace@example.com",
    }
    assert {name: titles(people[name]) for name in EVERYONE} == {name: WELCOME for name in EVERYONE}
    # Naming the directory settles it.
    identity_mapping_set(source_key="share", user_key="email", group_key="cn", directory_key="corp-ldap-twin")
    assert titles(people["Alice"]) == WELCOME | {"Engineering design", "Platform runbook", "Alice by email"}
    event = AuditEvent.objects.filter(kind=AuditEvent.Kind.MAPPING_CHANGED).first()
    assert event.details["source"] == "share" and event.details["counts"] == {"mapped": 5}
    # Switching the twin off leaves one directory with those names.
    identity_mapping_set(source_key="share", user_key="email", group_key="cn")
    assert titles(people["bob"]) == WELCOME
    directory_create(key="corp-ldap-twin", kind="openldap", server_urls=slapd.url, user_base_dn=PEOPLE,
                     group_base_dn=GROUPS, enabled=False)
    assert titles(people["bob"]) == WELCOME | {"Engineering design"}


def test_a_membership_removed_in_ldap_is_gone_after_the_next_incremental_sync_without_reembedding(
    people, openldap, slapd, add_share, encoder
):
    directory_sync(directory=openldap, full=True)
    identity_mapping_set(source_key="share", user_key="email", group_key="cn", directory_key="corp-ldap")
    add_share("share", SHARE)
    assert "Platform runbook" in titles(people["Alice"])
    embedded, chunks = encoder.passages, list(Chunk.objects.order_by("pk").values_list("pk", "text"))
    slapd.ldapmodify(f"dn: {group_dn('platform')}\nchangetype: modify\ndelete: member\nmember: {person_dn('alice')}\n")
    assert directory_sync(directory=openldap).mode == "incremental"
    assert titles(people["Alice"]) == WELCOME | {"Alice by email"}  # engineering came through platform too
    assert titles(people["tanaka"]) == WELCOME | {"Engineering design", "Platform runbook"}
    assert encoder.passages == embedded
    assert list(Chunk.objects.order_by("pk").values_list("pk", "text")) == chunks


def test_a_changed_or_deleted_directory_user_is_remapped_by_the_sync(people, openldap, slapd, add_share):
    directory_sync(directory=openldap, full=True)
    identity_mapping_set(source_key="share", user_key="email", group_key="cn", directory_key="corp-ldap")
    add_share("share", SHARE)
    slapd.ldapmodify(f"dn: {person_dn('alice')}\nchangetype: modify\nreplace: mail\nmail: alice.archer@example.com\n")
    directory_sync(directory=openldap)
    assert SourceIdentity.objects.get(principal="source/share/user:alice@example.com").status == "unmapped"
    assert titles(people["Alice"]) == WELCOME | {"Engineering design", "Platform runbook"}
    event = AuditEvent.objects.filter(kind=AuditEvent.Kind.MAPPING_CHANGED, actor="sync").first()
    assert event.details["changes"] == [["source/share/user:alice@example.com", "unmapped", 0]]
    slapd.ldapmodify(f"dn: {person_dn('grace')}\nchangetype: delete\n")
    directory_sync(directory=openldap)
    assert SourceIdentity.objects.get(principal="source/share/user:grace@example.com").status == "unmapped"


def test_a_new_mapping_rescopes_stored_documents_without_reembedding(people, openldap, add_share, encoder):
    directory_sync(directory=openldap, full=True)
    add_share("share", SHARE)
    assert "group:platform" in set(DocumentAccess.objects.values_list("principal", flat=True))
    # Unmapped, the share names the company namespace; its email principals match nobody's username.
    assert titles(people["Alice"]) == WELCOME | {"Engineering design", "Platform runbook"}
    embedded, chunks = encoder.passages, list(Chunk.objects.values_list("pk", flat=True))
    identity_mapping_set(source_key="share", user_key="email", group_key="cn")
    assert not DocumentAccess.objects.filter(principal__startswith="group:").exists()
    assert not DocumentAccess.objects.filter(principal__startswith="user:").exists()
    assert titles(people["Alice"]) == WELCOME | {"Engineering design", "Platform runbook", "Alice by email"}
    assert titles(people["grace"]) == WELCOME | {"Sales plan"}
    assert encoder.passages == embedded and list(Chunk.objects.values_list("pk", flat=True)) == chunks


def test_a_busy_source_is_rescoped_by_its_next_sync(people, openldap, add_share, encoder, monkeypatch):
    from connectors.services import source_sync
    from kbsearch.documents import scoping
    from kbsearch.documents.locks import SourceBusy
    from kbsearch.documents.models import Source

    def busy(*_args, **_kwargs):
        raise SourceBusy("being synced")

    directory_sync(directory=openldap, full=True)
    add_share("share", SHARE)
    monkeypatch.setattr(scoping, "source_lock", busy)
    identity_mapping_set(source_key="share", user_key="email", group_key="cn")
    assert DocumentAccess.objects.filter(principal="group:platform").exists()  # not yet
    monkeypatch.undo()
    use_encoder(monkeypatch, encoder)
    embedded = encoder.passages
    run = source_sync(source=Source.objects.get(key="share"), encoder=encoder)  # a poll: no file changed
    assert run.counts["access_updated"] == 5 and run.counts["created"] == run.counts["updated"] == 0
    assert not DocumentAccess.objects.filter(principal__startswith="group:").exists()
    assert titles(people["Alice"]) == WELCOME | {"Engineering design", "Platform runbook", "Alice by email"}
    assert encoder.passages == embedded


def test_a_principal_scoped_to_another_source_is_rejected(people, openldap, add_share):
    directory_sync(directory=openldap, full=True)
    identity_mapping_set(source_key="share", user_key="email", group_key="cn")
    source = add_share("share", {
        "own/_access.yaml": "principals: [source/share/group:platform]\n", "own/a.md": "# Own scope\n\nhandbook\n",
        "theirs/_access.yaml": "principals: [source/wiki/group:platform]\n", "theirs/b.md": "# Claimed\n\nhandbook\n",
    })
    run = source.sync_runs.get()
    assert [error["external_id"] for error in run.errors] == ["theirs/b.md"]
    assert "identity of source 'wiki'" in run.errors[0]["reason"]
    assert titles(people["Alice"]) == {"Own scope"}
    assert not SourceIdentity.objects.filter(source_key="wiki").exists()


def test_the_django_groups_resolver_never_grants_scoped_principals(people, openldap, add_share, settings):
    directory_sync(directory=openldap, full=True)
    identity_mapping_set(source_key="share", user_key="username", group_key="cn")
    add_share("share", {"_access.yaml": "principals: [group:engineering, user:bob]\n", "a.md": "# Mapped\n\nhandbook\n"})
    assert titles(people["bob"]) == {"Mapped"}
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DjangoGroupsPrincipalResolver"
    people["bob"].groups.add(Group.objects.create(name="engineering"))
    assert principals_for(people["bob"]) == {"public", "user:bob", "group:engineering"}
    assert titles(people["bob"]) == set()
