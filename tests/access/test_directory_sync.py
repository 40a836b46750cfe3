"""Directory sync against a real slapd (OpenLDAP-shaped entries): full and incremental runs, nested
groups and a cycle, non-ASCII names, paging, deletions, the implausible-change guard."""
import socket

import pytest
from django.core.management import CommandError, call_command

from access.directory.client import DirectoryUnavailable
from access.models import AuditEvent, DirectoryGroup, DirectoryMembership, DirectorySyncRun, DirectoryUser
from access.services import SyncNotConfirmable, directory_sync, directory_sync_confirm
from scripts.slapd import SIZE_LIMIT
from tests.access.directory_data import OPENLDAP_CLOSURE, OPENLDAP_USERS, group_dn, person_dn

pytestmark = pytest.mark.django_db


def closure(directory) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {row.username: set() for row in DirectoryUser.objects.filter(directory=directory, deleted_at=None)}
    for username, group in DirectoryMembership.objects.filter(user__directory=directory).values_list(
        "user__username", "group__name"
    ):
        found[username].add(group)
    return found


def remove_member(slapd, group: str, uid: str) -> None:
    slapd.ldapmodify(f"dn: {group_dn(group)}\nchangetype: modify\ndelete: member\nmember: {person_dn(uid)}\n")


def test_full_sync_stores_every_user_and_group_with_their_attributes(openldap):
    run = directory_sync(directory=openldap, full=True)
    assert run.status == DirectorySyncRun.Status.SUCCEEDED, run.errors
    assert run.mode == "full"
    assert run.counts["users"] == len(OPENLDAP_USERS) == 9
    assert run.counts["groups"] == 8
    assert run.counts["memberships"] == sum(len(groups) for groups in OPENLDAP_CLOSURE.values()) == 18
    # hr lists uid=ghost, which names no entry: counted, not fatal.
    assert run.counts["unresolved_members"] == 1
    assert run.errors == []
    tanaka = DirectoryUser.objects.get(directory=openldap, username="tanaka")
    assert (tanaka.display_name, tanaka.email, tanaka.enabled) == ("田中太郎", "tanaka@example.co.jp", True)
    assert tanaka.dn == person_dn("tanaka")
    assert len(tanaka.external_id) == 36 and tanaka.external_id.count("-") == 4  # entryUUID
    minjun = DirectoryUser.objects.get(directory=openldap, username_key="minjun")
    assert minjun.display_name == "김민준 (Kim Minjun)"
    assert DirectoryGroup.objects.filter(directory=openldap, name="営業部").exists()
    openldap.refresh_from_db()
    assert openldap.last_success_at is not None and openldap.last_full_success_at is not None
    assert openldap.cursor.endswith("Z") and len(openldap.cursor) == 15  # modifyTimestamp


def test_nested_groups_three_levels_deep_and_a_cycle_resolve_transitively(openldap):
    directory_sync(directory=openldap, full=True)
    assert closure(openldap) == OPENLDAP_CLOSURE


def test_every_search_is_paged_past_the_servers_size_limit(openldap):
    # The server refuses unpaged searches returning more than SIZE_LIMIT entries; 9 users and 8
    # groups three a page need 3 + 3 pages.
    assert len(OPENLDAP_USERS) > SIZE_LIMIT
    run = directory_sync(directory=openldap, full=True)
    assert run.counts["users_read"] == 9 and run.counts["groups_read"] == 8
    assert run.counts["pages"] == 6  # 3 of users, 3 of groups: no page is read twice


def test_a_second_full_sync_of_an_unchanged_tree_changes_nothing(openldap):
    directory_sync(directory=openldap, full=True)
    ids = dict(DirectoryUser.objects.values_list("username", "pk"))
    run = directory_sync(directory=openldap, full=True)
    assert run.status == "succeeded"
    assert (run.counts["memberships_added"], run.counts["memberships_removed"]) == (0, 0)
    assert (run.counts["users_added"], run.counts["users_updated"]) == (0, 0)
    assert dict(DirectoryUser.objects.values_list("username", "pk")) == ids
    assert AuditEvent.objects.filter(kind="sync_applied").count() == 1  # the first sync only


