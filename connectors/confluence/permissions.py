"""Who may read a Confluence page: space permissions intersected with every restricted level above it.

Confluence lets a user read a page when the user has the space's ``read`` permission AND is admitted
by the read restriction of the page itself and of every ancestor that has one (a restriction names
users and groups; an empty one admits everyone with space access). Blog posts have no ancestors;
an attachment is readable as its container is.

kbsearch stores an access list as a union of principals, so the intersection is computed here:
- no restriction anywhere: the space's readers as they are (``user:`` and ``group:`` principals);
- otherwise the candidates come from one restricted level (the smallest): a group listed at every
  level stays a group; a group missing from some level is expanded into its members; each candidate
  user is kept only when every level admits them, directly or through a group they belong to
  (``/user/memberof``). Expanded users follow the group only at the next permission sync, so a new
  member waits (fail closed) rather than a non-member seeing the page.

Principals are the source's own names: ``user:<email>`` when the API gives an email (Cloud), else
``user:<accountId>`` (Cloud) or ``user:<username>`` (Data Center); ``group:<name>``. A source with an
identity mapping stores them scoped and maps them to directory users and groups at query time.
Anonymous or unlicensed access to a space is never turned into ``public``: it is reported as a
notice and grants nothing.

Group listings are cached for the run, so expanding a group costs one listing per run.
"""
from dataclasses import dataclass, field
from urllib.parse import quote

from connectors.confluence.client import ConfluenceClient, ConfluenceNotFound


class MalformedAccess(ValueError):
    """A restriction or permission object that cannot be read: the item's access is unknown."""


@dataclass(frozen=True)
class Person:
    key: str  # accountId (Cloud) or username (Data Center): what /user/memberof is asked with
    principal: str


@dataclass(frozen=True)
class Level:
    """Who one permission or restriction admits."""

    users: frozenset[Person] = frozenset()
    groups: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.users and not self.groups

    def admits_directly(self, person: Person) -> bool:
        return person in self.users


@dataclass
class SpaceAccess:
    key: str
    name: str
    readers: Level
    notices: list[str] = field(default_factory=list)


