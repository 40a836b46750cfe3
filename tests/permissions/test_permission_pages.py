"""The permissions pages against a real directory: effective access with the exact group chains,
"why can user X see document Y" for visible and hidden documents, and "who can see document Y"
resolved to exactly the accounts search would show it to."""
import re

from django.contrib.auth.models import User

from access.models import DirectoryUser
from access.resolvers import principals_for
from kbsearch.documents.models import Document
from kbsearch.documents.selectors import document_visible_ids
from kbsearch.permissions.selectors import document_audience

EFFECTIVE, WHY, WHO = "/admin/permissions/effective-access/", "/admin/permissions/why/", "/admin/permissions/who/"


def text_of(response) -> str:
    """The page as text: tags dropped, whitespace collapsed, arrows kept."""
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).replace("&rarr;", "→")


def seers(document: Document) -> set[str]:
    """Every account search shows ``document`` to: the oracle the pages must match exactly."""
    return {user.username for user in User.objects.all() if document_visible_ids(user=user, document_ids=[document.pk])}


def chains_of(access, principal: str) -> list[tuple[str, ...]]:
    return [reason.chain.names for reason in access.reasons[principal] if reason.chain is not None]


def test_effective_access_shows_each_group_with_its_chain(kb, users, synced, admin_client):
    response = admin_client.get(EFFECTIVE, {"username": "alice"})
    assert response.status_code == 200
    access = response.context["access"]
    assert set(access.principals) == principals_for(users["alice"])
    assert set(access.principals) == {"public", "user:alice", "group:platform", "group:engineering", "group:staff"}
    assert chains_of(access, "group:platform") == [("platform",)]
    assert chains_of(access, "group:engineering") == [("platform", "engineering")]
    assert chains_of(access, "group:staff") == [("platform", "engineering", "staff")]
    assert [reason.kind for reason in access.reasons["public"]] == ["public"]
    assert [reason.kind for reason in access.reasons["user:alice"]] == ["own_name"]
    page = text_of(response)
    assert "alice → platform → engineering → staff" in page
    assert "access.resolvers.DirectoryPrincipalResolver" in page


def test_effective_access_of_a_cycle_and_of_a_user_unknown_to_the_directory(kb, users, synced, admin_client):
    dave = admin_client.get(EFFECTIVE, {"username": "dave"}).context["access"]
    assert chains_of(dave, "group:cycle-a") == [("cycle-a",)]
    assert chains_of(dave, "group:cycle-b") == [("cycle-a", "cycle-b")]  # the cycle ends, shortest chain
    eve = admin_client.get(EFFECTIVE, {"username": "eve"})
    assert eve.context["access"].principals == ["public"]
    assert "No synced directory knows this name" in text_of(eve)
    ivan = admin_client.get(EFFECTIVE, {"username": "ivan"})
    assert ivan.context["access"].principals == [] and "inactive" in text_of(ivan)


def test_effective_access_follows_the_configured_resolver(kb, users, openldap, admin_client):
    from access.services import directory_sync

    directory_sync(directory=openldap, full=True)  # synced, but the Django groups resolver is configured
    access = admin_client.get(EFFECTIVE, {"username": "zed"}).context["access"]
    assert set(access.principals) == {"public", "user:zed", "group:staff"}
    assert [reason.kind for reason in access.reasons["group:staff"]] == ["django_group"]
    alice = admin_client.get(EFFECTIVE, {"username": "alice"}).context["access"]
    assert set(alice.principals) == {"public", "user:alice"}  # her directory groups do not count here


def test_why_a_user_sees_a_document_through_nested_groups(kb, users, synced, admin_client):
    benefits = kb["staff/benefits.md"]
    response = admin_client.get(WHY, {"username": "alice", "document": benefits.pk})
    verdict = response.context["verdict"]
    assert verdict.visible is True
    assert [principal for principal, _reasons in verdict.granting] == ["group:staff"]
    assert [reason.chain.names for reason in verdict.granting[0][1]] == [("platform", "engineering", "staff")]
    page = text_of(response)
    assert "alice CAN see document" in page and "alice → platform → engineering → staff" in page

    own = admin_client.get(WHY, {"username": "alice", "document": kb["alice/notes.md"].pk}).context["verdict"]
    assert own.visible and [principal for principal, _ in own.granting] == ["user:alice"]
    public = admin_client.get(WHY, {"username": "eve", "document": kb["welcome/welcome.md"].pk}).context["verdict"]
    assert public.visible and [principal for principal, _ in public.granting] == ["public"]