def test_incremental_sync_sees_a_membership_removed_in_ldap(openldap, slapd):
    directory_sync(directory=openldap, full=True)
    remove_member(slapd, "platform", "alice")
    run = directory_sync(directory=openldap)
    assert run.mode == "incremental" and run.status == "succeeded", run.errors
    expected = {**OPENLDAP_CLOSURE, "alice": set()}
    assert closure(openldap) == expected
    assert sorted(run.changes["memberships_removed"]) == [["alice", "engineering"], ["alice", "platform"], ["alice", "staff"]]
    event = AuditEvent.objects.get(kind="sync_applied", details__run=run.pk)
    assert "3 removed" in event.summary


def test_incremental_sync_with_nothing_changed_changes_nothing(openldap):
    directory_sync(directory=openldap, full=True)
    run = directory_sync(directory=openldap)
    # Entries of the cursor's own second are read again (modifyTimestamp >= cursor): harmless.
    assert run.mode == "incremental"
    assert (run.counts["memberships_removed"], run.counts["memberships_added"], run.counts["users_updated"]) == (0, 0, 0)
    assert closure(openldap) == OPENLDAP_CLOSURE


def test_a_user_deleted_in_ldap_loses_everything_at_the_next_incremental_sync(openldap, slapd):
    directory_sync(directory=openldap, full=True)
    slapd.ldapmodify(f"dn: {person_dn('frank')}\nchangetype: delete\n")
    run = directory_sync(directory=openldap)
    assert run.status == "succeeded"
    assert run.changes["users_removed"] == ["frank"]
    frank = DirectoryUser.objects.get(directory=openldap, username="frank")
    assert frank.deleted_at is not None
    assert not DirectoryMembership.objects.filter(user=frank).exists()


def test_a_group_created_in_ldap_with_nested_members_arrives_incrementally(openldap, slapd):
    directory_sync(directory=openldap, full=True)
    slapd.ldapmodify(
        f"dn: {group_dn('leads')}\nchangetype: add\nobjectClass: groupOfNames\ncn: leads\n"
        f"member: {group_dn('cycle-a')}\nmember: {person_dn('grace')}\n"
    )
    run = directory_sync(directory=openldap)
    assert run.status == "succeeded"
    found = closure(openldap)
    assert found["grace"] == {"leads"}
    assert found["dave"] == {"cycle-a", "cycle-b", "leads"}
    assert found["erin"] == {"cycle-a", "cycle-b", "leads"}


def test_removing_an_implausible_share_is_held_until_confirmed(openldap, slapd):
    directory_sync(directory=openldap, full=True)
    # A broken group filter: the directory seems to have no groups at all.
    openldap.group_filter = "(cn=no-such-group)"
    openldap.save()
    held = directory_sync(directory=openldap, full=True)
    assert held.status == DirectorySyncRun.Status.HELD
    assert held.counts["memberships_removed"] == 18
    assert closure(openldap) == OPENLDAP_CLOSURE  # nothing applied
    assert DirectoryGroup.objects.filter(directory=openldap).count() == 8
    event = AuditEvent.objects.get(kind="sync_held")
    assert event.details["run"] == held.pk and "18 of 18 memberships" in event.summary
    before = openldap.last_success_at
    openldap.refresh_from_db()
    assert openldap.last_success_at == before  # a held sync is not a success: grace keeps running

    applied = directory_sync_confirm(run_id=held.pk, actor="admin-ann")
    assert applied.status == "succeeded" and applied.confirms_id == held.pk
    held.refresh_from_db()
    assert held.status == DirectorySyncRun.Status.CONFIRMED
    assert DirectoryMembership.objects.filter(user__directory=openldap).count() == 0
    assert AuditEvent.objects.filter(kind="sync_confirmed", actor="admin-ann").exists()
    with pytest.raises(SyncNotConfirmable):
        directory_sync_confirm(run_id=held.pk)


