"""File-share polls on trees stamped hours in the past: moved and copied files, access-file changes.

Every file here gets a modification time hours before the last sync (``os.utime``), so a poll that
compared modification times alone would miss each change below, and the read counter (``loads``)
fails a poll that re-reads unchanged files. Inode change times cannot be set back, so ``settle``
moves the last sync forward instead: it makes the sync look as if it ran after every file was last
changed, as it would have in real life (minutes or days later), and the tests change things after.
"""
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from connectors.filesystem import FileSystemConnector
from connectors.models import SyncRun
from connectors.services import _POLL_OVERLAP, source_create, source_sync
from kbsearch.documents.models import Document, Source
from kbsearch.documents.selectors import document_visible_ids
from kbsearch.search.services import search_run
from tests.counting_encoder import CountingEncoder

pytestmark = pytest.mark.django_db

HOURS_AGO = datetime.now(UTC).timestamp() - 6 * 3600
ALL_IDS = {"welcome.md", "hr/salary.md", "hr/managers/reorg.md", "policies/travel.md",
           "policies/intl/visa.md", "eng/deploy.txt"}


def write_old(path: Path, text: str) -> None:
    """Write ``text`` and stamp the file six hours in the past."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.utime(path, (HOURS_AGO, HOURS_AGO))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "share"
    # Every document says "handbook", so one query shows everything a user may see.
    write_old(root / "_access.yaml", "principals: [public]\n")
    write_old(root / "welcome.md", "# Welcome\n\nThe handbook starts here.\n")
    write_old(root / "hr" / "_access.yaml", "principals: [group:hr]\n")
    write_old(root / "hr" / "salary.md", "# Salary bands\n\nHandbook: band 3 pays 60k to 80k.\n")
    write_old(root / "hr" / "managers" / "_access.yaml", "principals: [group:managers]\n")
    write_old(root / "hr" / "managers" / "reorg.md", "# Reorganisation\n\nHandbook: robotics merges in May.\n")
    write_old(root / "policies" / "travel.md", "# Travel\n\nHandbook: book trains, not planes.\n")
    write_old(root / "policies" / "intl" / "visa.md", "# Visas\n\nHandbook: apply six weeks ahead.\n")
    write_old(root / "eng" / "_access.yaml", "principals: [group:engineering]\n")
    write_old(root / "eng" / "deploy.txt", "Deploy runbook\n\nHandbook: run the pipeline.\n")
    return root


@pytest.fixture
def outside(tmp_path):
    """Files written long ago somewhere else on the same disk, ready to be moved or copied in."""
    folder = tmp_path / "elsewhere"
    write_old(folder / "guide.md", "# Guide\n\nHandbook: the onboarding guide.\n")
    write_old(folder / "projects" / "plan.md", "# Plan\n\nHandbook: the project plan.\n")
    write_old(folder / "projects" / "q3" / "goals.md", "# Goals\n\nHandbook: third-quarter goals.\n")
    return folder


@pytest.fixture
def users():
    hr, managers, eng = (Group.objects.create(name=n) for n in ("hr", "managers", "engineering"))
    alice = User.objects.create_user("alice")
    alice.groups.add(hr)
    dave = User.objects.create_user("dave")
    dave.groups.add(hr, managers)
    bob = User.objects.create_user("bob")
    bob.groups.add(eng)
    erin = User.objects.create_user("erin")  # public only
    return {"alice": alice, "dave": dave, "bob": bob, "erin": erin}


@pytest.fixture
def encoder(tiny_encoder):
    return CountingEncoder(tiny_encoder)


@pytest.fixture
def loads(monkeypatch):
    """External ids of the files the connector read, in order."""
    read: list[str] = []
    original = FileSystemConnector._load

    def counting(self, path, access):
        item = original(self, path, access)
        read.append(item.external_id)
        return item

    monkeypatch.setattr(FileSystemConnector, "_load", counting)
    return read


@pytest.fixture
def synced(tree, outside, users, encoder, index_backend, loads):
    """The share after its first (full) sync, settled so that nothing in it counts as recent."""
    source = source_create(key="share", name="Share", connector="filesystem", config={"root": str(tree)})
    run = source_sync(source=source, encoder=encoder)
    assert run.mode == "full" and run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert set(loads) == ALL_IDS
    settle(source, tree.parent)
    return source


def settle(source: Source, folder: Path) -> None:
    """Move the last sync past the newest change time under ``folder`` by the poll overlap.

    Waits (a few microseconds) for the file-system clock to pass that change time first, so that
    whatever the test changes next is stamped inside the next poll's window.
    """
    newest = max(os.lstat(path).st_ctime_ns for path in [folder, *folder.rglob("*")])
    probe = folder / "clock-probe"
    while True:
        probe.write_bytes(b"")
        window_start_us = os.stat(probe).st_ctime_ns // 1000
        if window_start_us * 1000 > newest:
            break
    last_synced_at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=window_start_us) + _POLL_OVERLAP
    Source.objects.filter(pk=source.pk).update(last_synced_at=last_synced_at)
    source.last_synced_at = last_synced_at


def poll(source, encoder, loads) -> tuple[SyncRun, set[str]]:
    """Run a poll; return it and the ids it read."""
    loads.clear()
    run = source_sync(source=source, encoder=encoder)
    assert run.mode == "poll"
    assert len(loads) == len(set(loads)), loads
    return run, set(loads)


def visible(user) -> set[str]:
    """External ids ``user`` finds by search; the database's access rows must agree exactly."""
    response = search_run(user=user, query="handbook", mode="bm25", limit=50)
    found = {result.document.external_id for result in response.results}
    all_ids = list(Document.objects.values_list("pk", flat=True))
    allowed = set(
        Document.objects.filter(pk__in=document_visible_ids(user=user, document_ids=all_ids))
        .values_list("external_id", flat=True)
    )
    assert found == allowed, (found, allowed)
    assert response.total == len(found)
    return found


