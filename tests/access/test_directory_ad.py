"""Active-Directory-shaped entries in the real slapd: objectGUID and objectSid decoding, the
userAccountControl disabled flag, nested groups through member DNs, paging, the uSNChanged cursor."""
import pytest

from access.models import DirectoryGroup, DirectoryMembership, DirectorySyncRun, DirectoryUser
from access.services import directory_sync
from tests.access.directory_data import (
    AD_MAX_USN,
    AD_USERS,
    BIG_GROUP_SIZE,
    ad_group_dn,
    ad_guid,
    ad_sid_text,
    ad_user_dn,
)

pytestmark = pytest.mark.django_db


def groups_of(directory, username: str) -> set[str]:
    return set(
        DirectoryMembership.objects.filter(user__directory=directory, user__username=username).values_list(
            "group__name", flat=True
        )
    )


def test_ad_users_carry_canonical_guid_sid_upn_and_the_disabled_flag(ad):
    run = directory_sync(directory=ad, full=True)
    assert run.status == "succeeded", run.errors
    assert run.counts["users"] == len(AD_USERS) and run.counts["groups"] == 3
    jsmith = DirectoryUser.objects.get(directory=ad, username="jsmith")
    # The text form AD tools show is the UUID of the little-endian byte layout.
    assert jsmith.external_id == str(ad_guid("jsmith"))
    assert jsmith.sid == ad_sid_text(1101)
    assert (jsmith.upn, jsmith.email, jsmith.enabled) == ("jsmith@corp.example.com", "jsmith@example.com", True)
    assert DirectoryUser.objects.get(directory=ad, username="mlee").enabled is False  # 514
    assert DirectoryUser.objects.get(directory=ad, username="hanako").enabled is True  # 66048
    hanako = DirectoryUser.objects.get(directory=ad, username="hanako")
    assert hanako.display_name == "田中花子" and hanako.dn == ad_user_dn("田中 花子")
    readers = DirectoryGroup.objects.get(directory=ad, name="Readers")
    assert readers.external_id == str(ad_guid("Readers")) and readers.account_name == "Readers"
    assert readers.sid == ad_sid_text(2001)
    ad.refresh_from_db()
    assert ad.cursor == str(AD_MAX_USN)


def test_ad_nested_groups_and_a_disabled_member(ad):
    directory_sync(directory=ad, full=True)
    assert groups_of(ad, "jsmith") == {"Readers", "All Staff"}
    assert groups_of(ad, "hanako") == {"All Staff"}
    # Disabled: listed by Readers (the edge is kept), but in no group for the resolver.
    assert groups_of(ad, "mlee") == set()
    mlee = DirectoryUser.objects.get(directory=ad, username="mlee")
    assert mlee.group_edges.count() == 1


def test_a_group_with_more_members_than_a_page_is_read_whole(ad):
    run = directory_sync(directory=ad, full=True)
    assert run.counts["pages"] > BIG_GROUP_SIZE // 2  # two entries a page
    bulk = DirectoryGroup.objects.get(directory=ad, name="Bulk")
    assert bulk.user_edges.count() == BIG_GROUP_SIZE
    assert DirectoryMembership.objects.filter(group=bulk).count() == BIG_GROUP_SIZE


def test_usn_cursor_reads_only_entries_changed_after_it(ad, slapd):
    directory_sync(directory=ad, full=True)
    # A domain controller raises uSNChanged on every change; the test plays that part.
    slapd.ldapmodify(
        f"dn: {ad_group_dn('Readers')}\nchangetype: modify\ndelete: member\nmember: {ad_user_dn('John Smith')}\n-\n"
        f"replace: uSNChanged\nuSNChanged: {AD_MAX_USN + 10}\n"
    )
    # Changed without a new USN: an incremental sync must not see it (the cursor is what is asked).
    slapd.ldapmodify(f"dn: {ad_user_dn('Bulk User 00')}\nchangetype: modify\nreplace: displayName\ndisplayName: Renamed\n")
    run = directory_sync(directory=ad)
    assert run.mode == "incremental" and run.status == "succeeded"
    assert (run.counts["users_read"], run.counts["groups_read"]) == (0, 1)
    assert groups_of(ad, "jsmith") == set()
    ad.refresh_from_db()
    assert ad.cursor == str(AD_MAX_USN + 10)
    assert DirectoryUser.objects.get(directory=ad, username="bulk00").display_name == "Bulk User 00"
    # A full sync reads everything regardless of USNs.
    directory_sync(directory=ad, full=True)
    assert DirectoryUser.objects.get(directory=ad, username="bulk00").display_name == "Renamed"


def test_a_user_disabled_in_ad_loses_their_groups_at_the_next_incremental_sync(ad, slapd):
    directory_sync(directory=ad, full=True)
    slapd.ldapmodify(
        f"dn: {ad_user_dn('John Smith')}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n-\n"
        f"replace: uSNChanged\nuSNChanged: {AD_MAX_USN + 1}\n"
    )
    run = directory_sync(directory=ad)
    assert run.status == DirectorySyncRun.Status.SUCCEEDED
    assert run.changes["users_disabled"] == ["jsmith"]
    assert groups_of(ad, "jsmith") == set()
    assert DirectoryUser.objects.get(directory=ad, username="jsmith").enabled is False


def test_an_incremental_sync_from_another_domain_controller_reads_everything(ad):
    directory_sync(directory=ad, full=True)
    ad.cursor_server = "CN=NTDS Settings,CN=DC2,CN=Servers,CN=Default-First-Site-Name"
    ad.save()
    run = directory_sync(directory=ad)
    assert run.mode == "full" and run.status == "succeeded"
    assert run.counts["users_read"] == len(AD_USERS)
