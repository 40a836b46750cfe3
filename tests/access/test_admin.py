"""The directory admin: status at a glance, syncs and held-run confirmations from the admin, audited
edits, read-only synced data and audit log; and the audit log's retention."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from access.audit import audit_events_prune
from access.directory.client import DirectoryUnavailable
from access.models import AuditEvent, Directory, DirectoryGroup, DirectorySyncRun, DirectoryUser
from access.services import directory_sync
from kbsearch.celery import app as celery_app


@pytest.fixture
def admin_client(db):
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root"))
    return client


def form_data(directory: Directory, **changes) -> dict:
    """The directory's change form as the admin page would post it, with ``changes`` applied."""
    data = model_to_dict(directory)
    data.update(changes)
    return {name: ("on" if value is True else "" if value in (False, None) else str(value)) for name, value in data.items()
            if name != "id" and value is not False}


def test_the_list_shows_each_directorys_latest_run(openldap, admin_client):
    page = admin_client.get("/admin/access/directory/").content.decode()
    assert "corp-ldap" in page and "never synced" in page
    run = directory_sync(directory=openldap, full=True)
    page = admin_client.get("/admin/access/directory/").content.decode()
    assert "full succeeded" in page and "9 users, 8 groups, 18 memberships" in page
    detail = admin_client.get(f"/admin/access/directory/{openldap.pk}/change/").content.decode()
    assert f"/admin/access/directorysyncrun/{run.pk}/change/" in detail


def test_a_failed_run_shows_its_error(openldap, admin_client):
    openldap.server_urls = "ldap://127.0.0.1:1"
    openldap.timeout_seconds = 1
    openldap.save()
    with pytest.raises(DirectoryUnavailable, match="^cannot bind to ldap://127.0.0.1:1: "):
        directory_sync(directory=openldap)
    page = admin_client.get("/admin/access/directory/").content.decode()
    assert "failed" in page and escape(DirectorySyncRun.objects.get().errors[0][:40]) in page


def test_an_admin_edit_is_audited_with_the_changed_fields(openldap, admin_client):
    response = admin_client.post(
        f"/admin/access/directory/{openldap.pk}/change/",
        form_data(openldap, page_size=50, bind_password_env="CORP_LDAP_PASSWORD"),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.ADMIN_CHANGE)
    assert event.actor == "root" and event.directory == openldap
    assert event.details["changes"] == {
        "page_size": {"old": 3, "new": 50},
        "bind_password_env": {"old": "KBSEARCH_TEST_DIRECTORY_PASSWORD", "new": "CORP_LDAP_PASSWORD"},
    }
    assert "page_size" in event.summary and "bind_password_env" in event.summary
    # Saving again unchanged records nothing more.
    openldap.refresh_from_db()
    admin_client.post(f"/admin/access/directory/{openldap.pk}/change/", form_data(openldap))
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.ADMIN_CHANGE).count() == 1


def test_adding_and_deleting_a_directory_are_audited(openldap, admin_client):
    data = form_data(openldap, key="second", name="Second")
    assert admin_client.post("/admin/access/directory/add/", data).status_code == 302
    second = Directory.objects.get(key="second")
    response = admin_client.post(f"/admin/access/directory/{second.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Directory.objects.filter(key="second").exists()
    events = AuditEvent.objects.filter(kind=AuditEvent.Kind.ADMIN_CHANGE).order_by("pk")
    assert [(event.details["key"], event.details["action"]) for event in events] == [("second", "added"), ("second", "deleted")]


def test_sync_actions_run_the_sync(openldap, admin_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/access/directory/", {"action": "sync_full", "_selected_action": [openldap.pk]}, follow=True
        )
    assert "Started a full sync of corp-ldap" in response.content.decode()
    assert DirectorySyncRun.objects.get().status == "succeeded"
    openldap.enabled = False
    openldap.save()
    response = admin_client.post(
        "/admin/access/directory/", {"action": "sync_incremental", "_selected_action": [openldap.pk]}, follow=True
    )
    assert "Not queued, disabled: corp-ldap" in response.content.decode()
    assert DirectorySyncRun.objects.count() == 1


def test_a_held_run_is_confirmed_from_the_admin_and_audited(openldap, admin_client):
    directory_sync(directory=openldap, full=True)
    openldap.group_filter = "(cn=no-such-group)"  # a broken filter: every membership would go
    openldap.save()
    held = directory_sync(directory=openldap, full=True)
    assert held.status == "held"
    page = admin_client.get(f"/admin/access/directorysyncrun/{held.pk}/change/").content.decode()
    assert "memberships_removed" in page
    response = admin_client.post(
        "/admin/access/directorysyncrun/", {"action": "confirm_held", "_selected_action": [held.pk]}, follow=True
    )
    assert f"Run {held.pk} confirmed" in response.content.decode()
    held.refresh_from_db()
    assert held.status == DirectorySyncRun.Status.CONFIRMED
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.SYNC_CONFIRMED, actor="root", directory=openldap).exists()
    # Confirming again: a clear error, nothing applied.
    again = admin_client.post(
        "/admin/access/directorysyncrun/", {"action": "confirm_held", "_selected_action": [held.pk]}, follow=True
    )
    assert f"Run {held.pk} is not a held sync" in again.content.decode()  # the admin capitalizes messages


