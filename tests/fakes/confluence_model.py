"""The in-memory Confluence site behind the fake server, driven from Python by tests and benchmarks.

A ``Site`` holds users, groups, spaces (with space permissions), pages, blog posts and attachments,
and the indexes the server needs to list 10,000 pages without scanning: content by id, by (space,
type) in creation order, child pages by parent, attachments by container.

Mutations behave as Confluence does where a connector can trip over it:
- ``edit`` bumps the version and sets ``version.when`` to the clock's time;
- ``move`` changes the parent (and so the ancestors and the inherited read restrictions) but, as in
  Confluence, creates no new version: CQL ``lastmodified`` does not see a move unless
  ``bump_version=True``. Restriction changes create no version either;
- ``delete`` trashes (status ``trashed``: gone from listings and CQL, 404 unless ``status=trashed``
  is asked for) or purges (gone for good); the children of a deleted page move up to its parent.

Every mutation increments ``revision`` so the server can cache listings between mutations. One
re-entrant lock guards the site: the server holds it while it renders a response.
"""
import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

PAGE, BLOGPOST, ATTACHMENT = "page", "blogpost", "attachment"


class Clock:
    """The site's time: fixed until a test moves it, so timestamps are deterministic."""

    def __init__(self, start: datetime = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)):
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


@dataclass(eq=False)
class User:
    handle: str
    display_name: str
    account_id: str  # Cloud identity
    username: str  # Data Center identities
    user_key: str
    email: str
    groups: set[str] = field(default_factory=set)
    can_use: bool = True  # False: authenticated but no 'Can use' permission -> 403 everywhere
    sees_everything: bool = False  # a service account that bypasses space permissions and restrictions


@dataclass(eq=False)
class Group:
    name: str
    id: str


@dataclass(eq=False)
class SpacePermission:
    id: int
    principal: User | Group
    key: str  # read, create, administer ...
    target: str  # space, page, blogpost, attachment ...


@dataclass(eq=False)
class Space:
    id: int
    key: str
    name: str
    type: str
    created: datetime
    author: User
    status: str = "current"
    homepage_id: str | None = None
    permissions: list[SpacePermission] = field(default_factory=list)


@dataclass(eq=False)
class Content:
    id: str
    seq: int  # creation order, for stable listings
    type: str
    title: str
    space: Space
    author: User
    created: datetime
    when: datetime  # version.when / history.lastUpdated.when / CQL lastmodified
    body: str = ""
    parent_id: str | None = None  # a page's parent page, an attachment's container
    status: str = "current"
    version: int = 1
    editor: User | None = None
    minor_edit: bool = False
    message: str = ""
    read_users: list[User] = field(default_factory=list)
    read_groups: list[Group] = field(default_factory=list)
    media_type: str = ""  # attachments
    data: bytes = b""


