"""The in-memory tenant behind the fake Graph server: directory, sites, drives, items, pages, ACLs.

Tests drive it from Python (``tenant.file_add(...)``, ``tenant.permission_remove(...)``,
``tenant.clock.advance(...)``) and read it back over HTTP. Every mutation stamps the items it
touches with a sequence number from one counter; ``delta`` compares those numbers with the number
its token was issued at. Content/metadata changes and sharing changes are stamped separately
because the real service reports them differently (see ``delta.py``).

Ids look like SharePoint's (``01…`` item ids, ``b!…`` drive ids, ``host,guid,guid`` site ids)
but are derived from counters, so a test run is deterministic.
"""
import base64
import hashlib
import threading
import uuid
from datetime import datetime
from urllib.parse import quote

from tests.fakes.graph.access import Permission, SiteGroup
from tests.fakes.graph.entities import Drive, FakeClock, Group, Item, Site, SitePage, User

__all__ = ["Drive", "FakeClock", "GraphTenant", "Group", "Item", "Site", "SitePage", "User"]


def _guid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(str(p) for p in parts)))


class UnknownObject(LookupError):
    """A test named a site, drive, item or principal the tenant does not hold."""


class GraphTenant:
    """One Microsoft 365 tenant: the directory and the SharePoint content the fake serves.

    All reads and writes go through ``self.lock`` because the server answers on other threads.
    """

    def __init__(self, tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47", domain: str = "contoso",
                 clock: FakeClock | None = None):
        self.tenant_id = tenant_id
        self.domain = domain
        self.hostname = f"{domain}.sharepoint.com"
        self.clock = clock or FakeClock()
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.sites: dict[str, Site] = {}
        self.drives: dict[str, Drive] = {}
        self.items: dict[str, Item] = {}
        self.pages: dict[str, SitePage] = {}
        self.seq = 0
        self.seq_times: list[tuple[int, datetime]] = [(0, self.clock.now())]
        self._counter = 0
        self._site_user_ids: dict[str, int] = {}
        self.delta_page_size = 200
        # Imported here: delta and auth read the tenant, the tenant owns one of each.
        from tests.fakes.graph.auth import AppRegistry
        from tests.fakes.graph.delta import DeltaTokens

        self.apps = AppRegistry(self)
        self.delta_tokens = DeltaTokens(self)

    # -- ids and change stamps -------------------------------------------------------------------

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _item_id(self) -> str:
        digest = base64.b32encode(hashlib.sha1(f"item-{self._next()}".encode()).digest()).decode()
        return "01" + digest[:32]

    def _stamp(self) -> int:
        self.seq += 1
        self.seq_times.append((self.seq, self.clock.now()))
        return self.seq

    def site_user_id(self, principal_key: str) -> str:
        """The small integer SharePoint gives a principal in a site's User Information List."""
        if principal_key not in self._site_user_ids:
            self._site_user_ids[principal_key] = len(self._site_user_ids) + 7
        return str(self._site_user_ids[principal_key])

    # -- directory -------------------------------------------------------------------------------

    def user_add(self, *, name: str, display_name: str | None = None, id: str | None = None,
                 upn: str | None = None) -> User:
        """A user ``name@<domain>.onmicrosoft.com`` (or ``upn``, as a hybrid tenant synced from AD
        has: ``jsmith@corp.example.com``); ``name`` is also the mail's local part."""
        with self.lock:
            upn = upn or f"{name}@{self.domain}.onmicrosoft.com"
            user = User(id=id or _guid("user", upn), user_principal_name=upn,
                        display_name=display_name or name.title(), mail=f"{name}@{self.domain}.com")
            self.users[user.id] = user
            return user

    def group_add(self, *, display_name: str, members: list[User] = (), mail: str | None = None,
                  id: str | None = None) -> Group:
        with self.lock:
            group = Group(id=id or _guid("group", display_name), display_name=display_name, mail=mail,
                          members=[u.id for u in members])
            self.groups[group.id] = group
            return group

    # -- sites, drives, pages --------------------------------------------------------------------

    def site_add(self, *, name: str, display_name: str | None = None, description: str = "") -> Site:
        """A team site at /sites/<name> with its three default groups and a "Documents" library."""
        with self.lock:
            collection_id, web_id = _guid("site", name), _guid("web", name)
            now = self.clock.now()
            display = display_name or name
            site = Site(id=f"{self.hostname},{collection_id},{web_id}", hostname=self.hostname, name=name,
                        display_name=display, web_url=f"https://{self.hostname}/sites/{name}",
                        created=now, modified=now, description=description)
            for number, (role, suffix) in enumerate((("owners", "Owners"), ("members", "Members"),
                                                     ("visitors", "Visitors")), start=3):
                site.groups[role] = SiteGroup(id=str(number), display_name=f"{display} {suffix}")
            self.sites[site.id] = site
            self.drive_add(site=site, name="Documents", url_name="Shared Documents")
            return site

    def site_group(self, site: Site, role: str) -> SiteGroup:
        """One of the site's default groups: "owners", "members" or "visitors"."""
        return site.groups[role]

    def drive_add(self, *, site: Site, name: str, url_name: str | None = None) -> Drive:
        """A document library whose root grants the site's owners, members and visitors."""
        with self.lock:
            now = self.clock.now()
            drive_id = "b!" + base64.urlsafe_b64encode(hashlib.sha256(f"{site.id}/{name}".encode()).digest()
                                                       * 2).decode().rstrip("=")[:64]
            root = Item(id=self._item_id(), drive_id=drive_id, name="root", parent_id=None, is_folder=True,
                        unique_id=_guid("root", drive_id), created=now, modified=now, inherits=False)
            roles = {"owners": "owner", "members": "write", "visitors": "read"}
            root.permissions = [Permission(id=self._permission_id(), roles=[roles[r]], site_group=g)
                                for r, g in site.groups.items()]
            root.changed_seq = self._stamp()
            drive = Drive(id=drive_id, site_id=site.id, name=name, root_id=root.id, created=now, modified=now,
                          web_url=f"{site.web_url}/{quote(url_name or name)}")
            self.drives[drive.id] = drive
            self.items[root.id] = root
            return drive

    def page_add(self, *, site: Site, name: str, title: str, web_parts: list[str],
                 author: User | None = None) -> SitePage:
        """A modern site page; each string in ``web_parts`` is one text web part's innerHtml."""
        with self.lock:
            now = self.clock.now()
            page = SitePage(id=_guid("page", site.id, name), site_id=site.id, name=name, title=title,
                            web_parts=list(web_parts), created=now, modified=now,
                            created_by=author.id if author else None)
            self.pages[page.id] = page
            return page

    def page_edit(self, page: SitePage, *, title: str | None = None, web_parts: list[str] | None = None) -> None:
        with self.lock:
            if title is not None:
                page.title = title
            if web_parts is not None:
                page.web_parts = list(web_parts)
            page.version += 1
            page.modified = self.clock.now()

    def page_delete(self, page: SitePage) -> None:
        with self.lock:
            self.pages.pop(page.id, None)

    # -- items -----------------------------------------------------------------------------------

    def root(self, drive: Drive) -> Item:
        return self.items[drive.root_id]

    def folder_add(self, *, parent: Item, name: str, author: User | None = None) -> Item:
        return self._item_add(parent=parent, name=name, is_folder=True, author=author)

    def file_add(self, *, parent: Item, name: str, content: bytes | str = b"", author: User | None = None,
                 mime_type: str | None = None) -> Item:
        data = content.encode() if isinstance(content, str) else content
        return self._item_add(parent=parent, name=name, is_folder=False, author=author, content=data,
                              mime_type=mime_type or _mime_type(name))

    def _item_add(self, *, parent: Item, name: str, is_folder: bool, author: User | None,
                  content: bytes = b"", mime_type: str = "application/octet-stream") -> Item:
        with self.lock:
            if not parent.is_folder or parent.deleted:
                raise UnknownObject(f"{parent.name} is not a live folder")
            now = self.clock.now()
            item = Item(id=self._item_id(), drive_id=parent.drive_id, name=name, parent_id=parent.id,
                        is_folder=is_folder, unique_id=_guid("item", self._counter), created=now, modified=now,
                        created_by=author.id if author else None, modified_by=author.id if author else None,
                        content=content, mime_type=mime_type)
            item.changed_seq = self._stamp()
            self.items[item.id] = item
            return item

    def file_edit(self, item: Item, *, content: bytes | str, author: User | None = None) -> None:
        """New content: new cTag and eTag, new timestamp."""
        with self.lock:
            item.content = content.encode() if isinstance(content, str) else content
            item.ctag_version += 1
            self._touch(item, author)

    def item_rename(self, item: Item, *, name: str) -> None:
        """Metadata only: the eTag changes, the cTag (content) does not."""
        with self.lock:
            item.name = name
            self._touch(item, None)

    def item_move(self, item: Item, *, parent: Item, name: str | None = None) -> None:
        """Descendants do not show up in delta (their ids do not change); their inherited ACL does."""
        with self.lock:
            if parent.drive_id != item.drive_id:
                raise UnknownObject("moves between drives are not modelled")
            item.parent_id = parent.id
            if name is not None:
                item.name = name
            self._touch(item, None)
            if item.inherits:
                self._sharing_changed(item, direct=False)

    def item_delete(self, item: Item) -> None:
        """To the recycle bin: the item and everything under it show in delta with ``deleted``."""
        with self.lock:
            for each in [item, *self.descendants(item)]:
                each.deleted = True
                each.changed_seq = self._stamp()

    def _touch(self, item: Item, author: User | None) -> None:
        item.etag_version += 1
        item.modified = self.clock.now()
        if author:
            item.modified_by = author.id
        item.changed_seq = self._stamp()

    def item(self, item_id: str) -> Item:
        try:
            return self.items[item_id]
        except KeyError:
            raise UnknownObject(item_id) from None

    def children(self, item: Item) -> list[Item]:
        return [i for i in self.items.values() if i.parent_id == item.id and not i.deleted]

    def descendants(self, item: Item) -> list[Item]:
        found, stack = [], [item]
        while stack:
            for child in self.children(stack.pop()):
                found.append(child)
                stack.append(child)
        return found

    def path_of(self, item: Item) -> str:
        """Graph's parentReference.path style: ``/drives/{id}/root:/A/B`` for the item itself."""
        names = []
        current = item
        while current.parent_id is not None:
            names.append(current.name)
            current = self.items[current.parent_id]
        return f"/drives/{item.drive_id}/root:" + "".join("/" + n for n in reversed(names))

    # -- permissions -----------------------------------------------------------------------------

    def _permission_id(self) -> str:
        return base64.urlsafe_b64encode(f"perm|{self._next()}".encode()).decode().rstrip("=")

    def permission_grant(self, item: Item, *, roles: list[str], user: User | None = None,
                         group: Group | None = None, site_group: SiteGroup | None = None) -> Permission:
        """A direct grant (``grantedToV2``) to exactly one principal; roles e.g. ["read"],
        ["write"], ["owner"] or SharePoint levels such as ["sp.limited access"]."""
        if sum(p is not None for p in (user, group, site_group)) != 1:
            raise ValueError("grant to exactly one of user, group, site_group")
        return self._permission_add(item, Permission(id=self._permission_id(), roles=list(roles), user=user,
                                                     group=group, site_group=site_group))

    def link_share(self, item: Item, *, scope: str, type: str = "view", recipients: list[User] = (),
                   expires: datetime | None = None) -> Permission:
        """A sharing link: scope "anonymous", "organization" or "users" (specific people, who are
        listed in ``grantedToIdentitiesV2``)."""
        if scope not in {"anonymous", "organization", "users", "existingAccess"}:
            raise ValueError(f"unknown link scope {scope!r}")
        roles = ["write"] if type == "edit" else ["read"]
        permission = Permission(id=self._permission_id(), roles=roles, link_scope=scope, link_type=type,
                                recipients=list(recipients), expires=expires,
                                share_id="u!" + base64.urlsafe_b64encode(item.id.encode()).decode().rstrip("="))
        return self._permission_add(item, permission)

    def _permission_add(self, item: Item, permission: Permission) -> Permission:
        with self.lock:
            permission.web_url = f"https://{self.hostname}/:f:/s/x/{permission.id}"
            item.permissions.append(permission)
            self._sharing_changed(item, direct=True)
            return permission

    def permission_remove(self, item: Item, permission: Permission) -> None:
        """Unshare: the grant or link goes away from this item (and from what inherits it)."""
        with self.lock:
            item.permissions = [p for p in item.permissions if p.id != permission.id]
            self._sharing_changed(item, direct=True)

    def inheritance_break(self, item: Item, *, copy: bool = True) -> None:
        """Unique permissions from now on; like SharePoint, start from a copy of the inherited ones."""
        with self.lock:
            if not item.inherits:
                return
            inherited = [p for p, _source in self.effective_permissions(item) if _source is not item]
            item.inherits = False
            if copy:
                item.permissions = [p.copy(new_id=self._permission_id()) for p in inherited] + item.permissions
            self._sharing_changed(item, direct=True)

    def inheritance_restore(self, item: Item) -> None:
        """Back to the parent's permissions; the item's own grants are dropped, as SharePoint does."""
        with self.lock:
            if item.parent_id is None:
                raise ValueError("the root has nothing to inherit from")
            item.inherits = True
            item.permissions = []
            self._sharing_changed(item, direct=True)

    def _sharing_changed(self, item: Item, *, direct: bool) -> None:
        seq = self._stamp()
        if direct:
            item.sharing_seq = seq
        else:
            item.inherited_sharing_seq = seq
        # Whatever inherits through this item now has different effective permissions.
        stack = [c for c in self.children(item) if c.inherits]
        while stack:
            child = stack.pop()
            child.inherited_sharing_seq = seq
            stack.extend(c for c in self.children(child) if c.inherits)

    def effective_permissions(self, item: Item) -> list[tuple[Permission, Item]]:
        """(permission, the item that holds it): own first, then inherited up the chain."""
        found: list[tuple[Permission, Item]] = []
        current: Item | None = item
        while current is not None:
            found.extend((p, current) for p in current.permissions)
            if not current.inherits or current.parent_id is None:
                break
            current = self.items[current.parent_id]
        return found

    # -- lookups used by the server --------------------------------------------------------------

    def drive_items(self, drive: Drive) -> list[Item]:
        return [i for i in self.items.values() if i.drive_id == drive.id]

    def tree_order(self, drive: Drive) -> list[Item]:
        """Live items, parents before children (the order of a first delta enumeration)."""
        ordered, stack = [], [self.root(drive)]
        while stack:
            item = stack.pop(0)
            ordered.append(item)
            stack[0:0] = sorted(self.children(item), key=lambda i: i.changed_seq)
        return ordered

    def seq_at(self, moment: datetime) -> int:
        """The last change number at or before ``moment`` (for timestamp delta tokens)."""
        return max((s for s, t in self.seq_times if t <= moment), default=0)


_MIME_TYPES = {"txt": "text/plain", "md": "text/markdown", "html": "text/html", "pdf": "application/pdf",
               "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
               "json": "application/json", "csv": "text/csv"}


def _mime_type(name: str) -> str:
    return _MIME_TYPES.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")
