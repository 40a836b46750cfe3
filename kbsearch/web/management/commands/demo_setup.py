"""``manage.py demo_setup [--directory KEY]``: the demo's people, the bundled sample knowledge base, synced.

Without ``--directory`` the demo users of ``demo/users.yaml`` are local accounts with the shared
password and Django groups (the default principal resolver reads those). With ``--directory KEY``
(what ``make demo`` passes, after syncing its demo directory) the people come from that synced
directory: they sign in through LDAP, their Django account is made at first sign-in, and their
access comes from the directory's groups. Any local password or Django groups an earlier
directory-less demo gave those names are taken away here, since sign-in refuses to bind a name
that is a local account and groups the directory did not grant must not linger.

Either way a local ``admin`` superuser is created (the bootstrap and outage account; unknown to the
directory, so search shows it public documents only) and the sample knowledge base is synced.
"""
from pathlib import Path

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from access.selectors import directory_usernames
from connectors.services import source_create, source_sync


class Command(BaseCommand):
    help = "Create the demo users (or take them from a synced directory) and ingest the bundled sample knowledge base."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--demo-dir", type=Path, default=None)
        parser.add_argument(
            "--directory", metavar="KEY", default="",
            help="the demo people sign in through this synced directory: no local passwords or Django groups",
        )

    def handle(self, *args, **options) -> None:
        demo_dir = options["demo_dir"] or Path(settings.BASE_DIR) / "demo"
        spec = yaml.safe_load((demo_dir / "users.yaml").read_text(encoding="utf-8"))
        password = spec["password"]
        User = get_user_model()
        if options["directory"]:
            names = self._directory_people(options["directory"])
        else:
            names = self._local_people(spec)
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", password)
        source = source_create(
            key="handbook",
            name="Northwind handbook (file share)",
            connector="filesystem",
            config={"root": str(demo_dir / "sample_kb")},
        )
        run = source_sync(source=source)
        self.stdout.write(f"sample knowledge base: {run.status} {run.counts}")
        for error in run.errors:
            self.stdout.write(f"  ! {error['external_id']}: {error['reason']}")
        if options["directory"]:
            self.stdout.write(
                f"demo users: {', '.join(names)} sign in through directory {options['directory']} "
                f"(and the local admin, password: {password})"
            )
        else:
            self.stdout.write(f"demo users: {', '.join(names)} (and admin); password: {password}")

    def _local_people(self, spec: dict) -> list[str]:
        User = get_user_model()
        for entry in spec["users"]:
            user, _ = User.objects.get_or_create(username=entry["username"])
            first, _, last = entry.get("name", "").partition(" ")
            user.first_name, user.last_name = first, last
            user.set_password(spec["password"])
            user.save()
            user.groups.set([Group.objects.get_or_create(name=name)[0] for name in entry.get("groups", [])])
        return [entry["username"] for entry in spec["users"]]

    def _directory_people(self, key: str) -> list[str]:
        names = directory_usernames(key=key)
        if names is None:
            raise CommandError(f"directory {key!r} is not registered or has never synced: "
                               f"manage.py add_directory {key} ... and manage.py sync_directory {key} --full first")
        User = get_user_model()
        keys = {name.casefold() for name in names}
        # Superusers keep their password: a local admin that shares a directory name stays local.
        for user in User.objects.filter(is_superuser=False):
            if user.get_username().casefold() not in keys:
                continue
            if user.has_usable_password():
                user.set_unusable_password()
                user.save(update_fields=["password"])
            user.groups.clear()
        return names
