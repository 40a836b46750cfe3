"""Identity mapping without a directory server: scoping rules, configuring (service, commands, admin),
listing unmapped identities, forgetting a deleted source's identities, batching of identity notes."""
import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

import access.admin_identities  # noqa: F401  (registers the admin pages; access.admin imports it in production)
from access.mapping import (
    IdentityMappingError,
    identity_mapping_delete,
    identity_mapping_set,
    source_identities_record,
    source_principals_scoped,
)
from access.models import AuditEvent, Directory, DirectoryGroup, DirectoryUser, IdentityMapping, SourceIdentity
from access.principals import InvalidPrincipal
from access.selectors import directory_principals
from kbsearch.documents.models import DocumentAccess, Source
from kbsearch.documents.services import source_delete
from tests.access.test_admin import form_data
from tests.knowledge_base import source_from_files

pytestmark = pytest.mark.django_db
FILES = {
    "_access.yaml": "principals: [public]\n",
    "a.md": "# Open\n\nhandbook\n",
    "eng/_access.yaml": "principals: [group:engineering, user:ann@example.com]\n",
    "eng/b.md": "# Engineering\n\nhandbook\n",
}


@pytest.fixture
def corp(db):
    """A synced-looking directory, written directly: ann in engineering; a deleted user with ann's old email."""
    directory = Directory.objects.create(key="corp", kind="openldap", server_urls="ldap://unused",
                                         user_base_dn="ou=people", group_base_dn="ou=groups")
    ann = DirectoryUser.objects.create(directory=directory, external_id="1", dn="uid=ann,ou=people",
                                       dn_key="uid=ann,ou=people", username="ann", username_key="ann",
                                       email="Ann@Example.com")
    DirectoryUser.objects.create(directory=directory, external_id="2", dn="uid=old,ou=people", dn_key="uid=old,ou=people",
                                 username="old", username_key="old", email="ann@example.com",
                                 deleted_at="2026-01-01T00:00:00Z")
    engineering = DirectoryGroup.objects.create(directory=directory, external_id="3", dn="cn=engineering,ou=groups",
                                                dn_key="cn=engineering,ou=groups", name="Engineering")
    return {"directory": directory, "ann": ann, "engineering": engineering}


def test_principals_are_scoped_only_for_a_mapped_source():
    given = ["public", "user:Ann", "group:Eng", "source/share/group:own"]
    assert source_principals_scoped(source_key="share", principals=given, mapped=True) == {
        "public", "source/share/user:ann", "source/share/group:eng", "source/share/group:own",
    }
    assert source_principals_scoped(source_key="share", principals=given, mapped=False) == {
        "public", "user:ann", "group:eng", "source/share/group:own",
    }
    for mapped in (True, False):
        with pytest.raises(InvalidPrincipal, match="identity of source 'wiki'"):
            source_principals_scoped(source_key="share", principals=["source/wiki/user:x"], mapped=mapped)
    with pytest.raises(InvalidPrincipal):
        source_principals_scoped(source_key="share", principals=["everyone"], mapped=True)


def test_identities_are_noted_once_and_matched_casefolded_never_to_a_deleted_user(corp):
    identity_mapping_set(source_key="share", user_key="email", group_key="cn", directory_key="corp")
    principals = ["public", "user:x", "source/share/user:ann@example.com", "source/share/group:engineering",
                  "source/other/group:engineering"]
    assert source_identities_record(source_key="share", principals=principals) == 2
    assert source_identities_record(source_key="share", principals=principals) == 0
    rows = {row.principal: row for row in SourceIdentity.objects.all()}
    assert set(rows) == {"source/share/user:ann@example.com", "source/share/group:engineering"}
    assert rows["source/share/user:ann@example.com"].directory_user == corp["ann"]  # not the deleted twin
    assert rows["source/share/group:engineering"].directory_group == corp["engineering"]
    assert {row.status for row in rows.values()} == {"mapped"}


