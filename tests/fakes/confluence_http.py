"""The HTTP side of the fake Confluence: authentication, routing, pagination and errors.

Cloud serves v1 under ``/wiki/rest/api``, v2 under ``/wiki/api/v2`` and downloads under
``/wiki/download/attachments``; Data Center serves the same v1 handlers under ``/rest/api`` and
downloads under ``/download/attachments``, and has no v2 (404). Cloud authenticates HTTP basic
``email:api-token``; Data Center ``Authorization: Bearer <personal access token>``.

Pagination: v1 ``start``/``limit`` with ``_links.next`` relative to ``_links.base``; ``limit`` is
capped at ``max_limit`` (as the real server caps it silently, so clients must follow ``next``).
Cloud's ``/content/search`` pages with an opaque ``cursor`` only (its spec has no ``start``);
Data Center's with ``start``. v2 pages with ``cursor``; ``_links.next`` there starts with
``/wiki/api/v2`` (relative to the host, not to ``_links.base``) and is repeated in a ``Link`` header.

Listings are computed once per (query, viewer, site revision) and sliced per page, so walking
10,000 pages costs one scan. Errors carry Confluence's v1 body (``statusCode``, ``message``,
``reason``) or v2's (``errors: [{status, code, title, detail}]``).
"""
import base64
import binascii
import hashlib
import re
from http import HTTPStatus
from urllib.parse import unquote, urlencode

from tests.fakes import confluence_cql
from tests.fakes.confluence_model import ATTACHMENT, BLOGPOST, PAGE, Content, Site, User
from tests.fakes.confluence_render import Renderer, expand_tree
from tests.fakes.confluence_v2 import HttpError, V2Handlers, cursor_for, offset_of
from tests.fakes.http import Faults, Request, RequestLog, Response

DEFAULT_CONTENT_EXPAND = "space,history,version"  # the spec: expanded unless `expand` says otherwise


