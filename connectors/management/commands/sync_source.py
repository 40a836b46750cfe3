"""``manage.py sync_source <key> [--full | --permissions]``: sync a source now, in this process.

Shows a progress bar (documents handled, rate) on a terminal and nothing but the summary
otherwise (or with ``--no-progress`` / ``--verbosity 0``), so logs of scheduled runs stay readable.
``--cancel RUN`` asks a run in another process to stop at its next checkpoint.
"""
from django.core.management.base import BaseCommand, CommandError

from connectors.services import source_sync, sync_run_cancel
from kbsearch.documents.models import Source
from kbsearch.progress import add_progress_argument, progress_bar


class Command(BaseCommand):
    help = (
        "Sync a source: incremental when possible; --full reloads everything and checks every "
        "document against the index, repairing what differs; --permissions reads access lists only."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("key", nargs="?")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--full", action="store_true")
        mode.add_argument("--permissions", action="store_true", help="access lists only (no content, no embedding)")
        mode.add_argument("--cancel", type=int, metavar="RUN", help="ask a running sync (by run id) to stop")
        add_progress_argument(parser)

    def handle(self, *args, **options) -> None:
        if options["cancel"] is not None:
            if not sync_run_cancel(run_id=options["cancel"]):
                raise CommandError(f"run {options['cancel']} is not running")
            self.stdout.write(f"run {options['cancel']} will stop at its next checkpoint")
            return
        if not options["key"]:
            raise CommandError("name the source to sync")
        try:
            source = Source.objects.get(key=options["key"])
        except Source.DoesNotExist:
            raise CommandError(f"no source {options['key']!r}; add it with manage.py add_source") from None
        if not source.enabled:
            raise CommandError(
                f"source {source.key} is disabled (enabled=False) and is not synced; enable it in the admin first"
            )
        with progress_bar(options, description=source.key, unit=" docs", stream=self.stderr) as bar:
            try:
                run = source_sync(
                    source=source, full=options["full"], permissions=options["permissions"], on_progress=bar.update
                )
            except Exception as error:
                raise CommandError(f"sync of {source.key} failed: {error}") from None
        counts = ", ".join(f"{name} {value}" for name, value in run.counts.items())
        self.stdout.write(f"{source.key}: {run.mode} sync {run.status}: {counts}")
        for error in run.errors:
            self.stdout.write(f"  ! {error['external_id']}: {error['reason']}")
