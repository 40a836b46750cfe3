"""``manage.py add_directory <key> --kind openldap|ad --url URL ...``: register or update a directory.

Until the admin pages arrive this is how a directory is configured. The bind password is never
given here: ``--password-env`` names the environment variable the sync reads it from (in
Kubernetes, a variable filled from a secret).
"""
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from access.directory.client import ConnectionSettings, DirectoryConfigError
from access.services import directory_create


class Command(BaseCommand):
    help = "Register or update an LDAP / Active Directory directory to sync users and groups from."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key")
        parser.add_argument("--kind", choices=["openldap", "ad"], required=True)
        parser.add_argument("--url", required=True, help="ldap:// or ldaps:// URL(s), space-separated replicas")
        parser.add_argument("--bind-dn", default="")
        parser.add_argument("--password-env", default="", help="NAME of the variable holding the bind password")
        parser.add_argument("--user-base", required=True, help="base DN of the users")
        parser.add_argument("--group-base", required=True, help="base DN of the groups")
        parser.add_argument("--user-filter", default="", help="empty: the kind's default")
        parser.add_argument("--group-filter", default="", help="empty: the kind's default")
        parser.add_argument("--start-tls", action="store_true")
        parser.add_argument("--ca-file", default="", help="PEM CA certificates for ldaps:// and StartTLS")
        parser.add_argument("--page-size", type=int, default=500)
        parser.add_argument("--grace-hours", type=float, default=24.0)
        parser.add_argument("--max-removal-share", type=float, default=0.3)

    def handle(self, *args, **options) -> None:
        try:
            directory = directory_create(
                key=options["key"],
                kind=options["kind"],
                server_urls=options["url"],
                user_base_dn=options["user_base"],
                group_base_dn=options["group_base"],
                bind_dn=options["bind_dn"],
                bind_password_env=options["password_env"],
                user_filter=options["user_filter"],
                group_filter=options["group_filter"],
                start_tls=options["start_tls"],
                ca_file=options["ca_file"],
                page_size=options["page_size"],
                grace_period=timedelta(hours=options["grace_hours"]),
                max_removal_share=options["max_removal_share"],
            )
        except (DirectoryConfigError, ValidationError) as error:
            raise CommandError(str(error)) from None
        try:
            ConnectionSettings.for_directory(directory)
        except DirectoryConfigError as error:
            # Saved anyway: the workers that sync may hold the secret this shell does not.
            self.stdout.write(f"warning: {error}; the processes that sync must have it")
        self.stdout.write(f"directory {directory.key} ({directory.kind}) at {directory.server_urls}; "
                          f"sync it with: manage.py sync_directory {directory.key} --full")
