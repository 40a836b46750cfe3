"""Sync runs left ``running`` by a process that died are marked failed ("abandoned") by the next
sync of their directory; a run whose process is alive (an overlapping sync, still reading) is
never touched, and finishes as it would have. "Another process" is played by a thread: it has its
own database session, so its locks are as foreign to the test's session as another worker's."""
import threading

import pytest
from django.db import connection

from access.liveness import run_is_alive, run_lock_try
from access.models import DirectorySyncRun
from access.services import ABANDONED, directory_create, directory_sync
from tests.access.directory_data import OPENLDAP_CLOSURE
from tests.access.test_directory_sync import closure

WAIT = 20  # seconds; a thread that has not answered by then has hung and fails the test


def test_a_run_left_running_by_a_dead_process_is_failed_by_the_next_sync(openldap):
    other = directory_create(key="other", kind="openldap", server_urls=openldap.server_urls,
                             user_base_dn=openldap.user_base_dn, group_base_dn=openldap.group_base_dn)
    # Recorded as running, but no process holds its lock: its worker was killed.
    stale = DirectorySyncRun.objects.create(directory=openldap, mode="full")
    elsewhere = DirectorySyncRun.objects.create(directory=other, mode="full")
    assert not run_is_alive(stale.pk)
    run = directory_sync(directory=openldap, full=True)
    assert run.status == "succeeded" and closure(openldap) == OPENLDAP_CLOSURE
    stale.refresh_from_db()
    assert (stale.status, stale.errors) == ("failed", [ABANDONED]) and stale.finished_at is not None
    elsewhere.refresh_from_db()
    assert elsewhere.status == "running"  # another directory's runs wait for that directory's next sync


def test_finished_runs_are_left_as_they_are(openldap):
    first = directory_sync(directory=openldap, full=True)
    directory_sync(directory=openldap)
    first.refresh_from_db()
    assert first.status == "succeeded" and first.errors == []


def _hold_lock_then_die(run_id: int, held: threading.Event, die: threading.Event) -> None:
    assert run_lock_try(run_id) is not None
    held.set()
    die.wait(WAIT)
    connection.close()  # dying: the session ends without unlocking anything


def test_a_run_whose_process_is_alive_is_not_marked_until_that_process_dies(openldap):
    live = DirectorySyncRun.objects.create(directory=openldap, mode="full")
    held, die = threading.Event(), threading.Event()
    worker = threading.Thread(target=_hold_lock_then_die, args=(live.pk, held, die))
    worker.start()
    try:
        assert held.wait(WAIT)
        assert run_is_alive(live.pk)
        assert directory_sync(directory=openldap, full=True).status == "succeeded"
        live.refresh_from_db()
        assert live.status == "running"
    finally:
        die.set()
        worker.join(WAIT)
    assert directory_sync(directory=openldap).status == "succeeded"
    live.refresh_from_db()
    assert (live.status, live.errors) == ("failed", [ABANDONED])


@pytest.mark.django_db(transaction=True)
def test_an_overlapping_sync_still_reading_is_not_abandoned_and_finishes(openldap, monkeypatch):
    import access.services

    reading, go_on = threading.Event(), threading.Event()
    real_read = access.services.directory_read

    def slow_read(**kwargs):
        if threading.current_thread().name == "overlapping-sync":
            reading.set()
            go_on.wait(WAIT)
        return real_read(**kwargs)

    monkeypatch.setattr(access.services, "directory_read", slow_read)
    outcome = {}

    def overlapping_sync() -> None:
        try:
            outcome["run"] = directory_sync(directory=openldap, full=True)
        finally:
            connection.close()

    worker = threading.Thread(target=overlapping_sync, name="overlapping-sync")
    worker.start()
    try:
        assert reading.wait(WAIT)
        ours = directory_sync(directory=openldap, full=True)
        assert ours.status == "succeeded"
        theirs = DirectorySyncRun.objects.exclude(pk=ours.pk).get()
        assert theirs.status == "running" and theirs.errors == []  # alive: left alone
    finally:
        go_on.set()
        worker.join(WAIT)
    # Its read began before ours, so applying it would go back in time: it is skipped, not failed.
    assert outcome["run"].status == "skipped"
    assert DirectorySyncRun.objects.get(pk=outcome["run"].pk).status == "skipped"
    assert closure(openldap) == OPENLDAP_CLOSURE


def test_on_sqlite_the_run_lock_is_a_file_lock_beside_the_database(monkeypatch, tmp_path):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    monkeypatch.setitem(connection.settings_dict, "NAME", str(tmp_path / "kbsearch.sqlite3"))
    release = run_lock_try(41)
    assert release is not None and (tmp_path / "locks" / "directory-run-41.lock").exists()
    assert run_lock_try(41) is None and run_is_alive(41)  # flock conflicts across open files, even in one process
    release()
    assert not run_is_alive(41) and not (tmp_path / "locks" / "directory-run-41.lock").exists()
