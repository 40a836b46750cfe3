"""``manage.py sync_directory <key> [--full] [--confirm RUN_ID]``: sync a directory now, in this process."""
from django.core.management.base import BaseCommand, CommandError

from access.directory.client import DirectoryConfigError, DirectoryUnavailable
from access.models import Directory, DirectorySyncRun
from access.services import SyncNotConfirmable, directory_sync, directory_sync_confirm


class Command(BaseCommand):
    help = (
        "Sync a directory's users and groups: incremental when possible; --full reads everything. "
        "--confirm RUN_ID applies the removals a held sync showed (after checking they are intended)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("key")
        parser.add_argument("--full", action="store_true")
        parser.add_argument("--confirm", type=int, metavar="RUN_ID", help="confirm this held run")

    def handle(self, *args, **options) -> None:
        directory = Directory.objects.filter(key=options["key"]).first()
        if directory is None:
            raise CommandError(f"no directory {options['key']!r}")
        try:
            if options["confirm"] is not None:
                held = DirectorySyncRun.objects.filter(pk=options["confirm"], directory=directory).first()
                if held is None:
                    raise CommandError(f"directory {directory.key} has no run {options['confirm']}")
                run = directory_sync_confirm(run_id=held.pk, actor="manage.py sync_directory")
            else:
                run = directory_sync(directory=directory, full=options["full"])
        except (DirectoryUnavailable, DirectoryConfigError, SyncNotConfirmable) as error:
            raise CommandError(f"{directory.key}: {error}") from None
        counts = ", ".join(f"{name} {value}" for name, value in run.counts.items())
        self.stdout.write(f"{directory.key}: run {run.pk}, {run.mode} sync {run.status}: {counts}")
        if run.status == DirectorySyncRun.Status.HELD:
            self.stdout.write(
                f"  held: nothing applied. Check the run's changes, then: "
                f"manage.py sync_directory {directory.key} --confirm {run.pk}"
            )
        for error in run.errors:
            self.stdout.write(f"  ! {error}")