PUBLIC = {"welcome.md", "policies/travel.md", "policies/intl/visa.md"}


def test_poll_of_an_unchanged_tree_reads_nothing(synced, tree, encoder, loads, users):
    run, read = poll(synced, encoder, loads)
    assert read == set()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.counts["created"] == run.counts["updated"] == run.counts["unchanged"] == 0
    assert run.counts["access_updated"] == run.counts["deleted"] == 0
    # The poll saved what it saw, so the next one reads nothing either.
    settle(synced, tree.parent)
    run, read = poll(synced, encoder, loads)
    assert read == set()
    assert visible(users["erin"]) == PUBLIC
    assert visible(users["alice"]) == PUBLIC | {"hr/salary.md"}


def test_edit_keeping_the_old_mtime_rereads_only_that_file(synced, tree, encoder, loads, users):
    stamp = os.stat(tree / "policies" / "travel.md").st_mtime_ns
    write_old(tree / "policies" / "travel.md", "# Travel\n\nHandbook: fly economy class.\n")
    os.utime(tree / "policies" / "travel.md", ns=(stamp, stamp))  # cp -p over the file, say
    run, read = poll(synced, encoder, loads)
    assert read == {"policies/travel.md"}
    assert run.counts["updated"] == 1
    assert search_run(user=users["erin"], query="economy", mode="bm25", limit=5).total == 1


def test_file_moved_in_with_its_old_mtime_is_ingested(synced, tree, outside, encoder, loads, users):
    assert os.stat(outside / "guide.md").st_mtime < synced.last_synced_at.timestamp() - 3600
    os.rename(outside / "guide.md", tree / "hr" / "guide.md")  # mv
    run, read = poll(synced, encoder, loads)
    assert read == {"hr/guide.md"}
    assert run.counts["created"] == 1
    assert visible(users["alice"]) == PUBLIC | {"hr/salary.md", "hr/guide.md"}
    assert visible(users["erin"]) == PUBLIC
    assert visible(users["bob"]) == PUBLIC | {"eng/deploy.txt"}


