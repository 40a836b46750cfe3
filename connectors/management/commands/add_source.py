"""``manage.py add_source <key> --connector filesystem --config '{"root": "..."}' [--every 15]``."""
import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from connectors.base import ConnectorConfigError
from connectors.schedules import CONTENT_EVERY, PERMISSIONS_EVERY, source_schedule_set
from connectors.services import source_create


class Command(BaseCommand):
    help = "Register (or reconfigure) a source."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key")
        parser.add_argument("--connector", required=True)
        parser.add_argument("--config", default="{}", help="connector configuration as JSON")
        parser.add_argument("--name", default=None)
        parser.add_argument(
            "--every", type=float, default=None, metavar="MINUTES",
            help=f"content syncs every MINUTES (default {CONTENT_EVERY.total_seconds() / 60:g}; 0: none scheduled)",
        )
        parser.add_argument(
            "--permissions-every", type=float, default=None, metavar="MINUTES",
            help=f"access-list syncs every MINUTES where the connector can (default {PERMISSIONS_EVERY.total_seconds() / 60:g}; 0: none)",
        )

    def handle(self, *args, **options) -> None:
        try:
            config = json.loads(options["config"])
            source = source_create(
                key=options["key"], name=options["name"] or options["key"], connector=options["connector"], config=config
            )
        except (json.JSONDecodeError, ConnectorConfigError) as error:
            raise CommandError(str(error)) from None
        if options["every"] is not None or options["permissions_every"] is not None:
            source_schedule_set(
                source=source,
                content_every=_minutes(options["every"], CONTENT_EVERY),
                permissions_every=_minutes(options["permissions_every"], PERMISSIONS_EVERY),
            )
        self.stdout.write(f"source {source.key} ({source.connector}) saved")


def _minutes(value: float | None, default: timedelta) -> timedelta | None:
    if value is None:
        return default
    if value < 0:
        raise CommandError("intervals are minutes >= 0 (0: not scheduled)")
    return timedelta(minutes=value) if value else None
