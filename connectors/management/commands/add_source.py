"""``manage.py add_source <key> --connector filesystem --config '{"root": "..."}'``.

``--identity-user-key email --identity-group-key cn [--identity-directory corp]`` also sets the
source's identity mapping (``access.mapping``; ``manage.py map_identities`` changes it later).
"""
import json

from django.core.management.base import BaseCommand, CommandError

from access.mapping import identity_mapping_set
from access.models import Directory, IdentityMapping
from connectors.base import ConnectorConfigError
from connectors.services import source_create


class Command(BaseCommand):
    help = "Register (or reconfigure) a source."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key")
        parser.add_argument("--connector", required=True)
        parser.add_argument("--config", default="{}", help="connector configuration as JSON")
        parser.add_argument("--name", default=None)
        # Optional: scope the source's principals and map them (see manage.py map_identities).
        parser.add_argument("--identity-user-key", choices=IdentityMapping.UserKey.values, default=None)
        parser.add_argument("--identity-group-key", choices=IdentityMapping.GroupKey.values, default=None)
        parser.add_argument("--identity-directory", default=None, help="match in this directory only")

    def handle(self, *args, **options) -> None:
        user_key, group_key = options["identity_user_key"], options["identity_group_key"]
        if bool(user_key) != bool(group_key) or (options["identity_directory"] and not user_key):
            raise CommandError("identity mapping needs both --identity-user-key and --identity-group-key")
        if options["identity_directory"] and not Directory.objects.filter(key=options["identity_directory"]).exists():
            raise CommandError(f"no directory {options['identity_directory']!r}")
        try:
            config = json.loads(options["config"])
            source = source_create(
                key=options["key"], name=options["name"] or options["key"], connector=options["connector"], config=config
            )
        except (json.JSONDecodeError, ConnectorConfigError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"source {source.key} ({source.connector}) saved")
        if user_key:
            mapping = identity_mapping_set(source_key=source.key, user_key=user_key, group_key=group_key,
                                           directory_key=options["identity_directory"], actor="manage.py add_source")
            self.stdout.write(f"identities of {mapping}")
