"""Identity mapping: which directory user or group each identity a source names is, if any.

A source with an ``IdentityMapping`` has its principals scoped to it (``source/<key>/user:<id>``,
``source/<key>/group:<id>``: ``source_principals_scoped``, applied by the documents layer to
everything a connector emits). Each scoped identity is a ``SourceIdentity`` row
(``source_identities_record``), matched by the mapping's keys against the synced directory users
(username, email, UPN, DN, SID, entryUUID/objectGUID) or groups (cn, DN, sAMAccountName, SID,
entryUUID/objectGUID) of the mapping's directory, or of every enabled directory when it names none:

- exactly one live (not deleted) entry has the key: ``mapped`` to it; the resolver gives the
  principal to that user, or to every member of that group (``access.selectors``);
- none: ``unmapped``; several: ``ambiguous``. Both are visible to nobody and listed for admins.

Matching compares casefolded values (DNs in ``dn_key`` form), the way directories compare names.
Identities are remapped when first seen, when the mapping is set, and after every directory sync
that changed users or groups (``identities_remap_for_directory``). Every change of an identity's
status or target is an audit event (``MAPPING_CHANGED``); setting a mapping is one (``ADMIN_CHANGE``).

Creating a mapping renames the source's principals (``user:x`` becomes ``source/<key>/user:x``):
``identity_scope_changed`` tells the documents layer, which sits above this app, to rewrite the
access lists it already holds. Deleting a mapping leaves them scoped, so visible to nobody, until a
full sync of the source restates them in the company namespace (fail closed).
"""
from collections import Counter, defaultdict
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.dispatch import Signal
from django.utils import timezone

from access.directory.schema import dn_key
from access.models import AuditEvent, Directory, DirectoryGroup, DirectoryUser, IdentityMapping, SourceIdentity
from access.principals import PUBLIC, InvalidPrincipal, parse_principal, scoped_principal, str_principal

# Sent (``source_key=``) when a source's principals change names: a mapping was created for it.
identity_scope_changed = Signal()
_BATCH = 1000
# Identities listed in a MAPPING_CHANGED audit event; the counts are always complete.
CHANGES_LISTED = 200
# IdentityMapping key -> the DirectoryUser / DirectoryGroup column compared with the source's name.
USER_KEY_FIELDS = {"username": "username_key", "email": "email", "upn": "upn", "dn": "dn_key", "sid": "sid",
                   "external_id": "external_id"}
GROUP_KEY_FIELDS = {"cn": "name", "dn": "dn_key", "account_name": "account_name", "sid": "sid",
                    "external_id": "external_id"}


class IdentityMappingError(ValueError):
    """A mapping that cannot work: an unknown key or directory, a malformed source key."""


def source_principals_scoped(*, source_key: str, principals: Iterable[str], mapped: bool) -> frozenset[str]:
    """``principals`` as a source's documents store them; raises ``InvalidPrincipal``.

    With a mapping (``mapped``) company-namespace ``user:``/``group:`` principals become this
    source's; without one they stay as they are (the file-share default). ``public`` stays, a
    principal scoped to this source is kept, one scoped to another source is refused: a connector
    cannot claim another source's identities.
    """
    own = source_key.casefold()
    scoped = set()
    for value in principals:
        principal = parse_principal(value)
        if principal.kind == PUBLIC or (principal.source is None and not mapped):
            scoped.add(str_principal(principal))
        elif principal.source is None:
            scoped.add(scoped_principal(source_key=source_key, kind=principal.kind, name=principal.name))
        elif principal.source == own:
            scoped.add(str_principal(principal))
        else:
            raise InvalidPrincipal(f"{value!r} is an identity of source {principal.source!r}; "
                                   f"source {source_key!r} may name only its own")
    return frozenset(scoped)


