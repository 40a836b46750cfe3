"""When each source syncs: one Celery beat entry per source and kind of sync, editable in the admin.

Entries are django-celery-beat ``PeriodicTask`` rows named ``sync <key>`` (content: by cursor, poll
or full load, whatever the connector can do) and ``sync permissions <key>`` (access lists only, for
connectors with that capability). Permission syncs are cheap, so they run more often by default:
a restriction added on a Confluence ancestor page or a SharePoint item unshared applies within
minutes, content changes within the quarter hour. Admins change the intervals (or disable an entry)
on the Periodic tasks admin page; ``source_schedule_set`` is what ``add_source`` and source creation
call. A deleted source takes its entries with it.
"""
import json
from datetime import timedelta

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from connectors.base import PermissionSyncMixin, get_connector_class
from kbsearch.documents.models import Source

CONTENT_EVERY = timedelta(minutes=15)
PERMISSIONS_EVERY = timedelta(minutes=5)
_TASK = "connectors.tasks.sync_source_task"


def _names(source_key: str) -> tuple[str, str]:
    return f"sync {source_key}", f"sync permissions {source_key}"


def _interval(every: timedelta) -> IntervalSchedule:
    seconds = int(every.total_seconds())
    if seconds < 1:
        raise ValueError("a sync interval must be at least one second")
    schedule, _created = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
    return schedule


def _entry(name: str, source: Source, every: timedelta | None, kwargs: dict) -> None:
    if every is None:
        PeriodicTask.objects.filter(name=name).delete()
        return
    PeriodicTask.objects.update_or_create(
        name=name,
        defaults={
            "task": _TASK,
            "interval": _interval(every),
            "args": json.dumps([source.pk]),
            "kwargs": json.dumps(kwargs),
            "queue": "sync",
            "enabled": True,
            "description": f"kbsearch: {'access lists of' if kwargs.get('permissions') else 'content of'} {source.key}",
        },
    )


@transaction.atomic
def source_schedule_set(
    *, source: Source, content_every: timedelta | None = CONTENT_EVERY,
    permissions_every: timedelta | None = PERMISSIONS_EVERY,
) -> None:
    """Schedule the source's syncs (None removes that entry); permission syncs only where supported."""
    content_name, permissions_name = _names(source.key)
    _entry(content_name, source, content_every, {})
    if not issubclass(get_connector_class(source.connector), PermissionSyncMixin):
        permissions_every = None
    _entry(permissions_name, source, permissions_every, {"permissions": True})


def source_schedule(source: Source) -> dict[str, PeriodicTask | None]:
    content_name, permissions_name = _names(source.key)
    tasks = {task.name: task for task in PeriodicTask.objects.filter(name__in=[content_name, permissions_name])}
    return {"content": tasks.get(content_name), "permissions": tasks.get(permissions_name)}


@receiver(post_delete, sender=Source, dispatch_uid="connectors.schedules.source_deleted")
def _source_deleted(sender, instance: Source, **_kwargs) -> None:
    PeriodicTask.objects.filter(name__in=_names(instance.key)).delete()