def test_file_renamed_in_the_tree_is_ingested_under_its_new_name(synced, tree, encoder, loads, users):
    os.rename(tree / "hr" / "salary.md", tree / "hr" / "pay.md")
    run, read = poll(synced, encoder, loads)
    assert read == {"hr/pay.md"}
    assert run.counts["created"] == 1 and run.counts["deleted"] == 1
    assert visible(users["alice"]) == PUBLIC | {"hr/pay.md"}


def test_copy_keeping_the_mtime_is_ingested(synced, tree, outside, encoder, loads, users):
    shutil.copy2(outside / "guide.md", tree / "eng" / "guide.md")  # cp -p
    assert os.stat(tree / "eng" / "guide.md").st_mtime == pytest.approx(HOURS_AGO)
    run, read = poll(synced, encoder, loads)
    assert read == {"eng/guide.md"}
    assert run.counts["created"] == 1
    assert visible(users["bob"]) == PUBLIC | {"eng/deploy.txt", "eng/guide.md"}
    assert visible(users["alice"]) == PUBLIC | {"hr/salary.md"}


def test_folder_moved_in_brings_all_its_files(synced, tree, outside, encoder, loads, users):
    # Moving a folder changes only the folder's change time: its files keep old times of every kind.
    os.rename(outside / "projects", tree / "eng" / "projects")
    run, read = poll(synced, encoder, loads)
    assert read == {"eng/projects/plan.md", "eng/projects/q3/goals.md"}
    assert run.counts["created"] == 2
    assert visible(users["bob"]) == PUBLIC | {"eng/deploy.txt", "eng/projects/plan.md", "eng/projects/q3/goals.md"}
    assert visible(users["erin"]) == PUBLIC


def test_folder_renamed_in_the_tree_keeps_its_own_access_list(synced, tree, encoder, loads, users):
    os.rename(tree / "hr" / "managers", tree / "hr" / "leads")
    run, read = poll(synced, encoder, loads)
    assert read == {"hr/leads/reorg.md"}
    assert run.counts["created"] == 1 and run.counts["deleted"] == 1
    assert visible(users["dave"]) == PUBLIC | {"hr/salary.md", "hr/leads/reorg.md"}
    assert visible(users["alice"]) == PUBLIC | {"hr/salary.md"}


def test_new_access_file_with_an_old_mtime_narrows_access(synced, tree, encoder, loads, users):
    embedded = encoder.passages
    write_old(tree / "policies" / "_access.yaml", "principals: [group:hr]\n")
    run, read = poll(synced, encoder, loads)
    assert read == {"policies/travel.md", "policies/intl/visa.md"}
    assert run.counts["access_updated"] == 2 and run.counts["updated"] == 0
    assert encoder.passages == embedded  # same content: access lists change, nothing is re-embedded
    assert visible(users["erin"]) == {"welcome.md"}
    assert visible(users["bob"]) == {"welcome.md", "eng/deploy.txt"}
    assert visible(users["alice"]) == {"welcome.md", "policies/travel.md", "policies/intl/visa.md", "hr/salary.md"}
    settle(synced, tree.parent)
    run, read = poll(synced, encoder, loads)
    assert read == set()


