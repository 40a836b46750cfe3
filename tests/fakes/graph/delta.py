"""``driveItem: delta`` bookkeeping: rounds of pages behind opaque tokens.

A round starts with a call without a token (the whole live tree, parents first), with a deltaLink
token (the changes after the change number that link was issued at) or with a timestamp token.
The round's list of item ids is fixed when it starts, so a nextLink can be retried after a fault
without skipping or repeating anything; items are rendered when their page is served, so an item
changed several times shows once, in its latest state. The last page carries a deltaLink holding
the change number the round was computed up to.

What shows up in an incremental round (the real service's documented behaviour, as modelled):

- every item created, edited, renamed, moved or deleted since the token (deleted ones with the
  ``deleted`` facet; deleting a folder reports each descendant as deleted too);
- the ancestors of those items, unless the request has the ``deltaExcludeParent`` header;
- sharing changes only when ``Prefer`` holds ``deltashowsharingchanges`` (without it, Microsoft
  scopes permission changes to the caller, and an app-only caller's own access never changes, so
  they are left out). Such items carry ``@microsoft.graph.sharedChanged: "True"``. With
  ``hierarchicalsharing`` as well only the item whose permissions were changed shows up, not the
  descendants that inherit from it: a connector must re-read those itself.
"""
import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tests.fakes.graph.model import Drive, GraphTenant, Item


@dataclass
class DeltaRound:
    drive_id: str
    upto: int  # the change number this round was computed up to
    item_ids: list[str]
    shared_changed: set[str]
    page_size: int
    issued: datetime
    offset: int = 0


@dataclass
class DeltaLinkState:
    drive_id: str
    since: int
    issued: datetime


@dataclass
class DeltaPage:
    items: list[Item]
    shared_changed: set[str]
    next_token: str | None = None
    delta_token: str | None = None
    extra: list[dict] = field(default_factory=list)


class DeltaTokens:
    """Every token handed out, by value. Tokens stay valid until expired (by age or by a test)."""

    def __init__(self, tenant: GraphTenant):
        self.tenant = tenant
        self.max_age: timedelta | None = None
        self._states: dict[str, DeltaRound | DeltaLinkState] = {}
        self._count = 0

    def _token(self, drive_id: str, state) -> str:
        self._count += 1
        raw = f"{self._count};{drive_id[-8:]};{self.tenant.seq};fake"
        token = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        self._states[token] = state
        return token

    def expire(self, drive: Drive | None = None) -> None:
        """Every token (of one drive, or all) answers 410 Gone from now on."""
        with self.tenant.lock:
            for token, state in list(self._states.items()):
                if drive is None or state.drive_id == drive.id:
                    del self._states[token]

    def latest(self, drive: Drive) -> str:
        """``?token=latest``: a deltaLink to now, with nothing enumerated."""
        return self._token(drive.id, DeltaLinkState(drive.id, self.tenant.seq, self.tenant.clock.now()))

    def start(self, drive: Drive, *, token: str | None, prefer: set[str], exclude_parents: bool,
              page_size: int) -> str | None:
        """A token for the first page of a new round, or None if ``token`` is unknown or expired."""
        if token is None:
            since = None
        elif (moment := _timestamp(token)) is not None:
            since = self.tenant.seq_at(moment)
        else:
            state = self._states.get(token)
            if state is None or state.drive_id != drive.id or self._too_old(state):
                return None
            if isinstance(state, DeltaRound):
                return token  # a nextLink: the round carries on from where it is
            since = state.since
        ids, shared = self._changes(drive, since, prefer, exclude_parents)
        round_ = DeltaRound(drive.id, self.tenant.seq, ids, shared, page_size, self.tenant.clock.now())
        return self._token(drive.id, round_)

    def page(self, token: str) -> DeltaPage:
        """The page a round token points at; each page's nextLink is a new token (retry-safe)."""
        round_ = self._states[token]
        chunk = round_.item_ids[round_.offset: round_.offset + round_.page_size]
        items = [self.tenant.items[i] for i in chunk]
        rest = round_.offset + round_.page_size
        page = DeltaPage(items=items, shared_changed=round_.shared_changed & set(chunk))
        if rest < len(round_.item_ids):
            following = DeltaRound(**{**round_.__dict__, "offset": rest})
            page.next_token = self._token(round_.drive_id, following)
        else:
            page.delta_token = self._token(round_.drive_id,
                                           DeltaLinkState(round_.drive_id, round_.upto, self.tenant.clock.now()))
        return page

    def _too_old(self, state) -> bool:
        return self.max_age is not None and self.tenant.clock.now() - state.issued > self.max_age

    def _changes(self, drive: Drive, since: int | None, prefer: set[str],
                 exclude_parents: bool) -> tuple[list[str], set[str]]:
        if since is None:
            return [i.id for i in self.tenant.tree_order(drive)], set()
        show_sharing = "deltashowsharingchanges" in prefer
        hierarchical = "hierarchicalsharing" in prefer
        changed: list[tuple[int, Item]] = []
        shared: set[str] = set()
        for item in self.tenant.drive_items(drive):
            stamps = [item.changed_seq] if item.changed_seq > since else []
            if show_sharing and item.sharing_seq > since:
                stamps.append(item.sharing_seq)
            if show_sharing and not hierarchical and item.inherited_sharing_seq > since and not item.deleted:
                stamps.append(item.inherited_sharing_seq)
            if stamps:
                changed.append((max(stamps), item))
                if len(stamps) > (1 if item.changed_seq > since else 0):
                    shared.add(item.id)
        ordered: list[str] = []
        for _seq, item in sorted(changed, key=lambda pair: pair[0]):
            if not exclude_parents:
                for ancestor in self._ancestors(item):
                    if ancestor.id not in ordered:
                        ordered.append(ancestor.id)
            if item.id not in ordered:
                ordered.append(item.id)
        return ordered, shared

    def _ancestors(self, item: Item) -> list[Item]:
        chain = []
        while item.parent_id is not None:
            item = self.tenant.items[item.parent_id]
            chain.append(item)
        return list(reversed(chain))


def _timestamp(token: str) -> datetime | None:
    """SharePoint also takes an ISO 8601 time as the token ("changes since then")."""
    if len(token) < 10 or token[4] != "-":
        return None
    try:
        moment = datetime.fromisoformat(token)
    except ValueError:
        return None
    return moment if moment.tzinfo else None
