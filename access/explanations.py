"""Why a user holds the principals they hold, and who may hold a principal: reads for the admin.

Selectors behind the DirectoryUser admin page and the permissions pages (``kbsearch.permissions``).
``access.resolvers.principals_for`` stays the authority on WHAT a user's principals are; these
functions explain WHY, from the tables the resolvers read:

- group chains: breadth-first over the direct edges the last sync stored (``DirectoryUserEdge``,
  then up through ``DirectoryGroupEdge``), so each group comes with the shortest chain
  user -> direct group -> parent group -> ... that puts the user in it. The resolver reads the
  closure (``DirectoryMembership``); a sync writes both from the same read, so they agree.
- Django groups, which the Django groups resolver reads.
- ``SourceIdentity`` rows mapping a source-scoped principal to the user or to a group in a chain.

Only the reasons of the configured resolver's kind are offered (a directory chain does not explain
a principal under the Django groups resolver); a custom resolver gets every kind. A principal no
record explains is said to come from the resolver, never left out.

``principal_candidates`` goes the other way, principal -> accounts, for "who can see document Y".
It returns a superset: callers verify each account with ``principals_for`` before listing it.
"""
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models.functions import Lower

from access import selectors
from access.models import (
    DirectoryGroup,
    DirectoryGroupEdge,
    DirectoryMembership,
    DirectoryUser,
    SourceIdentity,
)
from access.principals import GROUP, PUBLIC, USER, InvalidPrincipal, parse_principal
from access.resolvers import (
    DirectoryPrincipalResolver,
    DjangoGroupsPrincipalResolver,
    get_principal_resolver,
    principals_for,
)


@dataclass(frozen=True)
class GroupChain:
    """The groups that put a directory user in ``groups[-1]``: the direct group first."""

    directory_key: str
    groups: tuple[DirectoryGroup, ...]

    @property
    def group(self) -> DirectoryGroup:
        return self.groups[-1]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(group.name for group in self.groups)


@dataclass(frozen=True)
class Reason:
    """One reason a user holds a principal; ``chain`` and ``identity`` when the reason has them."""

    kind: str  # public | own_name | directory_group | django_group | source_identity | resolver
    text: str
    chain: GroupChain | None = None
    identity: SourceIdentity | None = None


@dataclass(frozen=True)
class DirectoryEntry:
    """A directory row of the user's name, and whether it counts for the resolver right now."""

    row: DirectoryUser
    status: str  # active | disabled | deleted | stale (its directory is past the grace period)
    chains: dict[int, GroupChain]  # group pk -> chain, empty unless active

    @property
    def counts(self) -> bool:
        return self.status == "active"


@dataclass
class UserAccess:
    """A user's principals as the resolver gives them, each with its reasons."""

    user: object
    resolver: str
    principals: list[str]
    reasons: dict[str, list[Reason]]
    directory_entries: list[DirectoryEntry]
    notes: list[str] = field(default_factory=list)


def directory_group_chains(*, directory_user: DirectoryUser) -> dict[int, GroupChain]:
    """Every group ``directory_user`` is in, by pk, with the shortest chain of direct edges to it.

    One query per nesting level. Ties between chains of the same length go to the group names
    that sort first, so the page shows the same chain every time.
    """
    key = directory_user.directory.key
    direct = DirectoryGroup.objects.filter(user_edges__user=directory_user).order_by("name", "pk")
    chains = {group.pk: GroupChain(key, (group,)) for group in direct}
    frontier = list(chains)
    while frontier:
        position = {pk: index for index, pk in enumerate(frontier)}
        edges = sorted(
            DirectoryGroupEdge.objects.filter(child_id__in=frontier).select_related("parent"),
            key=lambda edge: (position[edge.child_id], edge.parent.name, edge.parent_id),
        )
        frontier = []
        for edge in edges:
            if edge.parent_id in chains:  # reached by a chain as short or shorter; also ends cycles
                continue
            chains[edge.parent_id] = GroupChain(key, (*chains[edge.child_id].groups, edge.parent))
            frontier.append(edge.parent_id)
    return chains


def directory_closure_without_chain(*, directory_user: DirectoryUser, chains: dict[int, GroupChain]) -> list[DirectoryGroup]:
    """Groups the closure puts the user in that no stored chain of edges reaches (normally none)."""
    return list(
        DirectoryGroup.objects.filter(memberships__user=directory_user).exclude(pk__in=list(chains)).order_by("name")
    )


def directory_entries_for(*, username: str) -> list[DirectoryEntry]:
    """The directory rows of ``username`` (case-insensitive, as the resolver matches) with their status."""
    now = selectors.current_time()
    entries = []
    rows = DirectoryUser.objects.filter(username_key=username.casefold()).select_related("directory")
    for row in rows.order_by("directory__key"):
        directory = row.directory
        if row.deleted_at is not None:
            status = "deleted"
        elif not row.enabled:
            status = "disabled"
        elif directory.last_success_at is None or now - directory.last_success_at > directory.grace_period:
            status = "stale"
        else:
            status = "active"
        entries.append(DirectoryEntry(row, status, directory_group_chains(directory_user=row) if status == "active" else {}))
    return entries


