"""When each source syncs: one Celery beat entry per source and kind of sync, editable in the admin.

Entries are django-celery-beat ``PeriodicTask`` rows named ``sync <key>`` (content: by cursor, poll
or full load, whatever the connector can do), ``sync permissions <key>`` (access lists only, for
connectors with that capability) and, for cursor connectors, ``sync full <key>``: a weekly full
pass, the only run that finds what a source deletes without telling (a purged Confluence page) and
repairs drift between the index and the database. Permission syncs are cheap, so they run more often by default:
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

from connectors.base import CursorMixin, PermissionSyncMixin, get_connector_class
from kbsearch.documents.models import Source

CONTENT_EVERY = timedelta(minutes=15)
PERMISSIONS_EVERY = timedelta(minutes=5)
FULL_EVERY = timedelta(days=7)
_TASK = "connectors.tasks.sync_source_task"


def _names(source_key: str) -> tuple[str, str, str]:
    return f"sync {source_key}", f"sync permissions {source_key}", f"sync full {source_key}"


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
            "description": f"kbsearch: {_describe(kwargs)} {source.key}",
        },
    )


def _describe(kwargs: dict) -> str:
    if kwargs.get("permissions"):
        return "access lists of"
    return "full pass of" if kwargs.get("full") else "content of"


@transaction.atomic
def source_schedule_set(
    *, source: Source, content_every: timedelta | None = CONTENT_EVERY,
    permissions_every: timedelta | None = PERMISSIONS_EVERY, full_every: timedelta | None = FULL_EVERY,
) -> None:
    """Schedule the source's syncs (None removes that entry); permission syncs and full passes only
    for connectors that have them (the others' content syncs are full loads or polls with listings)."""
    content_name, permissions_name, full_name = _names(source.key)
    connector_class = get_connector_class(source.connector)
    _entry(content_name, source, content_every, {})
    _entry(permissions_name, source, permissions_every if issubclass(connector_class, PermissionSyncMixin) else None,
           {"permissions": True})
    _entry(full_name, source, full_every if issubclass(connector_class, CursorMixin) else None, {"full": True})


def source_schedule(source: Source) -> dict[str, PeriodicTask | None]:
    content_name, permissions_name, full_name = _names(source.key)
    tasks = {task.name: task for task in PeriodicTask.objects.filter(name__in=[content_name, permissions_name, full_name])}
    return {"content": tasks.get(content_name), "permissions": tasks.get(permissions_name), "full": tasks.get(full_name)}


@receiver(post_delete, sender=Source, dispatch_uid="connectors.schedules.source_deleted")
def _source_deleted(sender, instance: Source, **_kwargs) -> None:
    PeriodicTask.objects.filter(name__in=_names(instance.key)).delete()
