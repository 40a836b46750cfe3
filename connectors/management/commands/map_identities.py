"""``manage.py map_identities <source> --user-key email --group-key cn [--directory corp]``; ``--show``; ``--remove``.

Sets how a source's identities map onto synced directory users and groups (``access.mapping``),
lists the identities that map to nobody (``--show``: unmapped and ambiguous; ``--show --all``:
every one), or removes the mapping (``--remove``). Setting a first mapping re-scopes the source's
stored access lists at once (or, if the source is busy syncing, at its next sync).
"""
from django.core.management.base import BaseCommand, CommandError

from access.mapping import IdentityMappingError, identity_mapping_delete, identity_mapping_set
from access.models import IdentityMapping, SourceIdentity
from access.selectors import identity_mapping_get, source_identities_list
from kbsearch.documents.models import Source


class Command(BaseCommand):
    help = "Map a source's identities onto directory users and groups, or list those that map to nobody."

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", help="the source's key")
        parser.add_argument("--user-key", choices=IdentityMapping.UserKey.values,
                            help="DirectoryUser field a user identity is matched on")
        parser.add_argument("--group-key", choices=IdentityMapping.GroupKey.values,
                            help="DirectoryGroup field a group identity is matched on")
        parser.add_argument("--directory", default=None, help="match in this directory only (default: every enabled one)")
        parser.add_argument("--show", action="store_true", help="list unmapped and ambiguous identities")
        parser.add_argument("--all", action="store_true", help="with --show: list mapped identities too")
        parser.add_argument("--remove", action="store_true",
                            help="remove the mapping; the source's documents are visible to nobody until a full sync")

    def handle(self, *args, **options) -> None:
        key = options["source"]
        if options["show"]:
            self._show(key, everything=options["all"])
            return
        if options["remove"]:
            if not identity_mapping_delete(source_key=key, actor="manage.py map_identities"):
                raise CommandError(f"source {key!r} has no identity mapping")
            self.stdout.write(f"identity mapping of {key} removed; run `manage.py sync_source {key} --full` "
                              "to restate its access lists in the company namespace")
            return
        if not options["user_key"] or not options["group_key"]:
            raise CommandError("give --user-key and --group-key (or --show, or --remove)")
        try:
            mapping = identity_mapping_set(source_key=key, user_key=options["user_key"], group_key=options["group_key"],
                                           directory_key=options["directory"], actor="manage.py map_identities")
        except IdentityMappingError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"source {mapping}")
        if not Source.objects.filter(key=key).exists():
            self.stdout.write(f"no source {key!r} yet: its first sync will store scoped principals")
        self._summary(key)

    def _summary(self, key: str) -> None:
        identities = source_identities_list(source_key=key)
        counts = {status: identities.filter(status=status).count() for status in SourceIdentity.Status.values}
        self.stdout.write(", ".join(f"{count} {status}" for status, count in counts.items()))

    def _show(self, key: str, *, everything: bool) -> None:
        mapping = identity_mapping_get(source_key=key)
        self.stdout.write(f"source {mapping}" if mapping else f"source {key}: no identity mapping (company namespace)")
        statuses = None if everything else [SourceIdentity.Status.UNMAPPED, SourceIdentity.Status.AMBIGUOUS]
        for identity in source_identities_list(source_key=key, statuses=statuses):
            target = identity.directory_user or identity.directory_group or ""
            self.stdout.write(f"{identity.status}\t{identity.principal}\t{target}\tlast seen {identity.last_seen_at:%Y-%m-%d %H:%M}")
        self._summary(key)