class AccessResolver:
    def __init__(self, client: ConfluenceClient, *, cloud: bool) -> None:
        self.client, self.cloud = client, cloud
        self._group_ids: dict[str, str] = {}
        self._members: dict[str, list[Person]] = {}
        self._member_of: dict[str, frozenset[str]] = {}

    # -- reading the API's objects -------------------------------------------------------------
    def person(self, user: object) -> Person | None:
        if not isinstance(user, dict):
            raise MalformedAccess(f"a user entry is {type(user).__name__}, not an object")
        if self.cloud:
            key = user.get("accountId")
            name = user.get("email") or key
        else:
            key = user.get("username") or user.get("userKey")
            name = user.get("username") or key
        if not key or not isinstance(key, str):
            return None  # an anonymous or deleted user admits nobody
        return Person(key, f"user:{name}")

    def group_name(self, group: object) -> str:
        if not isinstance(group, dict) or not isinstance(group.get("name"), str) or not group["name"]:
            raise MalformedAccess("a group entry without a name")
        if group.get("id"):
            self._group_ids[group["name"]] = str(group["id"])
        return group["name"]

    def space_access(self, space: dict) -> SpaceAccess:
        """Readers from ``/space?expand=permissions``: operation ``read`` on target ``space``."""
        if not isinstance(space.get("key"), str):
            raise MalformedAccess("a space without a key")
        permissions = space.get("permissions")
        if not isinstance(permissions, list):
            raise MalformedAccess(f"space {space['key']}: permissions were not expanded")
        users, groups, notices = set(), set(), []
        for permission in permissions:
            operation = (permission or {}).get("operation") or {}
            if operation.get("operation") != "read" or operation.get("targetType") != "space":
                continue
            if permission.get("anonymousAccess"):
                notices.append(f"space {space['key']} is readable anonymously; kbsearch does not make it public")
            if permission.get("unlicensedAccess"):
                notices.append(f"space {space['key']} is readable by unlicensed users; they are not granted in kbsearch")
            subjects = permission.get("subjects") or {}
            for user in ((subjects.get("user") or {}).get("results") or []):
                person = self.person(user)
                if person:
                    users.add(person)
            for group in ((subjects.get("group") or {}).get("results") or []):
                groups.add(self.group_name(group))
        return SpaceAccess(space["key"], str(space.get("name") or space["key"]), Level(frozenset(users), frozenset(groups)),
                           notices)

    def restriction_level(self, content: dict) -> Level | None:
        """The content's own read restriction (None when it has none); fetches the rest of a long one."""
        restrictions = content.get("restrictions")
        try:
            read = restrictions["read"]["restrictions"]
            users, groups = read["user"], read["group"]
        except (KeyError, TypeError):
            raise MalformedAccess(f"content {content.get('id')}: read restrictions were not expanded") from None
        user_items, group_items = list(users.get("results") or []), list(groups.get("results") or [])
        if _truncated(users) or _truncated(groups):
            user_items, group_items = self._whole_restriction(str(content["id"]))
            if not user_items and not group_items:
                # Restricted (the first page named someone) yet the whole listing names nobody:
                # reading it as "no restriction" would open the page to the whole space.
                raise MalformedAccess(f"content {content.get('id')}: its read restriction could not be listed")
        level = Level(frozenset(p for p in map(self.person, user_items) if p),
                      frozenset(self.group_name(g) for g in group_items))
        if level.empty and (user_items or group_items):
            return Level()  # restricted to identities that no longer exist: nobody
        return None if level.empty else level

    def _whole_restriction(self, content_id: str) -> tuple[list, list]:
        users, groups, start = [], [], 0
        while True:
            body = self.client.request(f"/rest/api/content/{content_id}/restriction/byOperation/read",
                                       {"expand": "restrictions.user,restrictions.group", "start": start, "limit": 100})
            part = body.get("restrictions") or {}
            got_users = (part.get("user") or {}).get("results") or []
            got_groups = (part.get("group") or {}).get("results") or []
            users += got_users
            groups += got_groups
            if len(got_users) < 100 and len(got_groups) < 100:
                return users, groups
            start += 100

    def levels(self, content: dict) -> list[Level]:
        """The restricted levels of a content item: its ancestors' (root first), then its own."""
        ancestors = content.get("ancestors")
        if ancestors is None and content.get("type") in ("page", "attachment"):
            raise MalformedAccess(f"content {content.get('id')}: ancestors were not expanded")
        chain = [*(ancestors or []), content]
        found = []
        for item in chain:
            if not isinstance(item, dict):
                raise MalformedAccess(f"content {content.get('id')}: an ancestor is not an object")
            level = self.restriction_level(item)
            if level is not None:
                found.append(level)
        return found

    # -- the intersection ----------------------------------------------------------------------
    def principals(self, space: SpaceAccess, restricted: list[Level]) -> tuple[str, ...]:
        if not restricted:
            return tuple(sorted({p.principal for p in space.readers.users} | {f"group:{g}" for g in space.readers.groups}))
        levels = [space.readers, *restricted]
        smallest = min(restricted, key=lambda level: (len(level.groups), len(level.users)))
        granted: set[str] = set()
        candidates: set[Person] = set(smallest.users)
        for group in smallest.groups:
            if all(group in level.groups for level in levels):
                granted.add(f"group:{group}")
            else:
                candidates.update(self.members(group))
        for person in candidates:
            if all(self._admits(level, person) for level in levels):
                granted.add(person.principal)
        return tuple(sorted(granted))

    def _admits(self, level: Level, person: Person) -> bool:
        if level.admits_directly(person):
            return True
        return bool(level.groups) and bool(level.groups & self.groups_of(person))

    def members(self, group: str) -> list[Person]:
        if group not in self._members:
            if self.cloud and group in self._group_ids:
                path = f"/rest/api/group/{quote(self._group_ids[group], safe='')}/membersByGroupId"
            else:
                path = f"/rest/api/group/{quote(group, safe='')}/member"
            try:
                users = self.client.all_results(path, {"limit": 200})
            except ConfluenceNotFound:
                users = []  # the group is gone: it admits nobody
            self._members[group] = [p for p in map(self.person, users) if p]
        return self._members[group]

    def groups_of(self, person: Person) -> frozenset[str]:
        if person.key not in self._member_of:
            params = {"accountId": person.key} if self.cloud else {"username": person.key}
            try:
                groups = self.client.all_results("/rest/api/user/memberof", {**params, "limit": 200})
            except ConfluenceNotFound:
                groups = []
            self._member_of[person.key] = frozenset(self.group_name(g) for g in groups)
        return self._member_of[person.key]


def _truncated(array: dict) -> bool:
    size = array.get("size") or 0
    total = array.get("totalSize")
    if total is not None:
        return total > size
    return bool(size) and size >= (array.get("limit") or 0) > 0
