"""JSON shapes of the fake Confluence, with the field names of the official OpenAPI descriptions.

v1 objects (Content, Space, User, Group, ContentRestriction, Version, ContentHistory) follow
``../shared/apis/confluence_v1_subset.openapi.json``; what is not expanded is listed under
``_expandable`` as Confluence does, and links under ``_links`` are relative to ``_links.base`` (the
site URL: ``http://host:port/wiki`` on Cloud, ``http://host:port`` on Data Center). v2 objects
(Space, SpacePermission, PageBulk) follow ``confluence_v2_subset.openapi.json``.

Cloud users carry ``accountId``; Data Center users carry ``username`` and ``userKey``, and Data Center
groups have no ``id`` (the Cloud schema requires one; the real Data Center sends none).
"""
from datetime import UTC, datetime
from urllib.parse import quote

from tests.fakes.confluence_model import ATTACHMENT, PAGE, Content, Group, Site, Space, User

CONTENT_EXPANDABLE = ("childTypes", "container", "metadata", "operations", "children", "restrictions",
                      "history", "ancestors", "body", "version", "descendants", "space")


def expand_tree(expand: str | None) -> dict:
    """``"body.storage,ancestors.space"`` -> ``{"body": {"storage": {}}, "ancestors": {"space": {}}}``."""
    tree: dict = {}
    for path in filter(None, (expand or "").split(",")):
        node = tree
        for part in path.strip().split("."):
            node = node.setdefault(part, {})
    return tree


