"""Permissions as the fake tenant stores them: one grant or one sharing link each.

Kept apart from ``model.py`` so the shapes the server renders (``render.py``) and the tenant's
bookkeeping read one small definition.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fakes.graph.model import Group, User


@dataclass
class SiteGroup:
    """A SharePoint site group ("Contoso Members"); Graph shows it as ``grantedToV2.siteGroup``.

    Graph v1.0 has no way to list a site group's members; the fake keeps them for tests only.
    """

    id: str
    display_name: str
    members: list[str] = field(default_factory=list)  # user or group ids

    @property
    def login_name(self) -> str:
        return self.display_name


@dataclass
class Permission:
    id: str
    roles: list[str]
    user: User | None = None
    group: Group | None = None
    site_group: SiteGroup | None = None
    link_scope: str | None = None  # "anonymous" | "organization" | "users" | "existingAccess"
    link_type: str | None = None  # "view" | "edit"
    recipients: list[User] = field(default_factory=list)  # people a "users" link was given to
    expires: datetime | None = None
    share_id: str | None = None
    web_url: str = ""

    @property
    def is_link(self) -> bool:
        return self.link_scope is not None

    def copy(self, *, new_id: str) -> Permission:
        return dataclasses.replace(self, id=new_id, recipients=list(self.recipients), roles=list(self.roles))
