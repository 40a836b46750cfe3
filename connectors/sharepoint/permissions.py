"""A driveItem's permissions (``GET /drives/{d}/items/{i}/permissions``) as kbsearch principals.

The endpoint lists the item's own and inherited grants (``inheritedFrom``), so one call gives the
whole access list. Each permission becomes principals in SharePoint's own terms, which the source's
identity mapping matches against the directory:

- a grant to a user (``grantedToV2.user`` / ``siteUser``): ``user:<userPrincipalName>`` by default
  (the claim in ``siteUser.loginName``, else looked up with ``/users/{id}``); ``user:<email>`` or
  ``user:<object id>`` when the source is configured so (``user_identity``). No UPN found: the
  object id, which maps to nobody unless the mapping keys users by it (fail closed);
- a grant to an Entra group (``grantedToV2.group``): ``group:<displayName>`` (default, matched with
  the directory's cn) or ``group:<object id>`` (``group_identity: id``);
- a grant to a SharePoint site group (``grantedToV2.siteGroup``, e.g. "HR Members"):
  ``group:<displayName>``. Graph v1.0 cannot list a site group's members, so it maps only to a
  directory group of the same name; otherwise it is unmapped and grants nobody;
- a sharing link for specific people (``link.scope = users``): each of ``grantedToIdentitiesV2``;
- a link for the organisation: ``public`` only when the source says such links mean the whole
  company (``organization_links_public``), else ``group:<organization_group>``, a group an admin
  maps (or not) to the directory's all-staff group;
- an anonymous link ("anyone with the link"): no principal, and reported (``anonymous_links``):
  indexing it as ``public`` would show it to everyone signed in, which is not what its owner chose;
- ``existingAccess`` links grant nothing new; grants whose only role is Limited Access (what
  SharePoint gives a parent folder so a shared child can be reached) grant nothing to read.

Anything unrecognised grants nothing: a document nobody is granted is visible to nobody.
"""
from collections.abc import Callable
from dataclasses import dataclass, field

LIMITED_ACCESS_ROLES = frozenset({"sp.limited access", "limited access", "limitedaccess"})
_CLAIM_PREFIXES = ("i:0#.f|membership|",)  # a user's claims login name: the UPN follows


@dataclass(frozen=True)
class IdentityPolicy:
    """How this source names people and groups, and what an organisation-wide link means."""

    user_identity: str = "upn"  # "upn" | "email" | "id"
    group_identity: str = "name"  # "name" | "id"
    organization_links_public: bool = False
    organization_group: str = "sharepoint-organization"


@dataclass
class ItemAccess:
    principals: set[str] = field(default_factory=set)
    # The anonymous links' permission ids, to report. Never their URLs: those open the file to anyone.
    anonymous_links: list[str] = field(default_factory=list)


def item_access(permissions: list[dict], *, policy: IdentityPolicy,
                upn_of: Callable[[str], str | None]) -> ItemAccess:
    """The principals ``permissions`` grant read access to, and the anonymous links among them."""
    access = ItemAccess()
    for permission in permissions:
        roles = {str(role).lower() for role in permission.get("roles") or []}
        if not roles or roles <= LIMITED_ACCESS_ROLES:
            continue
        link = permission.get("link")
        if isinstance(link, dict):
            _link_principals(permission, link, policy, upn_of, access)
            continue
        granted = permission.get("grantedToV2") or permission.get("grantedTo")
        if isinstance(granted, dict):
            access.principals.update(_identity_principals(granted, policy, upn_of))
        for identity in _identities(permission):
            access.principals.update(_identity_principals(identity, policy, upn_of))
    return access


def _link_principals(permission: dict, link: dict, policy: IdentityPolicy, upn_of, access: ItemAccess) -> None:
    scope = link.get("scope")
    if scope == "anonymous":
        access.anonymous_links.append(str(permission.get("id") or "?"))
    elif scope == "organization":
        access.principals.add("public" if policy.organization_links_public else f"group:{policy.organization_group}")
    elif scope == "users":
        for identity in _identities(permission):
            access.principals.update(_identity_principals(identity, policy, upn_of))
    # "existingAccess" and unknown scopes grant nothing more


def _identities(permission: dict) -> list[dict]:
    found = permission.get("grantedToIdentitiesV2") or permission.get("grantedToIdentities") or []
    return [identity for identity in found if isinstance(identity, dict)]


def _identity_principals(identity: dict, policy: IdentityPolicy, upn_of) -> set[str]:
    user, site_user = identity.get("user"), identity.get("siteUser")
    group, site_group = identity.get("group"), identity.get("siteGroup")
    if isinstance(user, dict) or (isinstance(site_user, dict) and _claim_upn(site_user)):
        name = _user_name(user if isinstance(user, dict) else {}, site_user if isinstance(site_user, dict) else {},
                          policy, upn_of)
        return {f"user:{name}"} if name else set()
    if isinstance(group, dict):
        name = group.get("id") if policy.group_identity == "id" else (group.get("displayName") or group.get("id"))
        return {f"group:{name.strip()}"} if isinstance(name, str) and name.strip() else set()
    if isinstance(site_group, dict):
        name = site_group.get("displayName") or site_group.get("loginName")
        return {f"group:{name.strip()}"} if isinstance(name, str) and name.strip() else set()
    return set()  # an application, a device, or something new: grants no person anything


def _claim_upn(site_user: dict) -> str | None:
    login = str(site_user.get("loginName") or "")
    for prefix in _CLAIM_PREFIXES:
        if login.lower().startswith(prefix) and "@" in login:
            return login[len(prefix):].strip()
    return None


def _user_name(user: dict, site_user: dict, policy: IdentityPolicy, upn_of) -> str | None:
    object_id = str(user.get("id") or "").strip() or None
    if policy.user_identity == "id":
        return object_id
    if policy.user_identity == "email":
        return str(user.get("email") or site_user.get("email") or "").strip() or object_id
    upn = _claim_upn(site_user) or str(user.get("userPrincipalName") or "").strip() or None
    if upn is None and object_id is not None:
        upn = upn_of(object_id)
    return upn or object_id