def test_setting_a_mapping_is_validated_and_audited(corp):
    with pytest.raises(IdentityMappingError, match="user key"):
        identity_mapping_set(source_key="share", user_key="mail", group_key="cn")
    with pytest.raises(IdentityMappingError, match="group key"):
        identity_mapping_set(source_key="share", user_key="email", group_key="name")
    with pytest.raises(IdentityMappingError, match="no directory 'nope'"):
        identity_mapping_set(source_key="share", user_key="email", group_key="cn", directory_key="nope")
    with pytest.raises(IdentityMappingError):
        identity_mapping_set(source_key="not a slug", user_key="email", group_key="cn")
    assert not IdentityMapping.objects.exists()
    identity_mapping_set(source_key="share", user_key="email", group_key="cn", actor="root")
    identity_mapping_set(source_key="share", user_key="email", group_key="cn", actor="root")  # no change
    identity_mapping_set(source_key="share", user_key="upn", group_key="dn", directory_key="corp", actor="root")
    events = list(AuditEvent.objects.filter(kind=AuditEvent.Kind.ADMIN_CHANGE).order_by("pk"))
    assert [event.details["after"] for event in events] == [
        "users by email, groups by cn, in every enabled directory", "users by upn, groups by dn, in corp",
    ]
    assert events[1].actor == "root" and events[1].details["before"] == events[0].details["after"]


def test_map_identities_command_sets_shows_and_removes(corp, tmp_path, tiny_encoder, index_backend):
    source_from_files(root=tmp_path / "share", key="share", name="Share", files=FILES, encoder=tiny_encoder)
    out = io.StringIO()
    call_command("map_identities", "share", "--user-key", "email", "--group-key", "dn", "--directory", "corp", stdout=out)
    assert "users by email, groups by dn" in out.getvalue() and "1 unmapped, 1 mapped, 0 ambiguous" in out.getvalue()
    out = io.StringIO()
    call_command("map_identities", "share", "--show", stdout=out)
    listed = [line.split("\t")[:2] for line in out.getvalue().splitlines() if "\t" in line]
    assert listed == [["unmapped", "source/share/group:engineering"]]
    out = io.StringIO()
    call_command("map_identities", "share", "--show", "--all", stdout=out)
    assert "mapped\tsource/share/user:ann@example.com\tcorp:ann" in out.getvalue()
    with pytest.raises(CommandError, match="no directory 'nope'"):
        call_command("map_identities", "share", "--user-key", "email", "--group-key", "cn", "--directory", "nope")
    with pytest.raises(CommandError, match="--user-key and --group-key"):
        call_command("map_identities", "share", "--user-key", "email")
    call_command("map_identities", "share", "--remove", stdout=io.StringIO())
    assert not IdentityMapping.objects.exists()
    assert set(SourceIdentity.objects.values_list("status", flat=True)) == {"unmapped"}
    # Still scoped, so visible to nobody, until a full sync restates them.
    assert DocumentAccess.objects.filter(principal__startswith="source/share/").count() == 2
    with pytest.raises(CommandError, match="no identity mapping"):
        call_command("map_identities", "share", "--remove")


def test_removing_a_mapping_then_a_full_sync_restates_the_company_namespace(corp, tmp_path, tiny_encoder, index_backend):
    from connectors.services import source_sync

    source = source_from_files(root=tmp_path / "share", key="share", name="Share", files=FILES, encoder=tiny_encoder)
    identity_mapping_set(source_key="share", user_key="email", group_key="cn")
    assert identity_mapping_delete(source_key="share") is True
    source_sync(source=source, full=True, encoder=tiny_encoder)
    assert set(DocumentAccess.objects.values_list("principal", flat=True)) == {
        "public", "group:engineering", "user:ann@example.com",
    }


def test_add_source_can_set_the_mapping(corp, tmp_path):
    call_command("add_source", "wiki", "--connector", "filesystem", "--config", f'{{"root": "{tmp_path}"}}',
                 "--identity-user-key", "upn", "--identity-group-key", "cn", "--identity-directory", "corp",
                 stdout=io.StringIO())
    mapping = IdentityMapping.objects.get(source_key="wiki")
    assert (mapping.user_key, mapping.group_key, mapping.directory) == ("upn", "cn", corp["directory"])
    with pytest.raises(CommandError, match="both"):
        call_command("add_source", "other", "--connector", "filesystem", "--config", f'{{"root": "{tmp_path}"}}',
                     "--identity-user-key", "upn")
    with pytest.raises(CommandError, match="no directory"):
        call_command("add_source", "other", "--connector", "filesystem", "--config", f'{{"root": "{tmp_path}"}}',
                     "--identity-user-key", "upn", "--identity-group-key", "cn", "--identity-directory", "nope")
    assert not Source.objects.filter(key="other").exists()