def test_access_file_edited_with_size_and_mtime_kept_is_caught(synced, tree, encoder, loads, users):
    access_file = tree / "hr" / "_access.yaml"
    before = os.stat(access_file)
    with open(access_file, "r+", encoding="utf-8") as handle:  # in place: same inode
        handle.write("principals: [user:bob]\n")
    os.utime(access_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(access_file)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    embedded = encoder.passages
    run, read = poll(synced, encoder, loads)
    assert read == {"hr/salary.md", "hr/managers/reorg.md"}  # everything below hr/
    assert run.counts["access_updated"] == 1  # reorg.md keeps its own list
    assert encoder.passages == embedded
    assert visible(users["bob"]) == PUBLIC | {"eng/deploy.txt", "hr/salary.md"}
    assert visible(users["alice"]) == PUBLIC
    assert visible(users["dave"]) == PUBLIC | {"hr/managers/reorg.md"}


def test_deleted_access_file_falls_back_to_the_parent_list(synced, tree, encoder, loads, users):
    (tree / "hr" / "managers" / "_access.yaml").unlink()
    run, read = poll(synced, encoder, loads)
    assert read == {"hr/managers/reorg.md"}
    assert run.counts["access_updated"] == 1
    assert visible(users["alice"]) == PUBLIC | {"hr/salary.md", "hr/managers/reorg.md"}
    assert visible(users["dave"]) == PUBLIC | {"hr/salary.md", "hr/managers/reorg.md"}
    assert visible(users["erin"]) == PUBLIC


def test_deleted_root_access_file_hides_what_had_no_list_of_its_own(synced, tree, encoder, loads, users):
    (tree / "_access.yaml").unlink()
    run, read = poll(synced, encoder, loads)
    assert read == ALL_IDS  # the root's list shaped every document
    assert run.counts["access_updated"] == 3 and run.counts["updated"] == 0
    assert visible(users["erin"]) == set()
    assert visible(users["alice"]) == {"hr/salary.md"}
    assert visible(users["dave"]) == {"hr/salary.md", "hr/managers/reorg.md"}
    assert visible(users["bob"]) == {"eng/deploy.txt"}


def test_first_poll_without_saved_state_rereads_everything_once(synced, tree, encoder, loads, users):
    # As after an upgrade from a version that kept no state: a change it cannot see must not be missed.
    Source.objects.filter(pk=synced.pk).update(checkpoint={})
    synced.checkpoint = {}
    (tree / "hr" / "managers" / "_access.yaml").unlink()
    settle(synced, tree.parent)  # the deletion too is older than the poll window
    embedded = encoder.passages
    run, read = poll(synced, encoder, loads)
    assert read == ALL_IDS
    assert run.counts["access_updated"] == 1 and run.counts["unchanged"] == 5
    assert encoder.passages == embedded
    assert visible(users["alice"]) == PUBLIC | {"hr/salary.md", "hr/managers/reorg.md"}
    settle(synced, tree.parent)
    run, read = poll(synced, encoder, loads)
    assert read == set()


def test_state_from_another_root_counts_as_unknown(synced, tree, encoder, loads):
    Source.objects.filter(pk=synced.pk).update(checkpoint={**synced.checkpoint, "root": "/elsewhere"})
    synced.refresh_from_db()
    run, read = poll(synced, encoder, loads)
    assert read == ALL_IDS and run.counts["unchanged"] == 6


def test_failed_poll_leaves_the_access_change_for_the_next_one(synced, tree, encoder, loads, users, index_backend,
                                                               monkeypatch):
    (tree / "hr" / "managers" / "_access.yaml").unlink()

    def unreachable(*_args, **_kwargs):
        raise ConnectionError("index unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(index_backend, "update_access", unreachable)
        with pytest.raises(ConnectionError):
            poll(synced, encoder, loads)
    # The failed run saved neither its state nor its time: the next poll still reads the file. The
    # database took the narrower list with its outbox record before the index failed, so the next
    # run replays that record into the index and then finds the file's access as stored.
    run, read = poll(synced, encoder, loads)
    assert read == {"hr/managers/reorg.md"}
    assert (run.counts["replayed"], run.counts["access_updated"], run.counts["unchanged"]) == (1, 0, 1)
    assert visible(users["alice"]) == PUBLIC | {"hr/salary.md", "hr/managers/reorg.md"}
