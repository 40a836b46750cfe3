"""``manage.py add_source <key> --connector filesystem --config '{"root": "..."}'``."""
import json

from django.core.management.base import BaseCommand, CommandError

from connectors.base import ConnectorConfigError
from connectors.services import source_create


class Command(BaseCommand):
    help = "Register (or reconfigure) a source."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key")
        parser.add_argument("--connector", required=True)
        parser.add_argument("--config", default="{}", help="connector configuration as JSON")
        parser.add_argument("--name", default=None)

    def handle(self, *args, **options) -> None:
        try:
            config = json.loads(options["config"])
            source = source_create(
                key=options["key"], name=options["name"] or options["key"], connector=options["connector"], config=config
            )
        except (json.JSONDecodeError, ConnectorConfigError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"source {source.key} ({source.connector}) saved")
