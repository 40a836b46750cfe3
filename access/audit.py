"""Audit log writes beyond syncs and sign-ins: admin changes to directories, and retention.

Syncs (``access.services``) and sign-ins (``sign_in_record``) write their own events. Admin edits
of a ``Directory`` are recorded here with the fields changed and their old and new values. A
directory holds no secret to leak: the bind password lives in the environment and the row keeps
only the variable's name (``bind_password_env``); any field whose name says "password" is still
recorded by name only, so a future secret field cannot end up in the log by accident.

Events older than ``KBSEARCH_AUDIT_RETENTION_DAYS`` are deleted by ``audit_events_prune`` (a daily
Celery task and ``manage.py prune_audit``); 0 keeps them forever.
"""
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from access.models import AuditEvent, Directory

# Deleted per statement, so pruning a large backlog does not hold one long lock on the table.
PRUNE_BATCH = 5000


def _shown(name: str, value) -> object:
    if "password" in name and not name.endswith("_env"):
        return "(not recorded)"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # durations, dates: JSON has no type for them


def directory_admin_change_record(
    *, directory: Directory, actor: str, action: str, changes: dict[str, tuple[object, object]] | None = None
) -> AuditEvent:
    """An ADMIN_CHANGE event: ``action`` is added, changed or deleted; ``changes`` field -> (old, new)."""
    changes = changes or {}
    fields = sorted(changes)
    summary = f"directory {directory.key} {action}" + (f": {', '.join(fields)}" if fields else "")
    return AuditEvent.objects.create(
        kind=AuditEvent.Kind.ADMIN_CHANGE,
        # A deleted directory's row is gone by the time the event is read: keep its key in details.
        directory=directory if action != "deleted" else None,
        actor=actor[:256],
        summary=summary[:500],
        details={
            "object": "directory",
            "key": directory.key,
            "action": action,
            "changes": {name: {"old": _shown(name, old), "new": _shown(name, new)} for name, (old, new) in changes.items()},
        },
    )


def audit_retention() -> timedelta | None:
    """How long events are kept; None: forever."""
    days = int(getattr(settings, "KBSEARCH_AUDIT_RETENTION_DAYS", 365))
    return timedelta(days=days) if days > 0 else None


def audit_events_prune(*, now: datetime | None = None) -> int:
    """Delete the events older than the retention period; returns how many were deleted."""
    retention = audit_retention()
    if retention is None:
        return 0
    cutoff = (now or timezone.now()) - retention
    deleted = 0
    while True:
        batch = list(AuditEvent.objects.filter(at__lt=cutoff).order_by("pk").values_list("pk", flat=True)[:PRUNE_BATCH])
        if not batch:
            return deleted
        deleted += AuditEvent.objects.filter(pk__in=batch).delete()[0]
