"""``manage.py sync_source <key> [--full]``: bring a source up to date now, in this process."""
from django.core.management.base import BaseCommand, CommandError

from connectors.services import source_sync
from kbsearch.documents.models import Source


class Command(BaseCommand):
    help = (
        "Sync a source: incremental when possible; --full reloads everything and checks every "
        "document against the index, repairing what differs."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("key")
        parser.add_argument("--full", action="store_true")

    def handle(self, *args, **options) -> None:
        try:
            source = Source.objects.get(key=options["key"])
        except Source.DoesNotExist:
            raise CommandError(f"no source {options['key']!r}; add it with manage.py add_source") from None
        if not source.enabled:
            raise CommandError(
                f"source {source.key} is disabled (enabled=False) and is not synced; enable it in the admin first"
            )
        try:
            run = source_sync(source=source, full=options["full"])
        except Exception as error:
            raise CommandError(f"sync of {source.key} failed: {error}") from None
        counts = ", ".join(f"{name} {value}" for name, value in run.counts.items())
        self.stdout.write(f"{source.key}: {run.mode} sync {run.status}: {counts}")
        for error in run.errors:
            self.stdout.write(f"  ! {error['external_id']}: {error['reason']}")