def source_identities_record(*, source_key: str, principals: Iterable[str]) -> int:
    """Note the identities of ``source_key`` that ``principals`` name; map new ones. Returns how many were new.

    Others (``public``, company-namespace, other sources') are ignored. Seen ones get ``last_seen_at``.
    """
    own = source_key.casefold()
    wanted: dict[str, tuple[str, str]] = {}
    for value in principals:
        principal = parse_principal(value)
        if principal.source == own:
            wanted[str_principal(principal)] = (principal.kind, principal.name)
    names = sorted(wanted)
    now = timezone.now()
    new = []
    for start in range(0, len(names), _BATCH):
        batch = names[start : start + _BATCH]
        known = set(SourceIdentity.objects.filter(principal__in=batch).values_list("principal", flat=True))
        SourceIdentity.objects.filter(principal__in=known).update(last_seen_at=now)
        new.extend(name for name in batch if name not in known)
    if not new:
        return 0
    # Another writer may add the same identity meanwhile: theirs stands, and both map it the same way.
    SourceIdentity.objects.bulk_create(
        [SourceIdentity(source_key=source_key, kind=wanted[p][0], name=wanted[p][1], principal=p) for p in new],
        ignore_conflicts=True, batch_size=_BATCH,
    )
    mapping = IdentityMapping.objects.filter(source_key=source_key).select_related("directory").first()
    for start in range(0, len(new), _BATCH):
        _remap(source_key, mapping, list(SourceIdentity.objects.filter(principal__in=new[start : start + _BATCH])),
               actor="ingest")
    return len(new)


def source_identities_remap(*, source_key: str, actor: str = "sync") -> Counter:
    """Match every identity of ``source_key`` again; returns how many changed, by new status."""
    mapping = IdentityMapping.objects.filter(source_key=source_key).select_related("directory").first()
    changed: Counter = Counter()
    last_pk = 0
    while True:
        batch = list(SourceIdentity.objects.filter(source_key=source_key, pk__gt=last_pk).order_by("pk")[:_BATCH])
        if not batch:
            return changed
        changed.update(_remap(source_key, mapping, batch, actor=actor))
        last_pk = batch[-1].pk


def identities_remap_for_directory(*, directory: Directory) -> Counter:
    """After a sync of ``directory`` changed users or groups: remap the sources that match against it."""
    changed: Counter = Counter()
    mappings = IdentityMapping.objects.filter(Q(directory=directory) | Q(directory__isnull=True))
    for source_key in mappings.values_list("source_key", flat=True):
        changed.update(source_identities_remap(source_key=source_key))
    return changed


def identity_mapping_set(*, source_key: str, user_key: str, group_key: str, directory_key: str | None = None,
                         actor: str = "") -> IdentityMapping:
    """Create or change how ``source_key``'s identities map; remaps them. Raises ``IdentityMappingError``."""
    if user_key not in IdentityMapping.UserKey.values:
        raise IdentityMappingError(f"user key must be one of {', '.join(IdentityMapping.UserKey.values)}; got {user_key!r}")
    if group_key not in IdentityMapping.GroupKey.values:
        raise IdentityMappingError(f"group key must be one of {', '.join(IdentityMapping.GroupKey.values)}; got {group_key!r}")
    directory = None
    if directory_key:
        directory = Directory.objects.filter(key=directory_key).first()
        if directory is None:
            raise IdentityMappingError(f"no directory {directory_key!r}")
    with transaction.atomic():
        mapping = IdentityMapping.objects.select_for_update().filter(source_key=source_key).first()
        created = mapping is None
        before = _described(mapping) if mapping else ""
        mapping = mapping or IdentityMapping(source_key=source_key)
        mapping.directory, mapping.user_key, mapping.group_key = directory, user_key, group_key
        try:
            mapping.full_clean()
        except ValidationError as error:
            raise IdentityMappingError("; ".join(error.messages)) from None
        mapping.save()
        after = _described(mapping)
        if before != after:
            AuditEvent.objects.create(
                kind=AuditEvent.Kind.ADMIN_CHANGE, directory=directory, actor=actor or "admin",
                summary=f"identity mapping of source {source_key}: {after}"[:500],
                details={"source": source_key, "before": before, "after": after},
            )
        source_identities_remap(source_key=source_key, actor=actor or "admin")
    if created:
        identity_scope_changed.send(sender=IdentityMapping, source_key=source_key)
    return mapping


def identity_mapping_delete(*, source_key: str, actor: str = "") -> bool:
    """Stop mapping ``source_key``'s identities: they map to nobody until a full sync of the source.

    Returns whether there was a mapping. The stored access lists stay scoped (visible to nobody);
    ``sync_source KEY --full`` restates them as the connector names them (``user:``/``group:``).
    """
    with transaction.atomic():
        deleted, _ = IdentityMapping.objects.filter(source_key=source_key).delete()
        if not deleted:
            return False
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.ADMIN_CHANGE, actor=actor or "admin",
            summary=f"identity mapping of source {source_key} removed; its identities map to nobody",
            details={"source": source_key},
        )
        source_identities_remap(source_key=source_key, actor=actor or "admin")
    return True