def user_access_explain(*, user) -> UserAccess:
    """``principals_for(user)``, each principal with the records that explain it."""
    resolver = get_principal_resolver()
    principals = principals_for(user)
    username = user.get_username()
    entries = directory_entries_for(username=username)
    explain_directory = not isinstance(resolver, DjangoGroupsPrincipalResolver)
    explain_django = not isinstance(resolver, DirectoryPrincipalResolver)
    django_groups = sorted(user.groups.values_list("name", flat=True)) if explain_django else []
    chains = [chain for entry in entries if entry.counts for chain in entry.chains.values()] if explain_directory else []
    identities = {
        identity.principal: identity
        for identity in SourceIdentity.objects.filter(
            principal__in=[p for p in principals if p.startswith("source/")]
        ).select_related("directory_user__directory", "directory_group__directory")
    }
    own_rows = {entry.row.pk for entry in entries if entry.counts}
    reasons = {}
    for principal in sorted(principals):
        found = _reasons(principal, username, chains, django_groups, identities.get(principal), own_rows)
        reasons[principal] = found or [Reason("resolver", f"given by the configured resolver ({_path(resolver)}); "
                                                         "no synced record here explains it")]
    return UserAccess(
        user=user, resolver=_path(resolver), principals=sorted(principals), reasons=reasons,
        directory_entries=entries, notes=_notes(user, principals, entries, explain_directory),
    )


def _reasons(principal, username, chains, django_groups, identity, own_rows) -> list[Reason]:
    try:
        parsed = parse_principal(principal)
    except InvalidPrincipal:
        return []
    if parsed.kind == PUBLIC:
        return [Reason("public", "every active, signed-in user holds public")]
    if parsed.source is None and parsed.kind == USER:
        return [Reason("own_name", "the user's own name")] if parsed.name == username.casefold() else []
    if parsed.source is None and parsed.kind == GROUP:
        found = [
            Reason("directory_group", f"member of {chain.group.name} in directory {chain.directory_key}", chain=chain)
            for chain in chains
            if chain.group.name.casefold() == parsed.name
        ]
        found += [Reason("django_group", f"member of the Django group {name}") for name in django_groups
                  if name.casefold() == parsed.name]
        return found
    if identity is None:
        return []
    if identity.directory_user_id is not None and identity.directory_user_id in own_rows:
        return [Reason("source_identity", f"source {identity.source_key} names {identity.name}, mapped to "
                                          f"directory user {identity.directory_user}", identity=identity)]
    return [
        Reason("source_identity", f"source {identity.source_key} names {identity.name}, mapped to directory "
                                  f"group {identity.directory_group}, which the user is in", chain=chain, identity=identity)
        for chain in chains
        if identity.directory_group_id is not None and chain.group.pk == identity.directory_group_id
    ]


def _notes(user, principals, entries, explain_directory) -> list[str]:
    notes = []
    if not user.is_active:
        notes.append("The account is inactive: it has no principals and sees nothing.")
    elif not principals:
        notes.append("No principals: the directory disables or deletes this user, or the resolver failed. "
                     "They see nothing.")
    if explain_directory and user.is_active:
        if not entries:
            notes.append("No synced directory knows this name: the directory resolver gives public only.")
        elif all(entry.status == "stale" for entry in entries):
            notes.append("Every directory of this user is past its grace period without a successful sync: "
                         "public only until a sync succeeds.")
    return notes


def _path(resolver) -> str:
    return f"{type(resolver).__module__}.{type(resolver).__qualname__}"


@dataclass
class Candidates:
    """Accounts that may hold some principals (to verify), and directory users with no account yet."""

    user_ids: set[int]
    directory_users_without_account: list[DirectoryUser]


def principal_candidates(*, principals: Iterable[str]) -> Candidates:
    """Django accounts that might hold any of ``principals`` (not ``public``), from every table a resolver reads.

    A superset: a Django group member under the directory resolver, a user past the grace period,
    an inactive account are all candidates. Verify each with ``principals_for`` before showing it.
    """
    names: set[str] = set()  # casefolded usernames
    directory_group_ids: set[int] = set()
    django_group_names: set[str] = set()
    scoped = []
    for principal in principals:
        try:
            parsed = parse_principal(principal)
        except InvalidPrincipal:
            continue  # a malformed entry grants nobody
        if parsed.source is not None:
            scoped.append(principal)
        elif parsed.kind == USER:
            names.add(parsed.name)
        elif parsed.kind == GROUP:
            django_group_names.add(parsed.name)
            directory_group_ids.update(
                pk for pk, name in DirectoryGroup.objects.filter(name__iexact=parsed.name).values_list("pk", "name")
                if name.casefold() == parsed.name
            )
    for identity in SourceIdentity.objects.filter(principal__in=scoped, status=SourceIdentity.Status.MAPPED):
        if identity.directory_user_id is not None:
            names.update(DirectoryUser.objects.filter(pk=identity.directory_user_id).values_list("username_key", flat=True))
        if identity.directory_group_id is not None:
            directory_group_ids.add(identity.directory_group_id)
    names.update(
        DirectoryMembership.objects.filter(group_id__in=directory_group_ids).values_list("user__username_key", flat=True)
    )
    model = get_user_model()
    field_name = model.USERNAME_FIELD
    by_name = {
        pk: username
        for pk, username in model._default_manager.annotate(folded=Lower(field_name))
        .filter(folded__in=[name.lower() for name in names])
        .values_list("pk", field_name)
        if username.casefold() in names
    }
    user_ids = set(by_name)
    for name in django_group_names:
        user_ids.update(
            pk for pk, group in model._default_manager.filter(groups__name__iexact=name).values_list("pk", "groups__name")
            if group.casefold() == name
        )
    with_account = {username.casefold() for username in by_name.values()}
    without = [
        row for row in DirectoryUser.objects.filter(username_key__in=names - with_account, deleted_at=None, enabled=True)
        .select_related("directory").order_by("username_key", "directory__key")
    ]
    return Candidates(user_ids=user_ids, directory_users_without_account=without)
