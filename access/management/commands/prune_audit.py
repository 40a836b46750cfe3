"""``manage.py prune_audit``: delete audit events older than ``KBSEARCH_AUDIT_RETENTION_DAYS`` now."""
from django.core.management.base import BaseCommand

from access.audit import audit_events_prune, audit_retention


class Command(BaseCommand):
    help = "Delete audit events older than KBSEARCH_AUDIT_RETENTION_DAYS (the daily task does the same)."

    def handle(self, *args, **options) -> None:
        retention = audit_retention()
        if retention is None:
            self.stdout.write("KBSEARCH_AUDIT_RETENTION_DAYS is 0: audit events are kept forever; nothing deleted.")
            return
        deleted = audit_events_prune()
        self.stdout.write(f"deleted {deleted} audit events older than {retention.days} days")
