"""The objects a fake tenant holds: directory entries, sites, drives, items, pages, and its clock.

Plain records; ``model.GraphTenant`` creates and changes them (under its lock) and stamps the
change numbers ``delta`` reads.
"""
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.fakes.graph.access import Permission, SiteGroup


class FakeClock:
    """The tenant's time: it starts at the real time and then only moves when a test says so.

    Starting at the real time keeps the fake's expiries in step with a client that computes
    "expires at" from its own clock; ``advance`` then makes tokens and links expire on the server
    side only, which is what a client must cope with (a 401 before its own deadline).
    """

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **delta) -> datetime:
        self._now += timedelta(seconds=seconds, **delta)
        return self._now


@dataclass
class User:
    id: str
    user_principal_name: str
    display_name: str
    mail: str


@dataclass
class Group:
    id: str
    display_name: str
    mail: str | None = None
    members: list[str] = field(default_factory=list)  # user ids


@dataclass
class Site:
    id: str  # "host,siteCollectionId,webId"
    hostname: str
    name: str
    display_name: str
    web_url: str
    created: datetime
    modified: datetime
    description: str = ""
    groups: dict[str, SiteGroup] = field(default_factory=dict)  # role ("owners"...) -> group


@dataclass
class Drive:
    id: str
    site_id: str
    name: str
    web_url: str
    root_id: str
    created: datetime
    modified: datetime


@dataclass
class Item:
    id: str
    drive_id: str
    name: str
    parent_id: str | None  # None for the drive root
    is_folder: bool
    unique_id: str  # SharePoint listItemUniqueId: the GUID inside eTag/cTag
    created: datetime
    modified: datetime
    created_by: str | None = None  # user id
    modified_by: str | None = None
    content: bytes = b""
    mime_type: str = "application/octet-stream"
    etag_version: int = 1
    ctag_version: int = 1
    deleted: bool = False
    inherits: bool = True  # False once inheritance is broken (or for the root)
    permissions: list[Permission] = field(default_factory=list)  # this item's own grants
    changed_seq: int = 0  # create, edit, rename, move, delete
    sharing_seq: int = 0  # a permission change made on this item itself
    inherited_sharing_seq: int = 0  # a permission change on an ancestor it inherits from


@dataclass
class SitePage:
    id: str
    site_id: str
    name: str  # "Home.aspx"
    title: str
    web_parts: list[str]  # innerHtml of each text web part, in order
    created: datetime
    modified: datetime
    created_by: str | None = None
    version: int = 1
    publishing_level: str = "published"
    description: str = ""
