"""Source-scoped principals (``source/<key>/...``) on the permissions pages: explained by the
``SourceIdentity`` row that maps them to the user or to a group in the user's chain, and resolved
to accounts through it, under the directory resolver and a real identity mapping of the share."""
import pytest
from django.contrib.auth.models import User

from access.mapping import identity_mapping_set
from access.models import SourceIdentity
from kbsearch.documents.selectors import document_visible_ids
from kbsearch.documents.services import document_set_access

TEAM, ALICE, GHOST = (
    "source/share/group:engineering", "source/share/user:alice@example.com", "source/share/user:ghost@example.com"
)


@pytest.fixture
def mapped(kb, users, synced):
    # The share's identities become its own: groups matched by cn, users by email.
    identity_mapping_set(source_key="share", user_key="email", group_key="cn")
    document_set_access(document=kb["hr/salaries.md"], principals=["group:engineering", "user:ghost@example.com"])
    document_set_access(document=kb["drafts/draft.md"], principals=["user:alice@example.com"])
    statuses = dict(SourceIdentity.objects.filter(principal__in=[TEAM, ALICE, GHOST]).values_list("principal", "status"))
    assert statuses == {TEAM: "mapped", ALICE: "mapped", GHOST: "unmapped"}
    for document in kb.values():
        document.refresh_from_db()
    return kb


def test_a_source_scoped_principal_is_explained_by_its_identity_and_the_chain(mapped, admin_client):
    access = admin_client.get("/admin/permissions/effective-access/", {"username": "alice"}).context["access"]
    # Exactly her directory chain (engineering in platform in staff), the same groups as the share
    # names them, her own two names and public; an extra source identity here would be a leak.
    assert set(access.principals) == {
        "public", "user:alice", "group:engineering", "group:platform", "group:staff",
        ALICE, TEAM, "source/share/group:platform", "source/share/group:staff",
    }
    (team,) = access.reasons[TEAM]
    assert team.kind == "source_identity" and team.identity.principal == TEAM
    assert team.chain.names == ("platform", "engineering")
    (own,) = access.reasons[ALICE]
    assert own.kind == "source_identity" and own.chain is None and "directory user corp-ldap:alice" in own.text


def test_why_and_who_through_source_identities(mapped, admin_client):
    salaries = mapped["hr/salaries.md"]
    verdict = admin_client.get("/admin/permissions/why/", {"username": "tanaka", "document": salaries.pk}).context["verdict"]
    assert verdict.visible and [principal for principal, _ in verdict.granting] == [TEAM]
    audience = admin_client.get("/admin/permissions/who/", {"document": salaries.pk}).context["audience"]
    listed = {user.username for user, _ in audience.visible}
    seers = {user.username for user in User.objects.all() if document_visible_ids(user=user, document_ids=[salaries.pk])}
    assert listed == {"alice", "tanaka", "bob"} == seers  # engineering, through platform for two of them
    draft = admin_client.get("/admin/permissions/who/", {"document": mapped["drafts/draft.md"].pk}).context["audience"]
    assert {user.username for user, _ in draft.visible} == {"alice"}
    hidden = admin_client.get("/admin/permissions/why/", {"username": "carol", "document": salaries.pk}).context["verdict"]
    assert not hidden.visible and hidden.access_list == sorted([TEAM, GHOST])