def test_confirming_needs_the_right_to_change_directories(openldap, admin_client):
    directory_sync(directory=openldap, full=True)
    openldap.group_filter = "(cn=no-such-group)"
    openldap.save()
    held = directory_sync(directory=openldap, full=True)
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_directorysyncrun"))
    client = Client()
    client.force_login(viewer)
    client.post("/admin/access/directorysyncrun/", {"action": "confirm_held", "_selected_action": [held.pk]})
    held.refresh_from_db()
    assert held.status == "held"


def test_synced_data_and_the_audit_log_are_read_only(openldap, admin_client):
    directory_sync(directory=openldap, full=True)
    user = DirectoryUser.objects.get(username="alice")
    group = DirectoryGroup.objects.get(name="engineering")
    event = AuditEvent.objects.create(kind=AuditEvent.Kind.SIGN_IN, actor="alice", summary="alice signed in via password")
    for model in ("directoryuser", "directorygroup", "directorysyncrun", "auditevent"):
        assert admin_client.get(f"/admin/access/{model}/").status_code == 200, model
        assert admin_client.get(f"/admin/access/{model}/add/").status_code == 403, model
    assert admin_client.post(f"/admin/access/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    members = admin_client.get(f"/admin/access/directorygroup/{group.pk}/change/").content.decode()
    assert "user bob" in members and "group platform" in members and "3 users in all" in members
    assert admin_client.get(f"/admin/access/directoryuser/{user.pk}/change/").status_code == 200
    found = admin_client.get("/admin/access/auditevent/", {"kind": "sign_in", "q": "alice"}).content.decode()
    assert "alice signed in via password" in found
    none = admin_client.get("/admin/access/auditevent/", {"kind": "sync_held"}).content.decode()
    assert "alice signed in via password" not in none


def _event(summary: str, age: timedelta) -> AuditEvent:
    event = AuditEvent.objects.create(kind=AuditEvent.Kind.SIGN_IN, actor="x", summary=summary)
    AuditEvent.objects.filter(pk=event.pk).update(at=timezone.now() - age)
    return event


def test_pruning_removes_only_events_past_the_retention(db, settings):
    settings.KBSEARCH_AUDIT_RETENTION_DAYS = 30
    _event("old", timedelta(days=31))
    _event("older", timedelta(days=400))
    _event("recent", timedelta(days=29))
    _event("now", timedelta(0))
    assert audit_events_prune() == 2
    assert set(AuditEvent.objects.values_list("summary", flat=True)) == {"recent", "now"}
    assert audit_events_prune(now=timezone.now() + timedelta(days=2)) == 1  # "recent" is now 31 days old
    settings.KBSEARCH_AUDIT_RETENTION_DAYS = 0  # keep forever
    assert audit_events_prune(now=timezone.now() + timedelta(days=4000)) == 0


def test_prune_command_and_daily_task(db, settings, capsys):
    _event("a year and a day", timedelta(days=366))
    _event("a day", timedelta(days=1))
    assert settings.KBSEARCH_AUDIT_RETENTION_DAYS == 365  # the default
    call_command("prune_audit")
    assert "deleted 1 audit events older than 365 days" in capsys.readouterr().out
    assert list(AuditEvent.objects.values_list("summary", flat=True)) == ["a day"]
    celery_app.loader.import_default_modules()
    schedule = {entry["task"]: entry["schedule"] for entry in celery_app.conf.beat_schedule.values()}
    assert schedule["access.tasks.audit_events_prune_task"] == 24 * 3600.0