class ConfluenceApp(V2Handlers):
    def __init__(self, site: Site, *, cloud: bool = True, max_limit: int = 100):
        self.site, self.cloud, self.max_limit = site, cloud, max_limit
        self.log, self.faults = RequestLog(), Faults()
        self.root_url = ""  # http://127.0.0.1:<port>, set when the server starts
        self._cache: dict = {}
        self._cache_revision = -1
        context = self.context
        self._routes = [
            (re.compile(rf"^{context}/rest/api(/.*)$"), self._v1),
            (re.compile(rf"^{context}/download/attachments/([^/]+)/([^/]+)$"), self._download),
        ]
        if cloud:
            self._routes.append((re.compile(r"^/wiki/api/v2(/.*)$"), self._v2))
        self._v1_routes = [
            (r"/space", self._spaces), (r"/content", self._contents), (r"/content/search", self._content_search),
            (r"/search", self._search), (r"/content/([^/]+)", self._content),
            (r"/content/([^/]+)/child", self._children), (r"/content/([^/]+)/child/(page|attachment|comment)", self._child),
            (r"/content/([^/]+)/restriction", self._restriction_array),
            (r"/content/([^/]+)/restriction/byOperation", self._by_operation),
            (r"/content/([^/]+)/restriction/byOperation/(read|update)", self._restriction),
            (r"/group/([^/]+)/member", self._group_members), (r"/group/([^/]+)/membersByGroupId", self._group_members_by_id),
            (r"/user/memberof", self._member_of),
        ]

    @property
    def context(self) -> str:
        return "/wiki" if self.cloud else ""

    @property
    def base(self) -> str:
        return self.root_url + self.context

    # -- the app interface of tests.fakes.http --------------------------------------------------
    def error_response(self, status: int, message: str, *, v2: bool = False) -> Response:
        reason = HTTPStatus(status).phrase
        if v2:
            body = {"errors": [{"status": status, "code": reason.upper().replace(" ", "_"), "title": reason, "detail": message}]}
        else:
            body = {"statusCode": status, "data": {"authorized": status not in (401, 403), "valid": True, "errors": [],
                                                   "successful": False}, "message": message, "reason": reason}
        return Response(status, json=body)

    def _route(self, path: str):
        for pattern, handler in self._routes:
            match = pattern.match(path)
            if match:
                return handler, match
        return None, None

    def handle(self, request: Request) -> Response:
        handler, match = self._route(request.path)
        if handler is None:
            return self.error_response(404, f"No route for {request.path}")
        v2 = handler == self._v2
        user = self._authenticate(request)
        if user is None:
            response = self.error_response(401, "Client must be authenticated to access this resource.", v2=v2)
            response.headers["WWW-Authenticate"] = 'Basic realm="Confluence"' if self.cloud else 'Bearer realm="Confluence"'
            return response
        if not user.can_use:
            response = self.error_response(403, "Current user not permitted to use Confluence", v2=v2)
        elif request.method != "GET":
            response = self.error_response(405, f"{request.method} is not supported by the fake", v2=v2)
        else:
            try:
                with self.site.lock:
                    renderer = Renderer(self.site, cloud=self.cloud, base=self.base, viewer=user)
                    response = handler(request, renderer, *match.groups())
            except HttpError as error:
                response = self.error_response(error.status, error.message, v2=v2)
        response.principal = user.handle
        return response

    def _authenticate(self, request: Request) -> User | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if self.cloud and scheme.lower() == "basic":
            try:
                email, _, token = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return self.site.api_tokens.get((email, token))
        if not self.cloud and scheme.lower() == "bearer":
            return self.site.personal_tokens.get(value.strip())
        return None

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _int(request: Request, name: str, default: int) -> int:
        raw = request.arg(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(400, f"{name} must be an integer: {raw}") from None
        if value < 0:
            raise HttpError(400, f"{name} must not be negative: {raw}")
        return value

    def _cached(self, key: tuple, compute) -> list:
        if self._cache_revision != self.site.revision:
            self._cache, self._cache_revision = {}, self.site.revision
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _visible(self, viewer: User, content_id: str, status: str = "current") -> Content:
        content = self.site.get(content_id)
        if content is None or not self.site.can_read(viewer, content) or (
            status != "any" and content.status != status
        ) or (status == "current" and not self.site.is_live(content)):
            raise HttpError(404, f"No content found with id: ContentId{{id={content_id}}}")
        return content

    def _page(self, request: Request, items: list, path: str, render, *, cursor: bool = False, extra: dict | None = None) -> Response:
        """A v1 page of ``items`` (start/limit, or Cloud search's cursor), rendered one by one."""
        limit = min(self._int(request, "limit", 25), self.max_limit)
        start = offset_of(request.arg("cursor")) if cursor and request.arg("cursor") else (
            0 if cursor else self._int(request, "start", 0))
        window = items[start:start + limit]
        params = {k: v[-1] for k, v in request.query.items() if k not in ("start", "cursor", "next", "prev")}
        links = {"base": self.base, "context": self.context,
                 "self": f"{self.base}/rest/api{path}" + (f"?{urlencode(params)}" if params else "")}
        for name, offset, wanted in (("next", start + limit, start + limit < len(items)),
                                     ("prev", max(start - limit, 0), start > 0)):
            if wanted:
                position = {name: "true", "cursor": cursor_for(offset)} if cursor else {"start": offset}
                links[name] = f"/rest/api{path}?" + urlencode({**params, "limit": limit, **position})
        return Response(json={"results": [render(i) for i in window], "start": start, "limit": limit,
                              "size": len(window), **(extra or {}), "_links": links})

    # -- v1 -----------------------------------------------------------------------------------
    def _v1(self, request: Request, renderer: Renderer, rest: str) -> Response:
        for pattern, handler in self._v1_routes:
            match = re.fullmatch(pattern, rest)
            if match:
                return handler(request, renderer, *match.groups())
        raise HttpError(404, f"null for uri: {self.base}/rest/api{rest}")

    def _spaces(self, request: Request, r: Renderer) -> Response:
        keys, ids = request.query.get("spaceKey", []), request.query.get("spaceId", [])
        kind, status = request.arg("type"), request.arg("status")
        spaces = [
            s for _, s in sorted(self.site.spaces.items())
            if (not keys or s.key in keys) and (not ids or str(s.id) in ids) and (not kind or s.type == kind)
            and (not status or s.status == status) and self.site.can_read_space(r.viewer, s)
        ]
        expand = expand_tree(request.arg("expand"))
        return self._page(request, spaces, "/space", lambda s: r.space(s, expand))

    def _contents(self, request: Request, r: Renderer) -> Response:
        kind, space_key = request.arg("type", PAGE), request.arg("spaceKey")
        title, status, day = request.arg("title"), request.arg("status", "current"), request.arg("postingDay")
        if kind not in (PAGE, BLOGPOST):
            raise HttpError(400, f"Unsupported content type: {kind}")

        def compute():
            if status == "current":
                keys = [space_key] if space_key else sorted(self.site.spaces)
                found = [self.site.content[i] for key in keys for i in self.site.ids_in_space(key, kind)]
            else:
                found = sorted((c for c in self.site.content.values() if c.type == kind
                                and (status == "any" or c.status == status)
                                and (not space_key or c.space.key == space_key)), key=lambda c: c.seq)
            return [c for c in found if self.site.can_read(r.viewer, c)]

        items = self._cached(("content", kind, space_key, status, r.viewer.handle), compute)
        if title is not None:
            items = [c for c in items if c.title == title]
        if day:
            items = [c for c in items if c.created.astimezone(self.site.timezone).date().isoformat() == day]
        expand = expand_tree(request.arg("expand", DEFAULT_CONTENT_EXPAND))
        return self._page(request, items, "/content", lambda c: r.content(c, expand))

    def _matching(self, request: Request, r: Renderer) -> list[Content]:
        cql = request.arg("cql")
        if not cql:
            raise HttpError(400, "CQL query parameter is required")
        try:
            return self._cached(("cql", cql, r.viewer.handle), lambda: [
                c for c in confluence_cql.search(self.site, cql) if self.site.can_read(r.viewer, c)])
        except confluence_cql.CqlError:
            raise HttpError(400, f"Could not parse cql : {cql}") from None

    def _content_search(self, request: Request, r: Renderer) -> Response:
        items = self._matching(request, r)
        expand = expand_tree(request.arg("expand"))
        return self._page(request, items, "/content/search", lambda c: r.content(c, expand), cursor=self.cloud,
                          extra={"totalSize": len(items), "cqlQuery": request.arg("cql")})

    def _search(self, request: Request, r: Renderer) -> Response:
        items = self._matching(request, r)
        expand = expand_tree(request.arg("expand"))

        def result(c: Content) -> dict:
            return {"content": r.content(c, expand), "title": c.title, "excerpt": "", "url": r.content_links(c)["webui"],
                    "resultGlobalContainer": {"title": c.space.name, "displayUrl": f"/spaces/{c.space.key}"},
                    "breadcrumbs": [], "entityType": "content", "iconCssClass": f"aui-icon content-type-{c.type}",
                    "lastModified": r.when(c.when), "friendlyLastModified": r.when(c.when), "score": 1.0}

        return self._page(request, items, "/search", result, cursor=self.cloud,
                          extra={"totalSize": len(items), "cqlQuery": request.arg("cql"), "searchDuration": 1})

    def _content(self, request: Request, r: Renderer, content_id: str) -> Response:
        content = self._visible(r.viewer, content_id, request.arg("status", "current"))
        version = request.arg("version")
        if version is not None and version != str(content.version):
            raise HttpError(404, f"No content found with id: ContentId{{id={content_id}}} and version {version}")
        body = r.content(content, expand_tree(request.arg("expand", DEFAULT_CONTENT_EXPAND)))
        body["_links"].update(base=self.base, context=self.context)
        return Response(json=body)

    def _children(self, request: Request, r: Renderer, content_id: str) -> Response:
        content = self._visible(r.viewer, content_id)
        return Response(json=r.children(content, expand_tree(request.arg("expand"))))

    def _child(self, request: Request, r: Renderer, content_id: str, kind: str) -> Response:
        content = self._visible(r.viewer, content_id)
        ids = {"page": self.site.child_ids, "attachment": self.site.attachment_ids}.get(kind, lambda c: [])(content)
        items = [self.site.content[i] for i in ids]
        items = [c for c in items if c.status == "current" and self.site.can_read(r.viewer, c)]
        if kind == ATTACHMENT:
            filename, media_type = request.arg("filename"), request.arg("mediaType")
            items = [c for c in items if (not filename or c.title == filename) and (not media_type or c.media_type == media_type)]
        expand = expand_tree(request.arg("expand"))
        return self._page(request, items, f"/content/{content_id}/child/{kind}", lambda c: r.content(c, expand))

    @staticmethod
    def _restriction_expand(request: Request, operation: str, *, nested: bool) -> dict:
        """The default expands users and groups; ``expand`` may name ``restrictions.user`` or ``read.restrictions.user``."""
        raw = request.arg("expand")
        if raw is None:
            return {"restrictions": {"user": {}, "group": {}}}
        tree = expand_tree(raw)
        merged = dict(tree)
        if nested:
            merged.setdefault("restrictions", {}).update(tree.get(operation, {}).get("restrictions", {}))
        return merged

    def _restriction_array(self, request: Request, r: Renderer, content_id: str) -> Response:
        content = self._visible(r.viewer, content_id)
        start, limit = self._int(request, "start", 0), min(self._int(request, "limit", 100), self.max_limit)
        results = [r.restriction(content, op, self._restriction_expand(request, op, nested=True), start, limit)
                   for op in ("read", "update")]
        digest = hashlib.sha1(repr(([u.handle for u in content.read_users], [g.name for g in content.read_groups])).encode())
        return Response(json={"results": results, "start": start, "limit": limit, "size": len(results),
                              "restrictionsHash": digest.hexdigest(),
                              "_links": {"base": self.base, "context": self.context,
                                         "self": f"{self.base}/rest/api/content/{content_id}/restriction"}})

    def _by_operation(self, request: Request, r: Renderer, content_id: str) -> Response:
        content = self._visible(r.viewer, content_id)
        body = {op: r.restriction(content, op, self._restriction_expand(request, op, nested=False)) for op in ("read", "update")}
        body["_links"] = {"base": self.base, "context": self.context,
                          "self": f"{self.base}/rest/api/content/{content_id}/restriction/byOperation"}
        return Response(json=body)

    def _restriction(self, request: Request, r: Renderer, content_id: str, operation: str) -> Response:
        content = self._visible(r.viewer, content_id)
        start, limit = self._int(request, "start", 0), min(self._int(request, "limit", 100), self.max_limit)
        expand = self._restriction_expand(request, operation, nested=False)
        return Response(json=r.restriction(content, operation, expand, start, limit))

    # -- groups: who is in them, what a user is in (membership is what restrictions and space
    #    permissions on groups mean; a connector needs it to intersect them) -------------------
    def _group_members(self, request: Request, r: Renderer, name: str) -> Response:
        group = self.site.groups.get(unquote(name))
        if group is None:
            raise HttpError(404, f"No group found with name: {unquote(name)}")
        return self._members(request, r, group, f"/group/{name}/member")

    def _group_members_by_id(self, request: Request, r: Renderer, group_id: str) -> Response:
        if not self.cloud:
            raise HttpError(404, f"null for uri: {self.base}/rest/api/group/{group_id}/membersByGroupId")
        group = next((g for g in self.site.groups.values() if g.id == group_id), None)
        if group is None:
            raise HttpError(404, f"No group found with id: {group_id}")
        return self._members(request, r, group, f"/group/{group_id}/membersByGroupId")

    def _members(self, request: Request, r: Renderer, group, path: str) -> Response:
        members = [u for _, u in sorted(self.site.users.items()) if group.name in u.groups]
        return self._page(request, members, path, r.user)

    def _member_of(self, request: Request, r: Renderer) -> Response:
        if self.cloud:
            wanted = request.arg("accountId")
            user = next((u for u in self.site.users.values() if u.account_id == wanted), None)
        else:
            wanted = request.arg("username") or request.arg("key")
            user = next((u for u in self.site.users.values() if wanted in (u.username, u.user_key)), None)
        if user is None:
            raise HttpError(404, f"No user found: {wanted}")
        groups = [self.site.groups[name] for name in sorted(user.groups) if name in self.site.groups]
        return self._page(request, groups, "/user/memberof", r.group)

    def _download(self, request: Request, r: Renderer, container_id: str, filename: str) -> Response:
        container = self._visible(r.viewer, container_id)
        name = unquote(filename)
        for attachment_id in self.site.attachment_ids(container):
            attachment = self.site.content[attachment_id]
            if attachment.title == name and attachment.status == "current":
                return Response(body=attachment.data, content_type=attachment.media_type)
        raise HttpError(404, f"No attachment {name} on content {container_id}")