def test_why_not_shows_the_access_list_and_that_no_entry_matches(kb, users, synced, admin_client):
    response = admin_client.get(WHY, {"username": "alice", "document": kb["hr/salaries.md"].pk})
    verdict = response.context["verdict"]
    assert verdict.visible is False and verdict.granting == [] and verdict.access_list == ["group:hr"]
    page = text_of(response)
    assert "alice CANNOT see document" in page and "No entry of the access list" in page and "group:hr" in page

    draft = admin_client.get(WHY, {"username": "alice", "document": kb["drafts/draft.md"].pk})
    assert draft.context["verdict"].visible is False
    assert "The access list is empty: nobody can see this document." in text_of(draft)

    # zed is in the Django group staff, which the directory resolver does not read: search hides it.
    zed = admin_client.get(WHY, {"username": "zed", "document": kb["staff/benefits.md"].pk}).context["verdict"]
    assert zed.visible is False


def test_who_lists_exactly_the_accounts_search_shows_a_document_to(kb, users, synced, admin_client):
    benefits = kb["staff/benefits.md"]
    response = admin_client.get(WHO, {"document": benefits.pk})
    audience = response.context["audience"]
    listed = {user.username for user, _entries in audience.visible}
    assert listed == {"alice", "tanaka", "bob", "carol"} == seers(benefits)
    assert audience.visible_count == 4 and audience.unchecked == 0
    assert all(entries == ["group:staff"] for _user, entries in audience.visible)
    for user, _entries in audience.visible:
        assert "group:staff" in principals_for(user)
    # Candidates the tables suggest but the resolver denies, with why; directory users with no account.
    assert {denied.user.username for denied in audience.denied} == {"zed"}
    assert [row.username for row in audience.without_account] == ["minjun"]
    page = text_of(response)
    assert "4 accounts can see it" in page and "minjun" in page


def test_who_for_every_document_matches_search(kb, users, synced, admin_client):
    for document in kb.values():
        audience = admin_client.get(WHO, {"document": document.pk}).context["audience"]
        assert {user.username for user, _ in audience.visible} == seers(document), document.external_id
    public = document_audience(document=kb["welcome/welcome.md"])
    assert public.public and public.active_accounts == User.objects.filter(is_active=True).count()
    assert "ivan" not in {user.username for user, _ in public.visible}
    assert {row.username for row in public.without_account} == {"erin", "grace", "minjun"}
    nobody = document_audience(document=kb["drafts/draft.md"])
    assert nobody.visible == [] and nobody.candidates == 0


def test_who_caps_the_lists_and_says_how_many_more(kb, users, synced):
    audience = document_audience(document=kb["welcome/welcome.md"], list_cap=2, verify_budget=5)
    active = User.objects.filter(is_active=True).count()
    assert audience.checked == 5 and audience.unchecked == active - 5
    assert len(audience.visible) == 2 and audience.visible_more == audience.visible_count - 2


def test_who_follows_the_django_groups_resolver(kb, users, openldap, admin_client):
    from access.services import directory_sync

    directory_sync(directory=openldap, full=True)
    benefits = kb["staff/benefits.md"]
    audience = admin_client.get(WHO, {"document": benefits.pk}).context["audience"]
    assert {user.username for user, _ in audience.visible} == {"zed"} == seers(benefits)


def test_pages_are_linked_from_the_index_the_user_and_the_document(kb, users, synced, admin_client):
    index = admin_client.get("/admin/").content.decode()
    assert EFFECTIVE in index and WHY in index and WHO in index
    alice = DirectoryUser.objects.get(username="alice")
    page = admin_client.get(f"/admin/access/directoryuser/{alice.pk}/change/")
    assert page.status_code == 200
    text = text_of(page)
    assert "alice → corp-ldap: platform → engineering → staff" in text
    assert f"{EFFECTIVE}?username=alice" in page.content.decode()
    document = admin_client.get(f"/admin/documents/document/{kb['staff/benefits.md'].pk}/change/").content.decode()
    assert f"{WHO}?document={kb['staff/benefits.md'].pk}" in document