class Site:
    def __init__(self, clock: Clock | None = None, timezone_: timezone = UTC):
        self.clock = clock or Clock()
        self.timezone = timezone_  # the users' zone: CQL dates and Data Center timestamps use it
        self.lock = threading.RLock()
        self.revision = 0
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.spaces: dict[str, Space] = {}
        self.spaces_by_id: dict[int, Space] = {}
        self.content: dict[str, Content] = {}
        self._by_space_type: dict[tuple[str, str], dict[str, None]] = {}  # ordered sets
        self._children: dict[str, dict[str, None]] = {}
        self._attachments: dict[str, dict[str, None]] = {}
        self.api_tokens: dict[tuple[str, str], User] = {}  # Cloud: (email, token)
        self.personal_tokens: dict[str, User] = {}  # Data Center PATs
        self._next_id = 163_841
        self._next_perm = 1

    # -- identities ---------------------------------------------------------------------------
    def _bump(self) -> None:
        self.revision += 1

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_group(self, name: str) -> Group:
        with self.lock:
            if name not in self.groups:
                digest = hashlib.sha1(name.encode()).hexdigest()
                self.groups[name] = Group(name, f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}")
                self._bump()
            return self.groups[name]

    def add_user(self, handle: str, *, display_name: str | None = None, email: str | None = None,
                 groups: tuple[str, ...] = (), can_use: bool = True, sees_everything: bool = False) -> User:
        with self.lock:
            digest = hashlib.sha1(handle.encode()).hexdigest()
            user = User(handle, display_name or handle.title(), account_id=f"557058:{digest[:8]}-{digest[8:12]}-{digest[12:24]}",
                        username=handle, user_key=digest[:32], email=email or f"{handle}@example.com",
                        groups=set(groups), can_use=can_use, sees_everything=sees_everything)
            for name in groups:
                self.add_group(name)
            self.users[handle] = user
            self._bump()
            return user

    def add_to_group(self, user: User, group: str) -> None:
        with self.lock:
            self.add_group(group)
            user.groups.add(group)
            self._bump()

    def remove_from_group(self, user: User, group: str) -> None:
        with self.lock:
            user.groups.discard(group)
            self._bump()

    def add_api_token(self, user: User, token: str) -> None:
        """Cloud: HTTP basic with the user's email and this API token."""
        self.api_tokens[(user.email, token)] = user

    def add_personal_token(self, user: User, token: str) -> None:
        """Data Center: ``Authorization: Bearer <token>``."""
        self.personal_tokens[token] = user

    # -- spaces -------------------------------------------------------------------------------
    def add_space(self, key: str, name: str | None = None, *, type: str = "global", author: User | None = None) -> Space:
        with self.lock:
            space = Space(self._new_id(), key, name or key, type, self.clock.now(), author or self._anyone())
            self.spaces[key] = space
            self.spaces_by_id[space.id] = space
            self._bump()
            return space

    def grant_space(self, space: Space, principal: User | Group | str, key: str = "read", target: str = "space") -> SpacePermission:
        """A space permission; a str principal names a group."""
        with self.lock:
            if isinstance(principal, str):
                principal = self.add_group(principal)
            permission = SpacePermission(self._next_perm, principal, key, target)
            self._next_perm += 1
            space.permissions.append(permission)
            self._bump()
            return permission

    def revoke_space(self, space: Space, principal: User | Group | str, key: str = "read") -> None:
        with self.lock:
            name = principal if isinstance(principal, str) else None
            space.permissions = [
                p for p in space.permissions
                if not (p.key == key and (p.principal is principal or (name and getattr(p.principal, "name", None) == name)))
            ]
            self._bump()

    # -- content ------------------------------------------------------------------------------
    def _anyone(self) -> User:
        return next(iter(self.users.values()), None) or self.add_user("admin", display_name="Site Admin")

    def _index(self, content: Content) -> None:
        if content.type == ATTACHMENT:
            self._attachments.setdefault(content.parent_id, {})[content.id] = None
            return
        self._by_space_type.setdefault((content.space.key, content.type), {})[content.id] = None
        if content.parent_id:
            self._children.setdefault(content.parent_id, {})[content.id] = None

    def _unindex(self, content: Content) -> None:
        if content.type == ATTACHMENT:
            self._attachments.get(content.parent_id, {}).pop(content.id, None)
            return
        self._by_space_type.get((content.space.key, content.type), {}).pop(content.id, None)
        if content.parent_id:
            self._children.get(content.parent_id, {}).pop(content.id, None)

    def _add(self, type_: str, space: Space, title: str, *, body: str = "", parent: Content | None = None,
             author: User | None = None, when: datetime | None = None, version: int = 1, **extra) -> Content:
        with self.lock:
            number = self._new_id()
            moment = when or self.clock.now()
            author = author or self._anyone()
            content = Content(
                id=f"att{number}" if type_ == ATTACHMENT else str(number), seq=number, type=type_, title=title,
                space=space, author=author, editor=author, created=moment, when=moment, body=body,
                parent_id=parent.id if parent else None, version=version, **extra,
            )
            self.content[content.id] = content
            self._index(content)
            if type_ == PAGE and parent is None and space.homepage_id is None:
                space.homepage_id = content.id
            self._bump()
            return content

    def add_page(self, space: Space, title: str, *, body: str = "", parent: Content | None = None, **kw) -> Content:
        return self._add(PAGE, space, title, body=body, parent=parent, **kw)

    def add_blogpost(self, space: Space, title: str, *, body: str = "", **kw) -> Content:
        return self._add(BLOGPOST, space, title, body=body, **kw)

    def add_attachment(self, container: Content, filename: str, data: bytes, *,
                       media_type: str = "application/octet-stream", **kw) -> Content:
        return self._add(ATTACHMENT, container.space, filename, parent=container, data=data, media_type=media_type, **kw)

    def edit(self, content: Content, *, title: str | None = None, body: str | None = None, data: bytes | None = None,
             editor: User | None = None, minor_edit: bool = False, message: str = "") -> Content:
        """A new version at the clock's time."""
        with self.lock:
            if title is not None:
                content.title = title
            if body is not None:
                content.body = body
            if data is not None:
                content.data = data
            content.version += 1
            content.when = self.clock.now()
            content.editor = editor or content.editor
            content.minor_edit, content.message = minor_edit, message
            self._bump()
            return content

    def move(self, page: Content, parent: Content | None, *, space: Space | None = None, bump_version: bool = False) -> None:
        """New parent (None: top level of ``space``, else of the page's own space). Into another
        space, the page's descendants and their attachments go along. No new version unless asked,
        as in Confluence."""
        with self.lock:
            if parent is not None and (parent is page or page in self.ancestors(parent)):
                raise ValueError("a page cannot move under itself")
            target = parent.space if parent is not None else (space or page.space)
            if space is not None and space is not target:
                raise ValueError("the new parent is in another space")
            self._unindex(page)
            page.parent_id = parent.id if parent else None
            if target is not page.space:
                moving = [page]
                while moving:
                    content = moving.pop()
                    below = [self.content[i] for i in (*self._children.get(content.id, {}), *self._attachments.get(content.id, {}))]
                    for child in below:
                        self._unindex(child)
                        child.space = target
                        self._index(child)
                    moving.extend(child for child in below if child.type != ATTACHMENT)
                page.space = target
            self._index(page)
            if bump_version:
                self.edit(page)
            self._bump()

    def delete(self, content: Content, *, purge: bool = False) -> None:
        """Trash (or purge) content; a deleted page's children move up to its parent."""
        with self.lock:
            for child_id in list(self._children.get(content.id, {})):
                child = self.content[child_id]
                self._unindex(child)
                child.parent_id = content.parent_id
                self._index(child)
            self._unindex(content)
            content.status = "trashed"
            if purge:
                del self.content[content.id]
                for attachment_id in list(self._attachments.pop(content.id, {})):
                    del self.content[attachment_id]
            self._bump()

    def restrict_read(self, content: Content, *, users: tuple[User, ...] = (), groups: tuple[Group | str, ...] = ()) -> None:
        """Replace the read restrictions set on this content (empty tuples clear them)."""
        with self.lock:
            content.read_users = list(users)
            content.read_groups = [self.add_group(g) if isinstance(g, str) else g for g in groups]
            self._bump()

    def clear_restrictions(self, content: Content) -> None:
        self.restrict_read(content)

    # -- reads --------------------------------------------------------------------------------
    def get(self, content_id: str) -> Content | None:
        return self.content.get(content_id)

    def ids_in_space(self, space_key: str, type_: str) -> list[str]:
        return list(self._by_space_type.get((space_key, type_), {}))

    def child_ids(self, content: Content) -> list[str]:
        return list(self._children.get(content.id, {}))

    def attachment_ids(self, content: Content) -> list[str]:
        return list(self._attachments.get(content.id, {}))

    def ancestors(self, content: Content) -> list[Content]:
        """Root first, as Confluence lists them; an attachment's ancestors end with its container."""
        chain, parent_id = [], content.parent_id
        while parent_id is not None:
            parent = self.content[parent_id]
            chain.append(parent)
            parent_id = parent.parent_id
        return chain[::-1]

    def is_live(self, content: Content) -> bool:
        """Current, and for an attachment its container is current too."""
        if content.status != "current":
            return False
        return content.type != ATTACHMENT or self.content[content.parent_id].status == "current"

    def can_read_space(self, user: User, space: Space) -> bool:
        return user.sees_everything or any(
            p.key == "read" and p.target == "space" and self._holds(user, p.principal) for p in space.permissions
        )

    def can_read(self, user: User, content: Content) -> bool:
        """Space read permission, and every read restriction on the content and its ancestors admits the user."""
        if user.sees_everything:
            return True
        if not self.can_read_space(user, content.space):
            return False
        return all(self._admitted(user, c) for c in [*self.ancestors(content), content])

    @staticmethod
    def _admitted(user: User, content: Content) -> bool:
        if not content.read_users and not content.read_groups:
            return True
        return user in content.read_users or any(g.name in user.groups for g in content.read_groups)

    @staticmethod
    def _holds(user: User, principal: User | Group) -> bool:
        return principal is user or (isinstance(principal, Group) and principal.name in user.groups)