def source_identities_forget(*, source_key: str) -> int:
    """A deleted source: its mapping and identities go too. Returns how many identities were removed."""
    with transaction.atomic():
        IdentityMapping.objects.filter(source_key=source_key).delete()
        removed, _ = SourceIdentity.objects.filter(source_key=source_key).delete()
    return removed


def _described(mapping: IdentityMapping) -> str:
    where = mapping.directory.key if mapping.directory_id else "every enabled directory"
    return f"users by {mapping.user_key}, groups by {mapping.group_key}, in {where}"


def _remap(source_key: str, mapping: IdentityMapping | None, identities: list[SourceIdentity], *, actor: str) -> Counter:
    """Match ``identities`` under ``mapping`` (None: nobody); write and audit what changed."""
    users = {i.name for i in identities if i.kind == SourceIdentity.Kind.USER}
    groups = {i.name for i in identities if i.kind == SourceIdentity.Kind.GROUP}
    user_matches: dict[str, set[int]] = {}
    group_matches: dict[str, set[int]] = {}
    if mapping is not None:
        directories = Directory.objects.filter(pk=mapping.directory_id) if mapping.directory_id else (
            Directory.objects.filter(enabled=True))
        live_users = DirectoryUser.objects.filter(directory__in=directories, deleted_at=None)
        user_matches = _matches(live_users, USER_KEY_FIELDS[mapping.user_key], users)
        group_matches = _matches(DirectoryGroup.objects.filter(directory__in=directories),
                                 GROUP_KEY_FIELDS[mapping.group_key], groups)
    now = timezone.now()
    changed, listed = [], []
    counts: Counter = Counter()
    for identity in identities:
        is_user = identity.kind == SourceIdentity.Kind.USER
        found = (user_matches if is_user else group_matches).get(identity.name, set())
        target = next(iter(found)) if len(found) == 1 else None
        status = (SourceIdentity.Status.MAPPED if target else
                  SourceIdentity.Status.AMBIGUOUS if found else SourceIdentity.Status.UNMAPPED)
        user_id, group_id = (target, None) if is_user else (None, target)
        if (identity.status, identity.directory_user_id, identity.directory_group_id) == (status, user_id, group_id):
            continue
        identity.status, identity.directory_user_id, identity.directory_group_id = status, user_id, group_id
        identity.mapped_at = now if target else None
        changed.append(identity)
        counts[status] += 1
        if len(listed) < CHANGES_LISTED:
            listed.append([identity.principal, status, len(found)])
    if not changed:
        return counts
    SourceIdentity.objects.bulk_update(changed, ["status", "directory_user", "directory_group", "mapped_at"],
                                       batch_size=_BATCH)
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.MAPPING_CHANGED, directory=mapping.directory if mapping else None, actor=actor,
        summary=(f"source {source_key}: {len(changed)} identities remapped ("
                 + ", ".join(f"{counts[s]} {s}" for s in SourceIdentity.Status.values if counts[s]) + ")")[:500],
        details={"source": source_key, "counts": dict(counts), "changes": listed},
    )
    return counts


def _matches(queryset, field: str, names: set[str]) -> dict[str, set[int]]:
    """{casefolded name: pks of the rows whose ``field`` equals it}, compared casefolded (DNs as dn_key)."""
    found: dict[str, set[int]] = defaultdict(set)
    if not names:
        return found
    if field == "dn_key":
        by_key = defaultdict(set)
        for name in names:
            by_key[dn_key(name)].add(name)
        keys = sorted(by_key)
        for start in range(0, len(keys), _BATCH):
            for pk, key in queryset.filter(dn_key__in=keys[start : start + _BATCH]).values_list("pk", "dn_key"):
                for name in by_key[key]:
                    found[name].add(pk)
        return found
    ordered = sorted(names)
    for start in range(0, len(ordered), _BATCH):
        batch = ordered[start : start + _BATCH]
        # The database lowercases, Python casefolds: for the rare letters where the two differ
        # (German ß) the row is not found, so the identity stays unmapped rather than mismatched.
        rows = queryset.annotate(match_key=Lower(field)).filter(match_key__in=batch).values_list("pk", field)
        for pk, value in rows:
            if value.casefold() in names:
                found[value.casefold()].add(pk)
    return found
