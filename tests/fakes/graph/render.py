"""The JSON the fake answers with: Graph v1.0 shapes and property names for the tenant's objects.

Property names follow ``/work/shared/apis/msgraph_v1_files_sites_types.json`` (checked by the
tests with schemas built from it). Where the real service leaves things out, so does the fake:
delta items have no ``cTag`` and no ``parentReference.path`` (OneDrive for Business), deleted items
carry only their id, parent and facets. Permissions show both ``grantedToV2`` and the deprecated
``grantedTo``/``grantedToIdentities``, as SharePoint still sends both.
"""
from datetime import datetime
from urllib.parse import quote

from tests.fakes.graph.access import Permission
from tests.fakes.graph.model import Drive, GraphTenant, Item, Site, SitePage, User


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def identity_set(tenant: GraphTenant, user_id: str | None) -> dict | None:
    user = tenant.users.get(user_id) if user_id else None
    if user is None:
        return {"user": {"displayName": "System Account"}}
    return {"user": {"email": user.mail, "id": user.id, "displayName": user.display_name}}


def site(tenant: GraphTenant, s: Site) -> dict:
    return {"id": s.id, "name": s.name, "displayName": s.display_name, "webUrl": s.web_url,
            "description": s.description, "createdDateTime": when(s.created),
            "lastModifiedDateTime": when(s.modified), "root": {}, "siteCollection": {"hostname": s.hostname},
            "sharepointIds": {"siteId": s.id.split(",")[1], "webId": s.id.split(",")[2], "siteUrl": s.web_url,
                              "tenantId": tenant.tenant_id}}


def drive(tenant: GraphTenant, d: Drive) -> dict:
    return {"id": d.id, "name": d.name, "description": "", "driveType": "documentLibrary", "webUrl": d.web_url,
            "createdDateTime": when(d.created), "lastModifiedDateTime": when(d.modified),
            "createdBy": {"user": {"displayName": "System Account"}},
            "owner": {"group": {"displayName": tenant.sites[d.site_id].groups["owners"].display_name}},
            "quota": {"deleted": 0, "remaining": 27487790694400, "state": "normal", "total": 27487790694400,
                      "used": sum(len(i.content) for i in tenant.drive_items(d) if not i.deleted)}}


def drive_item(tenant: GraphTenant, item: Item, *, in_delta: bool = False, download_url: str | None = None,
               hierarchical_sharing: bool = False) -> dict:
    drive_ = tenant.drives[item.drive_id]
    site_ = tenant.sites[drive_.site_id]
    kind = {"folder": {}} if item.is_folder else {"file": {}}
    parent_ref = {"driveType": "documentLibrary", "driveId": item.drive_id, "siteId": site_.id}
    if item.parent_id is not None:
        parent_ref["id"] = item.parent_id
    if item.deleted:
        return {"id": item.id, "parentReference": parent_ref, "deleted": {"state": "deleted"}, **kind}
    body = {"id": item.id, "name": item.name, "eTag": f'"{{{item.unique_id.upper()}}},{item.etag_version}"',
            "createdDateTime": when(item.created), "lastModifiedDateTime": when(item.modified),
            "webUrl": drive_.web_url + quote(tenant.path_of(item).split("root:", 1)[1]),
            "createdBy": identity_set(tenant, item.created_by),
            "lastModifiedBy": identity_set(tenant, item.modified_by),
            "parentReference": parent_ref, "fileSystemInfo": {"createdDateTime": when(item.created),
                                                              "lastModifiedDateTime": when(item.modified)},
            "sharepointIds": {"listItemUniqueId": item.unique_id, "siteId": site_.id.split(",")[1],
                              "siteUrl": site_.web_url, "tenantId": tenant.tenant_id}}
    if not in_delta:
        body["cTag"] = f'"c:{{{item.unique_id.upper()}}},{item.ctag_version}"'
        if item.parent_id is not None:
            parent = tenant.items[item.parent_id]
            parent_ref["path"] = tenant.path_of(parent)
            if parent.parent_id is not None:
                parent_ref["name"] = parent.name
    if item.parent_id is None:
        body["root"] = {}
        body["webUrl"] = drive_.web_url
    if item.is_folder:
        body["folder"] = {"childCount": len(tenant.children(item))}
        body["size"] = sum(len(d.content) for d in tenant.descendants(item))
    else:
        body["file"] = {"mimeType": item.mime_type}
        body["size"] = len(item.content)
        if download_url:
            body["@microsoft.graph.downloadUrl"] = download_url
    shared = shared_facet(tenant, item, hierarchical=hierarchical_sharing)
    if shared is not None:
        body["shared"] = shared
    return body