def test_deleting_a_source_forgets_its_mapping_and_identities(corp, tmp_path, tiny_encoder, index_backend):
    identity_mapping_set(source_key="share", user_key="email", group_key="cn")
    identity_mapping_set(source_key="keep", user_key="email", group_key="cn")
    source = source_from_files(root=tmp_path / "share", key="share", name="Share", files=FILES, encoder=tiny_encoder)
    source_identities_record(source_key="keep", principals=["source/keep/user:ann@example.com"])
    assert SourceIdentity.objects.filter(source_key="share").count() == 2
    source_delete(source=source)
    assert list(IdentityMapping.objects.values_list("source_key", flat=True)) == ["keep"]
    assert list(SourceIdentity.objects.values_list("source_key", flat=True)) == ["keep"]


def test_admin_saves_through_the_service_and_lists_identities(corp, tmp_path, tiny_encoder, index_backend, client):
    source_from_files(root=tmp_path / "share", key="share", name="Share", files=FILES, encoder=tiny_encoder)
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    response = client.post(reverse("admin:access_identitymapping_add"), {
        "source_key": "share", "directory": corp["directory"].pk, "user_key": "email", "group_key": "dn",
    })
    assert response.status_code == 302, response.content
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.ADMIN_CHANGE, actor="root").count() == 1
    assert DocumentAccess.objects.filter(principal="source/share/group:engineering").exists()  # re-scoped
    unmapped = client.get(reverse("admin:access_sourceidentity_changelist"), {"status__exact": "unmapped"})
    assert "source/share/group:engineering" in unmapped.content.decode()
    assert "source/share/user:ann@example.com" not in unmapped.content.decode()
    mapping = IdentityMapping.objects.get()
    change_url = reverse("admin:access_identitymapping_change", args=[mapping.pk])
    client.post(change_url, {"directory": corp["directory"].pk, "user_key": "email", "group_key": "cn"})
    assert SourceIdentity.objects.get(principal="source/share/group:engineering").status == "mapped"
    identity = SourceIdentity.objects.first()
    assert client.post(reverse("admin:access_sourceidentity_delete", args=[identity.pk]), {"post": "yes"}).status_code == 403
    client.post(reverse("admin:access_identitymapping_delete", args=[mapping.pk]), {"post": "yes"})
    assert not IdentityMapping.objects.exists()
    assert set(SourceIdentity.objects.values_list("status", flat=True)) == {"unmapped"}


def test_switching_a_directory_on_or_off_in_the_admin_remaps_identities(corp, client):
    # A second directory, off, with ann's email: on, the key is found twice and must map to nobody.
    partner = Directory.objects.create(key="partner", kind="openldap", server_urls="ldap://unused", enabled=False,
                                       user_base_dn="ou=people", group_base_dn="ou=groups")
    DirectoryUser.objects.create(directory=partner, external_id="9", dn="uid=ann2,ou=people", dn_key="uid=ann2,ou=people",
                                 username="ann2", username_key="ann2", email="ann@example.com")
    Directory.objects.filter(pk=corp["directory"].pk).update(last_success_at=timezone.now())
    identity_mapping_set(source_key="share", user_key="email", group_key="cn")
    source_identities_record(source_key="share", principals=["source/share/user:ann@example.com"])
    assert "source/share/user:ann@example.com" in directory_principals(username="ann")
    client.force_login(User.objects.create_superuser("root", password="pw-root"))

    def switch(enabled: bool) -> None:
        partner.refresh_from_db()
        response = client.post(reverse("admin:access_directory_change", args=[partner.pk]),
                               form_data(partner, enabled=enabled))
        assert response.status_code == 302, response.context["adminform"].form.errors

    switch(True)
    assert SourceIdentity.objects.get().status == "ambiguous"
    assert "source/share/user:ann@example.com" not in directory_principals(username="ann")
    switch(False)
    assert (SourceIdentity.objects.get().status, SourceIdentity.objects.get().directory_user) == ("mapped", corp["ann"])