class Renderer:
    def __init__(self, site: Site, *, cloud: bool, base: str, viewer: User):
        self.site, self.cloud, self.base, self.viewer = site, cloud, base, viewer

    def when(self, moment: datetime) -> str:
        if self.cloud:
            return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        local = moment.astimezone(self.site.timezone)
        return local.isoformat(timespec="milliseconds")

    # -- identities ---------------------------------------------------------------------------
    def user(self, user: User) -> dict:
        if self.cloud:
            return {"type": "known", "accountId": user.account_id, "accountType": "atlassian", "email": user.email,
                    "publicName": user.display_name, "displayName": user.display_name,
                    "isExternalCollaborator": False, "_expandable": {"operations": "", "personalSpace": ""},
                    "_links": {"self": f"{self.base}/rest/api/user?accountId={user.account_id}"}}
        return {"type": "known", "username": user.username, "userKey": user.user_key,
                "displayName": user.display_name,
                "_links": {"self": f"{self.base}/rest/api/user?key={user.user_key}"}}

    def group(self, group: Group) -> dict:
        out = {"type": "group", "name": group.name,
               "_links": {"self": f"{self.base}/rest/api/group/{quote(group.name)}"}}
        if self.cloud:
            out["id"] = group.id
        return out

    # -- spaces -------------------------------------------------------------------------------
    def space(self, space: Space, expand: dict) -> dict:
        out = {"id": space.id, "key": space.key, "name": space.name, "type": space.type, "status": space.status}
        expandable = {k: "" for k in ("settings", "metadata", "operations", "lookAndFeel", "identifiers",
                                      "icon", "description", "theme", "history")}
        expandable["permissions"] = ""
        expandable["homepage"] = f"/rest/api/content/{space.homepage_id}" if space.homepage_id else ""
        if "permissions" in expand:
            expandable.pop("permissions")
            out["permissions"] = [self.space_permission(p) for p in space.permissions]
        if "homepage" in expand and space.homepage_id and space.homepage_id in self.site.content:
            expandable.pop("homepage")
            out["homepage"] = self.content(self.site.content[space.homepage_id], expand["homepage"])
        if "history" in expand:
            expandable.pop("history")
            out["history"] = {"createdDate": self.when(space.created), "createdBy": self.user(space.author)}
        out["_expandable"] = expandable
        out["_links"] = {"webui": f"/spaces/{space.key}", "self": f"{self.base}/rest/api/space/{space.key}"}
        return out

    def space_permission(self, permission) -> dict:
        principal = permission.principal
        users = [self.user(principal)] if isinstance(principal, User) else []
        groups = [self.group(principal)] if isinstance(principal, Group) else []
        return {"id": permission.id,
                "subjects": {"user": {"results": users, "size": len(users)},
                             "group": {"results": groups, "size": len(groups)}},
                "operation": {"operation": permission.key, "targetType": permission.target},
                "anonymousAccess": False, "unlicensedAccess": False}

    # -- content ------------------------------------------------------------------------------
    def content_links(self, content: Content) -> dict:
        links = {"self": f"{self.base}/rest/api/content/{content.id}", "tinyui": f"/x/{content.seq:x}"}
        if content.type == ATTACHMENT:
            container = self.site.content[content.parent_id]
            links["webui"] = f"/pages/viewpageattachments.action?pageId={container.id}&preview={quote(content.title)}"
            links["download"] = (f"/download/attachments/{container.id}/{quote(content.title)}"
                                 f"?version={content.version}&modificationDate={int(content.when.timestamp() * 1000)}&api=v2")
        else:
            kind = "pages" if content.type == PAGE else "blog"
            links["webui"] = f"/spaces/{content.space.key}/{kind}/{content.id}/{quote(content.title.replace(' ', '+'))}"
            links["edit"] = f"/pages/resumedraft.action?draftId={content.id}"
        return links

    def content(self, content: Content, expand: dict) -> dict:
        out = {"id": content.id, "type": content.type, "status": content.status, "title": content.title}
        expandable = {key: "" for key in CONTENT_EXPANDABLE}
        api = f"/rest/api/content/{content.id}"
        expandable.update(space=f"/rest/api/space/{content.space.key}", history=f"{api}/history",
                          children=f"{api}/child", restrictions=f"{api}/restriction/byOperation",
                          ancestors="", descendants=f"{api}/descendant")
        if content.type == ATTACHMENT:
            # Attachments always carry their media type and size, as the real listing does.
            out["metadata"] = {"mediaType": content.media_type}
            out["extensions"] = {"mediaType": content.media_type, "fileSize": len(content.data), "comment": ""}
            expandable.pop("metadata")
        if "space" in expand:
            out["space"] = self.space(content.space, expand["space"])
        if "history" in expand:
            out["history"] = self.history(content, expand["history"])
        if "version" in expand:
            out["version"] = self.version(content)
        if "ancestors" in expand:
            out["ancestors"] = [self.content(a, expand["ancestors"]) for a in self.site.ancestors(content)]
        if "body" in expand:
            out["body"] = self.body(content, expand["body"])
        if "restrictions" in expand:
            out["restrictions"] = self.restrictions(content, expand["restrictions"])
        if "children" in expand:
            out["children"] = self.children(content, expand["children"])
        if "container" in expand:
            container = (self.site.content[content.parent_id] if content.type == ATTACHMENT else None)
            out["container"] = (self.content(container, expand["container"]) if container
                                else self.space(content.space, expand["container"]))
        for key in out:
            expandable.pop(key, None)
        out["_expandable"] = expandable
        out["_links"] = self.content_links(content)
        return out

    def version(self, content: Content) -> dict:
        return {"by": self.user(content.editor or content.author), "when": self.when(content.when),
                "friendlyWhen": self.when(content.when), "message": content.message, "number": content.version,
                "minorEdit": content.minor_edit, "contentTypeModified": False,
                "_expandable": {"content": f"/rest/api/content/{content.id}", "collaborators": ""},
                "_links": {"self": f"{self.base}/rest/api/content/{content.id}/version/{content.version}"}}

    def history(self, content: Content, expand: dict) -> dict:
        out = {"latest": True, "createdBy": self.user(content.author), "createdDate": self.when(content.created),
               "_expandable": {"lastUpdated": "", "previousVersion": "", "contributors": "", "nextVersion": ""},
               "_links": {"self": f"{self.base}/rest/api/content/{content.id}/history"}}
        if "lastUpdated" in expand:
            out["lastUpdated"] = self.version(content)
            out["_expandable"].pop("lastUpdated")
        return out

    def body(self, content: Content, expand: dict) -> dict:
        out = {"_expandable": {r: f"/rest/api/content/{content.id}" for r in
                               ("editor", "view", "export_view", "styled_view", "storage", "editor2",
                                "anonymous_export_view", "atlas_doc_format", "wiki", "dynamic", "raw")}}
        if "storage" in expand:
            out["storage"] = {"value": content.body, "representation": "storage",
                              "embeddedContent": [], "_expandable": {"content": f"/rest/api/content/{content.id}"}}
            out["_expandable"].pop("storage")
        return out

    def restrictions(self, content: Content, expand: dict) -> dict:
        api = f"/rest/api/content/{content.id}/restriction/byOperation"
        out = {"_expandable": {"read": f"{api}/read", "update": f"{api}/update"},
               "_links": {"self": f"{self.base}{api}"}}
        for operation in ("read", "update"):
            if operation in expand:
                out[operation] = self.restriction(content, operation, expand[operation])
                out["_expandable"].pop(operation)
        return out

    def restriction(self, content: Content, operation: str, expand: dict, start: int = 0, limit: int = 100) -> dict:
        """One ContentRestriction; ``expand`` as in ``restrictions.user`` / ``restrictions.group``."""
        users, groups = (content.read_users, content.read_groups) if operation == "read" else ([], [])
        api = f"/rest/api/content/{content.id}/restriction/byOperation/{operation}"
        out = {"operation": operation, "_expandable": {"content": f"/rest/api/content/{content.id}"},
               "_links": {"self": f"{self.base}{api}"}}
        wanted = expand.get("restrictions", {})
        restrictions = {"_expandable": {}}
        for kind, items, render in (("user", users, self.user), ("group", groups, self.group)):
            if kind in wanted:
                window = items[start:start + limit]
                restrictions[kind] = {"results": [render(i) for i in window], "start": start, "limit": limit,
                                      "size": len(window), "totalSize": len(items)}
                if kind == "group":
                    restrictions[kind].pop("totalSize")
            else:
                restrictions["_expandable"][kind] = f"{api}/{kind}"
        out["restrictions"] = restrictions
        if "content" in expand:
            out["content"] = self.content(content, expand["content"])
            out["_expandable"].pop("content")
        return out

    def children(self, content: Content, expand: dict) -> dict:
        api = f"/rest/api/content/{content.id}/child"
        out = {"_expandable": {"attachment": f"{api}/attachment", "comment": f"{api}/comment", "page": f"{api}/page"},
               "_links": {"self": f"{self.base}{api}"}}
        for kind, ids in (("attachment", self.site.attachment_ids(content)), ("page", self.site.child_ids(content))):
            if kind in expand:
                items = [self.site.content[i] for i in ids]
                items = [i for i in items if i.status == "current" and self.site.can_read(self.viewer, i)]
                window = items[:25]
                array = {"results": [self.content(i, expand[kind]) for i in window], "start": 0, "limit": 25,
                         "size": len(window), "_links": {"self": f"{self.base}{api}/{kind}"}}
                if len(items) > 25:
                    array["_links"]["next"] = f"{api}/{kind}?start=25&limit=25"
                out[kind] = array
                out["_expandable"].pop(kind)
        if "comment" in expand:
            out["comment"] = {"results": [], "start": 0, "limit": 25, "size": 0, "_links": {}}
            out["_expandable"].pop("comment")
        return out

    # -- v2 -----------------------------------------------------------------------------------
    def v2_space(self, space: Space) -> dict:
        out = {"id": str(space.id), "key": space.key, "name": space.name, "type": space.type,
               "status": space.status, "authorId": space.author.account_id, "createdAt": self.when(space.created),
               "_links": {"webui": f"/spaces/{space.key}"}}
        if space.homepage_id:
            out["homepageId"] = space.homepage_id
        return out

    def v2_permission(self, permission) -> dict:
        principal = permission.principal
        kind, ident = ("user", principal.account_id) if isinstance(principal, User) else ("group", principal.id)
        return {"id": str(permission.id), "principal": {"type": kind, "id": ident},
                "operation": {"key": permission.key, "targetType": permission.target}}

    def v2_page(self, page: Content, body_format: str | None) -> dict:
        out = {"id": page.id, "status": page.status, "title": page.title, "spaceId": str(page.space.id),
               "authorId": page.author.account_id, "createdAt": self.when(page.created),
               "version": {"createdAt": self.when(page.when), "message": page.message, "number": page.version,
                           "minorEdit": page.minor_edit, "authorId": (page.editor or page.author).account_id},
               "body": {}, "_links": {"webui": self.content_links(page)["webui"], "editui": f"/pages/resumedraft.action?draftId={page.id}",
                                      "tinyui": f"/x/{page.seq:x}"}}
        if page.parent_id:
            out["parentId"], out["parentType"] = page.parent_id, "page"
        if body_format == "storage":
            out["body"]["storage"] = {"representation": "storage", "value": page.body}
        return out