def test_a_confirmation_does_not_cover_removals_beyond_what_was_held(openldap, slapd):
    directory_sync(directory=openldap, full=True)
    openldap.max_removal_share = 0.1
    openldap.save()
    remove_member(slapd, "platform", "alice")
    remove_member(slapd, "engineering", "bob")  # 5 of 18 memberships (28%)
    held = directory_sync(directory=openldap)
    assert held.status == "held" and held.counts["memberships_removed"] == 5
    remove_member(slapd, "hr", "frank")  # one more meanwhile
    again = directory_sync_confirm(run_id=held.pk)
    assert again.status == "held" and again.counts["memberships_removed"] == 6
    assert closure(openldap) == OPENLDAP_CLOSURE


def test_small_removals_are_applied_without_confirmation(openldap, slapd):
    directory_sync(directory=openldap, full=True)
    remove_member(slapd, "hr", "frank")  # 1 of 18
    assert directory_sync(directory=openldap).status == "succeeded"


def test_management_command_syncs_and_confirms(openldap, slapd):
    out = []
    call_command("sync_directory", "corp-ldap", "--full", stdout=_Lines(out))
    assert "full sync succeeded" in out[0] and "memberships 18" in out[0]
    openldap.group_filter = "(cn=nothing)"
    openldap.save()
    out.clear()
    call_command("sync_directory", "corp-ldap", stdout=_Lines(out))
    held = DirectorySyncRun.objects.get(status="held")
    assert "sync held" in out[0] and f"--confirm {held.pk}" in out[1]
    out.clear()
    call_command("sync_directory", "corp-ldap", "--confirm", str(held.pk), stdout=_Lines(out))
    assert "full sync succeeded" in out[0]
    with pytest.raises(CommandError, match="not a held sync"):
        call_command("sync_directory", "corp-ldap", "--confirm", str(held.pk), stdout=_Lines([]))
    with pytest.raises(CommandError, match="no directory"):
        call_command("sync_directory", "nope", stdout=_Lines([]))


class _Lines:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        pass


def test_a_server_that_accepts_but_never_answers_times_out_as_unavailable(openldap):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake; nobody ever reads or answers
        openldap.server_urls = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        openldap.timeout_seconds = 1
        openldap.save()
        with pytest.raises(DirectoryUnavailable):
            directory_sync(directory=openldap, full=True)
    run = DirectorySyncRun.objects.get(directory=openldap)
    assert run.status == "failed" and run.errors
    assert not DirectoryUser.objects.exists()


def test_add_directory_registers_a_directory_that_then_syncs(db, slapd, directory_password):
    from scripts.slapd import SERVICE_DN
    from tests.access.conftest import PASSWORD_VARIABLE

    out: list[str] = []
    call_command(
        "add_directory", "hq", "--kind", "openldap", "--url", slapd.url, "--bind-dn", SERVICE_DN,
        "--password-env", PASSWORD_VARIABLE, "--user-base", "ou=people,dc=example,dc=com",
        "--group-base", "ou=groups,dc=example,dc=com", "--grace-hours", "2", stdout=_Lines(out),
    )
    assert "sync_directory hq --full" in out[0]
    call_command("sync_directory", "hq", stdout=_Lines(out))
    assert "full sync succeeded" in out[1] and "memberships 18" in out[1]
    out.clear()
    call_command(
        "add_directory", "hq2", "--kind", "ad", "--url", slapd.url, "--bind-dn", SERVICE_DN,
        "--password-env", "KBSEARCH_NO_SUCH_VARIABLE", "--user-base", "o=x", "--group-base", "o=x",
        stdout=_Lines(out),
    )
    assert out[0].startswith("warning:") and "KBSEARCH_NO_SUCH_VARIABLE is not set" in out[0]
    with pytest.raises(CommandError, match="KBSEARCH_NO_SUCH_VARIABLE is not set"):
        call_command("sync_directory", "hq2", stdout=_Lines(out))
    with pytest.raises(CommandError, match="max_removal_share"):
        call_command(
            "add_directory", "hq3", "--kind", "ad", "--url", slapd.url, "--user-base", "o=x",
            "--group-base", "o=x", "--max-removal-share", "1.5", stdout=_Lines(out),
        )
