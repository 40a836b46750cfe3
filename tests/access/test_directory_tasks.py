"""The directory Celery tasks (run inline without a broker): scheduled and on-demand syncs."""
from datetime import timedelta

import pytest
from django.utils import timezone

from access.models import DirectorySyncRun
from access.tasks import directories_sync_due_task, directory_sync_task, enqueue_directory_sync

pytestmark = pytest.mark.django_db


def test_the_schedule_runs_a_full_sync_first_then_incremental_ones_until_the_interval_passes(openldap):
    assert directories_sync_due_task() == 1
    assert list(DirectorySyncRun.objects.values_list("mode", "status")) == [("full", "succeeded")]
    directories_sync_due_task()
    assert DirectorySyncRun.objects.first().mode == "incremental"
    openldap.refresh_from_db()
    openldap.last_full_success_at = timezone.now() - openldap.full_sync_interval - timedelta(seconds=1)
    openldap.save(update_fields=["last_full_success_at"])
    directories_sync_due_task()
    assert DirectorySyncRun.objects.first().mode == "full"


def test_disabled_or_deleted_directories_are_not_synced(openldap):
    openldap.enabled = False
    openldap.save()
    assert directories_sync_due_task() == 0
    assert directory_sync_task(openldap.pk) is None
    assert directory_sync_task(987654) is None
    assert not DirectorySyncRun.objects.exists()


def test_an_on_demand_sync_is_queued_after_commit(openldap, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_directory_sync(directory=openldap, full=True)
    assert DirectorySyncRun.objects.get().status == "succeeded"


def test_directory_tasks_go_to_the_sync_queue(settings):
    assert settings.CELERY_TASK_ROUTES["access.tasks.*"] == {"queue": "sync"}
