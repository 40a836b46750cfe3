"""``manage.py add_source <key> --connector filesystem --config '{"root": "..."}' [--every 15]``.

``--identity-user-key email --identity-group-key cn [--identity-directory corp]`` also sets the
source's identity mapping (``access.mapping``; ``manage.py map_identities`` changes it later). A
connector that names people in its own terms (``confluence``) gets its default mapping when none is
given and none exists (``--no-identity-mapping`` to leave its principals unmapped).
"""
import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from access.mapping import identity_mapping_set
from access.models import Directory, IdentityMapping
from connectors.base import ConnectorConfigError, get_connector_class
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
        # Optional: scope the source's principals and map them (see manage.py map_identities).
        parser.add_argument("--identity-user-key", choices=IdentityMapping.UserKey.values, default=None)
        parser.add_argument("--identity-group-key", choices=IdentityMapping.GroupKey.values, default=None)
        parser.add_argument("--identity-directory", default=None, help="match in this directory only")
        parser.add_argument("--no-identity-mapping", action="store_true",
                            help="do not give the source its connector's default identity mapping")

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
        if options["every"] is not None or options["permissions_every"] is not None:
            source_schedule_set(
                source=source,
                content_every=_minutes(options["every"], CONTENT_EVERY),
                permissions_every=_minutes(options["permissions_every"], PERMISSIONS_EVERY),
            )
        self.stdout.write(f"source {source.key} ({source.connector}) saved")
        defaults = getattr(get_connector_class(source.connector), "default_identity_keys", None)
        if (not user_key and defaults and not options["no_identity_mapping"]
                and not IdentityMapping.objects.filter(source_key=source.key).exists()):
            user_key, group_key = defaults(config)
        if user_key:
            mapping = identity_mapping_set(source_key=source.key, user_key=user_key, group_key=group_key,
                                           directory_key=options["identity_directory"], actor="manage.py add_source")
            self.stdout.write(f"identities of {mapping}")


def _minutes(value: float | None, default: timedelta) -> timedelta | None:
    if value is None:
        return default
    if value < 0:
        raise CommandError("intervals are minutes >= 0 (0: not scheduled)")
    return timedelta(minutes=value) if value else None