def shared_facet(tenant: GraphTenant, item: Item, *, hierarchical: bool) -> dict | None:
    """``shared``: present when an item is shared beyond the site's groups (links or direct
    grants). With ``Prefer: hierarchicalsharing`` only items at the top of a permission hierarchy
    or with grants of their own carry it, as ``{}`` when they are not shared, so a client can tell
    them from inheritors."""
    if hierarchical and item.inherits and not item.permissions and item.parent_id is not None:
        return None
    permissions = [p for p, _ in tenant.effective_permissions(item) if p.site_group is None]
    if not permissions:
        return {} if hierarchical else None
    scopes = {p.link_scope for p in permissions if p.is_link}
    scope = next((s for s in ("anonymous", "organization") if s in scopes), "users")
    return {"scope": scope}


def _principal(tenant: GraphTenant, user: User) -> dict:
    return {"user": {"email": user.mail, "id": user.id, "displayName": user.display_name},
            "siteUser": {"email": user.mail, "id": tenant.site_user_id(user.id), "displayName": user.display_name,
                         "loginName": f"i:0#.f|membership|{user.user_principal_name}"}}


def permission(tenant: GraphTenant, p: Permission, holder: Item, item: Item) -> dict:
    body: dict = {"id": p.id, "roles": list(p.roles), "shareId": p.share_id}
    if p.share_id is None:
        del body["shareId"]
    if p.is_link:
        body["hasPassword"] = False
        body["link"] = {"scope": p.link_scope, "type": p.link_type, "webUrl": p.web_url, "preventsDownload": False}
        if p.recipients:
            body["grantedToIdentitiesV2"] = [_principal(tenant, u) for u in p.recipients]
            body["grantedToIdentities"] = [{"user": _principal(tenant, u)["user"]} for u in p.recipients]
        if p.expires is not None:
            body["expirationDateTime"] = when(p.expires)
    elif p.user is not None:
        body["grantedToV2"] = _principal(tenant, p.user)
        body["grantedTo"] = {"user": _principal(tenant, p.user)["user"]}
    elif p.group is not None:
        group_identity = {"id": p.group.id, "displayName": p.group.display_name}
        if p.group.mail:
            group_identity["email"] = p.group.mail
        body["grantedToV2"] = {"group": group_identity, "siteUser": {
            "id": tenant.site_user_id(p.group.id), "displayName": p.group.display_name,
            "loginName": f"c:0t.c|tenant|{p.group.id}"}}
    else:
        body["grantedToV2"] = {"siteGroup": {"id": p.site_group.id, "displayName": p.site_group.display_name,
                                             "loginName": p.site_group.login_name}}
    if holder is not item:
        body["inheritedFrom"] = {"driveId": holder.drive_id, "id": holder.id, "path": tenant.path_of(holder)}
    return body


def permissions(tenant: GraphTenant, item: Item) -> list[dict]:
    return [permission(tenant, p, holder, item) for p, holder in tenant.effective_permissions(item)]


def site_page(tenant: GraphTenant, page: SitePage, *, with_canvas: bool = False) -> dict:
    s = tenant.sites[page.site_id]
    body = {"@odata.type": "#microsoft.graph.sitePage", "id": page.id, "name": page.name, "title": page.title,
            "description": page.description, "webUrl": f"{s.web_url}/SitePages/{page.name}",
            "eTag": f'"{{{page.id.upper()}}},{page.version}"', "pageLayout": "article",
            "createdDateTime": when(page.created), "lastModifiedDateTime": when(page.modified),
            "createdBy": identity_set(tenant, page.created_by), "lastModifiedBy": identity_set(tenant, page.created_by),
            "parentReference": {"siteId": s.id.split(",")[1]},
            "contentType": {"id": "0x0101009D1CB255DA76424F860D91F20E6C4118", "name": "Site Page"},
            "publishingState": {"level": page.publishing_level, "versionId": f"{page.version}.0"}}
    if with_canvas:
        body["canvasLayout"] = {"horizontalSections": [{
            "layout": "oneColumn", "id": "1", "emphasis": "none",
            "columns": [{"id": "1", "width": 12, "webparts": [
                {"@odata.type": "#microsoft.graph.textWebPart", "id": f"{page.id[:-4]}{n:04d}", "innerHtml": html}
                for n, html in enumerate(page.web_parts)]}]}]}
    return body


def error(code: str, message: str, request_id: str, date: datetime) -> dict:
    return {"error": {"code": code, "message": message,
                      "innerError": {"date": when(date), "request-id": request_id, "client-request-id": request_id}}}
