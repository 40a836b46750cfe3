"""``manage.py demo_setup``: demo users and groups, the bundled sample knowledge base, synced."""
from pathlib import Path

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from connectors.services import source_create, source_sync


class Command(BaseCommand):
    help = "Create the demo users and ingest the bundled multilingual sample knowledge base."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--demo-dir", type=Path, default=None)

    def handle(self, *args, **options) -> None:
        demo_dir = options["demo_dir"] or Path(settings.BASE_DIR) / "demo"
        spec = yaml.safe_load((demo_dir / "users.yaml").read_text(encoding="utf-8"))
        password = spec["password"]
        User = get_user_model()
        for entry in spec["users"]:
            user, _ = User.objects.get_or_create(username=entry["username"])
            first, _, last = entry.get("name", "").partition(" ")
            user.first_name, user.last_name = first, last
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get_or_create(name=name)[0] for name in entry.get("groups", [])])
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
        names = ", ".join(entry["username"] for entry in spec["users"])
        self.stdout.write(f"demo users: {names} (and admin); password: {password}")
