"""The fake's routes: which Graph (and login) requests it answers, and how.

``GraphApi.handle`` takes a parsed request and returns a ``Response``; HTTP plumbing, faults and
the request log live in ``server.py``. Answered without a bearer token: the token endpoint and the
pre-authenticated download URLs. Everything under ``/v1.0`` needs a current bearer token.
"""
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.fakes.graph import render
from tests.fakes.graph.auth import TokenError
from tests.fakes.graph.model import Drive, GraphTenant, Item, Site

JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
DELTA_SEGMENT = re.compile(r"^delta(?:\(token='?([^')]*)'?\))?$")
MAX_TOP = 999


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class NotFound(Exception):
    def __init__(self, message: str = "The resource could not be found.", code: str = "itemNotFound"):
        super().__init__(message)
        self.code = code


class BadRequest(Exception):
    pass


class GraphApi:
    def __init__(self, tenant: GraphTenant, base_url: str):
        self.tenant = tenant
        self.base_url = base_url
        self.download_url_lifetime = 3600
        self._downloads: dict[str, tuple[str, object]] = {}  # tempauth -> (item id, expiry)

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/{self.tenant.tenant_id}/oauth2/v2.0/token"

    # -- entry -----------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes,
               malformed_item: bool = False) -> tuple[Response, bool]:
        """The answer, and whether the request carried a valid bearer token."""
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request_id = secrets.token_hex(16)
        path = parts.path
        with self.tenant.lock:
            if method == "POST" and path.endswith("/oauth2/v2.0/token"):
                return self._token(path, body), False
            if path == "/_layouts/15/download.aspx":
                return self._download(query, request_id), False
            if not path.startswith("/v1.0/"):
                return self._error(404, "BadRequest", f"Unsupported path {path}", request_id), False
            problem = self.tenant.apps.bearer_valid(headers.get("authorization"))
            if problem is not None:
                response = self._error(401, "InvalidAuthenticationToken", problem, request_id)
                response.headers["WWW-Authenticate"] = ('Bearer realm="", authorization_uri="https://login.'
                                                        'microsoftonline.com/common/oauth2/authorize", '
                                                        'client_id="00000003-0000-0000-c000-000000000000"')
                return response, False
            if method != "GET":
                return self._error(405, "invalidRequest", f"{method} is not supported by the fake", request_id), True
            segments = [unquote(s) for s in path.removeprefix("/v1.0/").split("/") if s]
            try:
                return self._route(segments, query, headers, request_id, malformed_item), True
            except NotFound as missing:
                return self._error(404, missing.code, str(missing), request_id), True
            except BadRequest as bad:
                return self._error(400, "invalidRequest", str(bad), request_id), True

    def _route(self, seg: list[str], query: dict, headers: dict, request_id: str, malformed: bool) -> Response:
        match seg:
            case ["sites"]:
                return self._sites_search(query)
            case ["sites", site_id]:
                return self._json(self._select(render.site(self.tenant, self._site(site_id)), query))
            case ["sites", host, "sites", name] if host.endswith(":"):
                return self._json(self._select(render.site(self.tenant, self._site_by_path(host, name)), query))
            case ["sites", site_id, "drives"]:
                site = self._site(site_id)
                drives = [render.drive(self.tenant, d) for d in self.tenant.drives.values() if d.site_id == site.id]
                return self._collection(drives, query, f"/v1.0/sites/{site_id}/drives")
            case ["sites", site_id, "drive"]:
                return self._json(render.drive(self.tenant, self._default_drive(site_id)))
            case ["sites", site_id, "drive", "root", delta] if DELTA_SEGMENT.match(delta):
                return self._delta(self._default_drive(site_id), delta, query, headers, request_id, malformed)
            case ["sites", site_id, "pages", *rest]:
                return self._pages(self._site(site_id), rest, query)
            case ["drives", drive_id]:
                return self._json(self._select(render.drive(self.tenant, self._drive(drive_id)), query))
            case ["drives", drive_id, "root"]:
                drive = self._drive(drive_id)
                return self._item_answer(self.tenant.root(drive), query)
            case ["drives", drive_id, "root", delta] if DELTA_SEGMENT.match(delta):
                return self._delta(self._drive(drive_id), delta, query, headers, request_id, malformed)
            case ["drives", drive_id, "root", "children"]:
                return self._children(self.tenant.root(self._drive(drive_id)), query)
            case ["drives", drive_id, "items", item_id, *rest]:
                return self._item_route(self._item(drive_id, item_id), rest, query)
            case ["users", key]:
                return self._json(self._user(key))
            case ["groups", group_id]:
                group = self.tenant.groups.get(group_id) or _raise(NotFound(f"Resource '{group_id}' does not exist."))
                return self._json({"id": group.id, "displayName": group.display_name, "mail": group.mail})
            case ["groups", group_id, "transitiveMembers" | "members"]:
                group = self.tenant.groups.get(group_id) or _raise(NotFound(f"Resource '{group_id}' does not exist."))
                members = [{"@odata.type": "#microsoft.graph.user", **self._user(u)} for u in group.members]
                return self._collection(members, query, f"/v1.0/groups/{group_id}/{seg[2]}")
        raise BadRequest(f"Resource not found for the segment '{seg[-1] if seg else ''}'.")

    # -- sites, drives, pages --------------------------------------------------------------------

    def _sites_search(self, query: dict) -> Response:
        if "search" not in query:
            raise BadRequest("Listing all sites needs ?search=")
        term = query["search"].strip().strip('"').lower()
        found = [render.site(self.tenant, s) for s in self.tenant.sites.values()
                 if term in {"", "*"} or term in f"{s.name} {s.display_name} {s.description}".lower()]
        return self._collection(found, query, "/v1.0/sites")

    def _site(self, site_id: str) -> Site:
        site = self.tenant.sites.get(site_id)
        if site is None:
            raise NotFound("Requested site could not be found")
        return site

    def _site_by_path(self, host: str, name: str) -> Site:
        for site in self.tenant.sites.values():
            if site.hostname == host.rstrip(":") and site.name == name.rstrip(":"):
                return site
        raise NotFound("Requested site could not be found")

    def _default_drive(self, site_id: str) -> Drive:
        site = self._site(site_id)
        return next(d for d in self.tenant.drives.values() if d.site_id == site.id)

    def _drive(self, drive_id: str) -> Drive:
        drive = self.tenant.drives.get(drive_id)
        if drive is None:
            raise NotFound("The provided drive id appears to be malformed, or does not represent a valid drive.")
        return drive

    def _pages(self, site: Site, rest: list[str], query: dict) -> Response:
        cast = bool(rest) and rest[-1] == "microsoft.graph.sitePage"
        page_ids = rest[:-1] if cast else rest
        expand = {e.strip() for e in query.get("$expand", "").split(",") if e.strip()}
        if expand - {"canvasLayout"}:
            raise BadRequest(f"Parsing OData Select and Expand failed: {query['$expand']}")
        if expand and not cast:
            raise BadRequest("Could not find a property named 'canvasLayout' on type 'microsoft.graph.baseSitePage'.")
        pages = sorted((p for p in self.tenant.pages.values() if p.site_id == site.id), key=lambda p: p.created)
        if not page_ids:
            value = [self._select(render.site_page(self.tenant, p, with_canvas=bool(expand)), query) for p in pages]
            return self._collection(value, query, f"/v1.0/sites/{site.id}/pages" + ("/microsoft.graph.sitePage"
                                                                                   if cast else ""))
        if len(page_ids) != 1:
            raise BadRequest(f"Resource not found for the segment '{page_ids[-1]}'.")
        page = next((p for p in pages if p.id == page_ids[0]), None) or _raise(NotFound())
        return self._json(self._select(render.site_page(self.tenant, page, with_canvas=bool(expand)), query))

    # -- items -----------------------------------------------------------------------------------

    def _item(self, drive_id: str, item_id: str) -> Item:
        drive = self._drive(drive_id)
        item = self.tenant.items.get(item_id)
        if item is None or item.drive_id != drive.id or item.deleted:
            raise NotFound()
        return item

    def _item_route(self, item: Item, rest: list[str], query: dict) -> Response:
        match rest:
            case []:
                return self._item_answer(item, query)
            case ["permissions"]:
                value = [self._select(p, query) for p in render.permissions(self.tenant, item)]
                return self._collection(value, query, f"/v1.0/drives/{item.drive_id}/items/{item.id}/permissions")
            case ["content"]:
                if item.is_folder:
                    raise NotFound("Item is a folder and has no content.")
                return Response(302, headers={"Location": self._download_url(item), "Content-Length": "0"})
            case ["children"]:
                return self._children(item, query)
        raise BadRequest(f"Resource not found for the segment '{rest[-1]}'.")

    def _item_answer(self, item: Item, query: dict) -> Response:
        body = render.drive_item(self.tenant, item, download_url=None if item.is_folder else self._download_url(item))
        expand = {e.strip() for e in query.get("$expand", "").split(",") if e.strip()}
        if expand - {"permissions", "children"}:
            raise BadRequest(f"Parsing OData Select and Expand failed: {query['$expand']}")
        if "permissions" in expand:
            body["permissions"] = render.permissions(self.tenant, item)
        if "children" in expand:
            body["children"] = [render.drive_item(self.tenant, c) for c in self.tenant.children(item)]
        return self._json(self._select(body, query, keep=expand))

    def _children(self, folder: Item, query: dict) -> Response:
        if "permissions" in query.get("$expand", ""):
            raise BadRequest("$expand=permissions is not supported on a collection of driveItems.")
        children = sorted(self.tenant.children(folder), key=lambda i: i.name.lower())
        value = [self._select(render.drive_item(self.tenant, c), query) for c in children]
        return self._collection(value, query, f"/v1.0/drives/{folder.drive_id}/items/{folder.id}/children")

    def _download_url(self, item: Item) -> str:
        tempauth = secrets.token_urlsafe(24)
        expiry = self.tenant.clock.now() + timedelta(seconds=self.download_url_lifetime)
        self._downloads[tempauth] = (item.id, expiry)
        return (f"{self.base_url}/_layouts/15/download.aspx?UniqueId={item.unique_id}&Translate=false"
                f"&tempauth={tempauth}&ApiVersion=2.0")

    def _download(self, query: dict, request_id: str) -> Response:
        item_id, expiry = self._downloads.get(query.get("tempauth", ""), (None, None))
        if item_id is None or self.tenant.clock.now() >= expiry:
            return self._error(401, "invalidAuthenticationToken", "Invalid or expired tempauth.", request_id)
        item = self.tenant.items[item_id]
        if item.deleted:
            return self._error(404, "itemNotFound", "File Not Found.", request_id)
        return Response(200, item.content, {"Content-Type": item.mime_type, "ETag": f'"{{{item.unique_id.upper()}}},'
                                            f'{item.etag_version}"'})

    # -- delta -----------------------------------------------------------------------------------

    def _delta(self, drive: Drive, segment: str, query: dict, headers: dict, request_id: str,
               malformed: bool) -> Response:
        token = DELTA_SEGMENT.match(segment).group(1) or query.get("token")
        if "permissions" in query.get("$expand", ""):
            raise BadRequest("$expand=permissions is not supported on a collection of driveItems.")
        prefer = {p.strip().lower() for p in headers.get("prefer", "").split(",") if p.strip()}
        tokens = self.tenant.delta_tokens
        select = f"&$select={quote(query['$select'], safe=',')}" if "$select" in query else ""
        link = f"{self.base_url}/v1.0/drives/{drive.id}/root/delta?token=" + "{}" + select
        if token == "latest":
            return self._json({"@odata.context": self._context("Collection(driveItem)"), "value": [],
                               "@odata.deltaLink": link.format(tokens.latest(drive))})
        page_size = _top(query) or self.tenant.delta_page_size
        round_token = tokens.start(drive, token=token, prefer=prefer, page_size=page_size,
                                   exclude_parents="deltaexcludeparent" in headers)
        if round_token is None:
            fresh = tokens.start(drive, token=None, prefer=prefer, page_size=page_size, exclude_parents=False)
            response = self._error(410, "resyncRequired", "Resync required. Replace any local items with the "
                                   "server's version (including deletes) if you're sure that the service was up to "
                                   "date with your local changes when you last sync'd.", request_id)
            inner = json.loads(response.body)
            inner["error"]["innerError"]["code"] = "resyncChangesApplyDifferences"
            response.body = json.dumps(inner).encode()
            response.headers["Location"] = link.format(fresh)
            return response
        page = tokens.page(round_token)
        value = []
        for item in page.items:
            body = render.drive_item(self.tenant, item, in_delta=True, hierarchical_sharing="hierarchicalsharing"
                                     in prefer, download_url=None if item.is_folder or item.deleted
                                     else self._download_url(item))
            if item.id in page.shared_changed:
                body["@microsoft.graph.sharedChanged"] = "True"
            value.append(self._select(body, query, keep={"deleted"}))
        if malformed:
            value.insert(0, {"@odata.type": "#microsoft.graph.driveItem", "name": 42, "file": "broken"})
        answer = {"@odata.context": self._context("Collection(driveItem)"), "value": value}
        if page.next_token:
            answer["@odata.nextLink"] = link.format(page.next_token)
        else:
            answer["@odata.deltaLink"] = link.format(page.delta_token)
        return self._json(answer)

    # -- helpers ---------------------------------------------------------------------------------

    def _user(self, key: str) -> dict:
        user = self.tenant.users.get(key) or next(
            (u for u in self.tenant.users.values() if u.user_principal_name.lower() == key.lower()), None)
        if user is None:
            raise NotFound(f"Resource '{key}' does not exist or one of its queried reference-property objects "
                           "are not present.", code="Request_ResourceNotFound")
        return {"id": user.id, "userPrincipalName": user.user_principal_name, "mail": user.mail,
                "displayName": user.display_name}

    def _token(self, path: str, body: bytes) -> Response:
        form = {k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()}
        tenant_segment = path.strip("/").split("/")[0]
        try:
            answer = self.tenant.apps.token_issue(tenant_segment, form, self.base_url + path)
            return self._json(answer, content_type="application/json; charset=utf-8")
        except TokenError as failure:
            trace = secrets.token_hex(16)
            return self._json({"error": failure.error, "error_description": failure.description,
                               "error_codes": [failure.code], "timestamp": render.when(self.tenant.clock.now()),
                               "trace_id": trace, "correlation_id": trace,
                               "error_uri": f"https://login.microsoftonline.com/error?code={failure.code}"},
                              status=failure.status, content_type="application/json; charset=utf-8")

    def _collection(self, value: list[dict], query: dict, path: str) -> Response:
        """``$top`` pages with ``@odata.nextLink`` carrying a ``$skiptoken`` (an offset here)."""
        top = _top(query) or len(value) or 1
        start = int(query.get("$skiptoken", "0") or 0)
        answer = {"@odata.context": self._context("Collection"), "value": value[start:start + top]}
        if start + top < len(value):
            keep = "".join(f"&{k}={quote(v, safe=',*')}" for k, v in query.items() if k != "$skiptoken")
            answer["@odata.nextLink"] = f"{self.base_url}{path}?$skiptoken={start + top}{keep}"
        return self._json(answer)

    @staticmethod
    def _select(body: dict, query: dict, keep: set[str] = frozenset()) -> dict:
        """``$select``: the named properties, plus ``id`` and annotations (a choice of the fake)."""
        if "$select" not in query:
            return body
        wanted = {s.strip() for s in query["$select"].split(",")} | {"id"} | set(keep)
        return {k: v for k, v in body.items() if k in wanted or k.startswith("@")}

    def _context(self, what: str) -> str:
        return f"{self.base_url}/v1.0/$metadata#{what}"

    def _json(self, obj: dict, *, status: int = 200, content_type: str = JSON_TYPE) -> Response:
        return Response(status, json.dumps(obj).encode(), {"Content-Type": content_type})

    def _error(self, status: int, code: str, message: str, request_id: str) -> Response:
        response = self._json(render.error(code, message, request_id, self.tenant.clock.now()), status=status)
        response.headers["request-id"] = request_id
        return response


def _top(query: dict) -> int | None:
    if "$top" not in query:
        return None
    try:
        top = int(query["$top"])
    except ValueError:
        raise BadRequest(f"Invalid $top value {query['$top']!r}") from None
    if not 1 <= top <= MAX_TOP:
        raise BadRequest(f"$top must be between 1 and {MAX_TOP}")
    return top


def _raise(error: Exception):
    raise error
