"""Confluence Cloud REST v2 for the fake server (``/wiki/api/v2``), mixed into ``ConfluenceApp``.

Spaces, space permissions (principal user/group with accountId or group id; operation key and
target type) and pages with ``body-format=storage``, paged with an opaque ``cursor``: ``_links.next``
starts with ``/wiki/api/v2`` (relative to the host, not to ``_links.base``, as the real one does)
and is repeated in a ``Link`` header. Also the error and cursor helpers the v1 side shares.
"""
import base64
import binascii
import re
from urllib.parse import urlencode

from tests.fakes.confluence_model import PAGE, User
from tests.fakes.confluence_render import Renderer
from tests.fakes.http import Request, Response


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def cursor_for(offset: int) -> str:
    return base64.urlsafe_b64encode(f"_sa_{offset}".encode()).decode().rstrip("=")


def offset_of(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text.removeprefix("_sa_"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HttpError(400, f"Invalid cursor: {cursor}") from None


class V2Handlers:
    """Needs from the app: ``site``, ``base``, ``_int``, ``_cached``."""

    _V2_ROUTES = [
        (r"/spaces", "_v2_spaces"), (r"/spaces/(\d+)", "_v2_space"),
        (r"/spaces/(\d+)/permissions", "_v2_permissions"), (r"/pages", "_v2_pages"),
        (r"/pages/(\d+)", "_v2_page"), (r"/spaces/(\d+)/pages", "_v2_space_pages"),
    ]

    def _v2(self, request: Request, renderer: Renderer, rest: str) -> Response:
        for pattern, name in self._V2_ROUTES:
            match = re.fullmatch(pattern, rest)
            if match:
                return getattr(self, name)(request, renderer, *match.groups())
        raise HttpError(404, f"No v2 route {rest}")

    def _v2_page_of(self, request: Request, items: list, path: str, render) -> Response:
        limit = max(1, min(self._int(request, "limit", 25), 250))
        start = offset_of(request.arg("cursor")) if request.arg("cursor") else 0
        window = items[start:start + limit]
        body = {"results": [render(i) for i in window], "_links": {"base": self.base}}
        response = Response(json=body)
        if start + limit < len(items):
            params = {k: v[-1] for k, v in request.query.items() if k != "cursor"}
            body["_links"]["next"] = f"/wiki/api/v2{path}?" + urlencode({**params, "cursor": cursor_for(start + limit)})
            response.headers["Link"] = f'<{body["_links"]["next"]}>; rel="next", <{self.base}>; rel="base"'
        return response

    @staticmethod
    def _csv(request: Request, name: str, *, numeric: bool = False) -> list[str]:
        values = [v for raw in request.query.get(name, []) for v in raw.split(",") if v]
        if numeric and not all(v.isdigit() for v in values):
            raise HttpError(400, f"{name} must be a list of numbers")
        return values

    def _v2_space_by_id(self, viewer: User, space_id: str):
        space = self.site.spaces_by_id.get(int(space_id))
        if space is None or not self.site.can_read_space(viewer, space):
            raise HttpError(404, f"Space {space_id} not found")
        return space

    def _v2_spaces(self, request: Request, r: Renderer) -> Response:
        ids, keys = self._csv(request, "ids", numeric=True), self._csv(request, "keys")
        kind, status = request.arg("type"), request.arg("status")
        spaces = [s for _, s in sorted(self.site.spaces_by_id.items())
                  if (not ids or str(s.id) in ids) and (not keys or s.key in keys) and (not kind or s.type == kind)
                  and (not status or s.status == status) and self.site.can_read_space(r.viewer, s)]
        return self._v2_page_of(request, spaces, "/spaces", r.v2_space)

    def _v2_space(self, request: Request, r: Renderer, space_id: str) -> Response:
        return Response(json=r.v2_space(self._v2_space_by_id(r.viewer, space_id)))

    def _v2_permissions(self, request: Request, r: Renderer, space_id: str) -> Response:
        space = self._v2_space_by_id(r.viewer, space_id)
        return self._v2_page_of(request, list(space.permissions), f"/spaces/{space_id}/permissions", r.v2_permission)

    def _v2_pages(self, request: Request, r: Renderer, space_ids: list[str] | None = None, root_only: bool = False) -> Response:
        space_ids = space_ids or self._csv(request, "space-id", numeric=True)
        ids, title = set(self._csv(request, "id", numeric=True)), request.arg("title")
        statuses = tuple(self._csv(request, "status")) or ("current", "archived")
        body_format = request.arg("body-format")
        if body_format not in (None, "storage", "atlas_doc_format"):
            raise HttpError(400, f"Invalid body-format: {body_format}")

        def compute():
            spaces = [self.site.spaces_by_id[int(i)] for i in space_ids if int(i) in self.site.spaces_by_id] \
                if space_ids else [self.site.spaces[k] for k in sorted(self.site.spaces)]
            if statuses == ("current", "archived"):
                found = [self.site.content[i] for s in spaces for i in self.site.ids_in_space(s.key, PAGE)]
            else:
                keys = {s.key for s in spaces}
                found = sorted((c for c in self.site.content.values() if c.type == PAGE and c.status in statuses
                                and c.space.key in keys), key=lambda c: c.seq)
            return [c for c in found if self.site.can_read(r.viewer, c)]

        items = self._cached(("v2pages", tuple(space_ids), statuses, r.viewer.handle), compute)
        if ids or title or root_only:
            items = [c for c in items if (not ids or c.id in ids) and (title is None or c.title == title)
                     and (not root_only or c.parent_id is None)]
        path = f"/spaces/{space_ids[0]}/pages" if "/spaces/" in request.path else "/pages"
        return self._v2_page_of(request, items, path, lambda c: r.v2_page(c, body_format))

    def _v2_page(self, request: Request, r: Renderer, page_id: str) -> Response:
        page = self.site.get(page_id)
        if page is None or page.type != PAGE or page.status != "current" or not self.site.can_read(r.viewer, page):
            raise HttpError(404, f"Page {page_id} not found")
        return Response(json=r.v2_page(page, request.arg("body-format")))

    def _v2_space_pages(self, request: Request, r: Renderer, space_id: str) -> Response:
        self._v2_space_by_id(r.viewer, space_id)
        return self._v2_pages(request, r, [space_id], root_only=request.arg("depth") == "root")
