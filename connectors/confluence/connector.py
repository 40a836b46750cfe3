"""The ``confluence`` connector: spaces, pages, blog posts and attachments, by cursor, with permissions.

Configuration (``Source.config``): ``base_url`` (``https://example.atlassian.net/wiki`` on Cloud,
``https://confluence.example.com`` on Data Center), ``flavour`` (``cloud`` | ``datacenter``),
``spaces`` (keys; all visible spaces when absent), ``include_attachments`` (default true),
``page_size`` (1-250, default 100), ``max_attachment_bytes`` (default 20 MB), ``overlap_minutes``
(default 10), ``timezone`` (the service account's profile time zone, in which CQL dates are read;
default UTC). Credentials: ``email`` + ``api_token`` (Cloud) or ``personal_access_token`` (DC).

Runs (see docs/connectors.md):
- a full pass (empty cursor) first asks CQL for the newest modification (the next incremental
  starts there), then lists each space's pages and blog posts by ``start``/``limit`` with bodies,
  ancestors' and own read restrictions and attachments expanded, one checkpoint per result page;
  consecutive result pages overlap by a few items so a deletion during the pass cannot shift an
  item past a page boundary (repeated items are skipped).
- an incremental run asks CQL for content with ``lastmodified`` from the saved watermark minus the
  overlap, oldest first, following ``_links.next`` (Cloud search pages by cursor only); items
  already applied at the same version (kept in the cursor for the overlap window) are skipped; then
  lists each space's trash (ids only, with trashed pages' attachments) and reports what is newly
  trashed as deleted. Purged content is removed by full passes.
- a permission sync lists every page and blog post with ancestors' and own restrictions (no bodies)
  and yields each access list and space (the place), with the attachments'. Moves and restriction
  changes do not bump ``lastmodified``; this is what applies them.
"""
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import (
    AccessChanged,
    BaseConnector,
    Checkpoint,
    ConnectorConfigError,
    ConnectorError,
    CursorMixin,
    DocumentDeleted,
    DocumentFailure,
    PermissionSyncMixin,
    register_connector,
)
from connectors.confluence.client import ConfluenceClient, ConfluenceNotFound, ConfluenceUnavailable
from connectors.confluence.content import (
    Item,
    MalformedContent,
    attachment_input,
    attachment_size,
    breadcrumb,
    item_of,
    page_input,
    parse_when,
    space_place,
)
from connectors.confluence.permissions import AccessResolver, MalformedAccess, SpaceAccess
from kbsearch.ingest.extract import ExtractionFailed
from kbsearch.ingest.inputs import DocumentInput, Place

logger = logging.getLogger(__name__)

_ACCESS = ("restrictions.read.restrictions.user,restrictions.read.restrictions.group,"
           "ancestors.restrictions.read.restrictions.user,ancestors.restrictions.read.restrictions.group")
_CONTENT = f"body.storage,version,space,{_ACCESS}"
_TYPES = ("page", "blogpost")
# Result pages of a full pass overlap by this many items (see the module docstring).
_PAGE_OVERLAP = 5
# Entries kept in the cursor to skip items already applied within the overlap window.
_RECENT_LIMIT = 5000


@register_connector("confluence")
class ConfluenceConnector(BaseConnector, CursorMixin, PermissionSyncMixin):
    """Confluence Cloud and Data Center; see the module docstring."""

    def validate_config(self) -> None:
        config = self.config
        base_url = config.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConnectorConfigError("confluence: base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.flavour = config.get("flavour", "cloud")
        if self.flavour not in ("cloud", "datacenter"):
            raise ConnectorConfigError("confluence: flavour must be 'cloud' or 'datacenter'")
        spaces = config.get("spaces")
        if spaces is not None and (not isinstance(spaces, list) or not all(isinstance(s, str) and s for s in spaces)):
            raise ConnectorConfigError("confluence: spaces must be a list of space keys")
        self.space_keys = sorted(spaces) if spaces else None
        self.include_attachments = config.get("include_attachments", True)
        if not isinstance(self.include_attachments, bool):
            raise ConnectorConfigError("confluence: include_attachments must be true or false")
        self.page_size = _int_option(config, "page_size", 100, 1, 250)
        self.max_attachment_bytes = _int_option(config, "max_attachment_bytes", 20 * 1024 * 1024, 1, 1 << 40)
        self.overlap = timedelta(minutes=_int_option(config, "overlap_minutes", 10, 0, 7 * 24 * 60))
        try:
            self.timezone = ZoneInfo(config.get("timezone", "UTC"))
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConnectorConfigError(f"confluence: unknown timezone {config.get('timezone')!r}") from None
        self.max_retries = _int_option(config, "max_retries", 8, 0, 50)
        self.max_retry_wait = _int_option(config, "max_retry_wait_seconds", 60, 0, 3600)
        self._client: ConfluenceClient | None = None
        self._access: AccessResolver | None = None
        self.notices: list[str] = []

    @staticmethod
    def default_identity_keys(config: dict) -> tuple[str, str]:
        """How this source's principals match directory entries unless the admin says otherwise."""
        return ("username", "cn") if config.get("flavour") == "datacenter" else ("email", "cn")

    # -- plumbing -------------------------------------------------------------------------------
    @property
    def client(self) -> ConfluenceClient:
        if self._client is None:
            self._client = ConfluenceClient(base_url=self.base_url, flavour=self.flavour, credentials=self.credentials,
                                            max_retries=self.max_retries, max_wait=self.max_retry_wait)
        return self._client

    @property
    def access(self) -> AccessResolver:
        if self._access is None:
            self._access = AccessResolver(self.client, cloud=self.flavour == "cloud")
        return self._access

    def _spaces(self) -> dict[str, SpaceAccess]:
        params: dict = {"expand": "permissions", "limit": self.page_size}
        if self.space_keys:
            params["spaceKey"] = self.space_keys
        spaces = {}
        for raw in self.client.all_results("/rest/api/space", params):
            try:
                space = self.access.space_access(raw)
            except MalformedAccess as error:
                # Its pages' access would be unknown: stop rather than index or prune them wrongly.
                raise ConnectorError(f"confluence: {error}") from None
            spaces[space.key] = space
            for notice in space.notices:
                if notice not in self.notices:
                    logger.warning("confluence %s: %s", self.base_url, notice)
                    self.notices.append(notice)
        missing = sorted(set(self.space_keys or ()) - set(spaces))
        if missing:
            self.notices.append(f"configured spaces not visible to the service account: {', '.join(missing)}")
        return spaces

    def _checkpoint(self, cursor: dict) -> Checkpoint:
        return Checkpoint({**cursor, "notices": list(self.notices)} if self.notices else cursor)

    def _cql_scope(self, spaces: dict[str, SpaceAccess]) -> str:
        kinds = ", ".join([*_TYPES, *(["attachment"] if self.include_attachments else [])])
        scope = f"type in ({kinds})"
        if self.space_keys:
            keys = ", ".join(f'"{key}"' for key in sorted(spaces) or ["~none~"])
            scope = f"space in ({keys}) AND {scope}"
        return scope

    # -- one content item ----------------------------------------------------------------------
    def _items(self, raw: object, spaces: dict[str, SpaceAccess], *, with_attachments: bool) -> Iterator:
        try:
            item = item_of(raw)
        except MalformedContent as error:
            yield _malformed(error)
            return
        space_key = ((item.raw.get("space") or {}).get("key")) if isinstance(item.raw.get("space"), dict) else None
        space = spaces.get(space_key)
        if space is None:
            if space_key is None:
                yield DocumentFailure(item.id, f"malformed: item {item.id} names no space", revoke_access=True)
            return  # a space outside the configured ones
        try:
            principals = self.access.principals(space, self.access.levels(item.raw))
        except MalformedAccess as error:
            yield DocumentFailure(item.id, f"malformed: {error}", revoke_access=True)
            return
        path = breadcrumb(space.name, item.raw.get("ancestors") or [], item.title)
        place = space_place(space.key, space.name)
        if item.type == "attachment":
            yield self._attachment(item, path, place, principals)
            return
        try:
            yield page_input(item, space=place, principals=principals, base_url=self.base_url)
        except MalformedContent as error:
            yield _malformed(error)
        if with_attachments and self.include_attachments:
            for attachment in self._attachments_of(item):
                try:
                    child = item_of(attachment)
                except MalformedContent as error:
                    yield _malformed(error)
                    continue
                yield self._attachment(child, f"{path} > {child.title}", place, principals)

    def _attachments_of(self, item: Item) -> Iterator:
        listing = ((item.raw.get("children") or {}).get("attachment"))
        if not isinstance(listing, dict):
            return
        page = self.client.page_of(listing)
        yield from page.results
        if page.next_path:
            for more in self.client.pages(page.next_path):
                yield from more.results

    def _attachment(self, item: Item, path: str, place: Place, principals: tuple[str, ...]):
        size = attachment_size(item)
        if size is not None and size > self.max_attachment_bytes:
            return DocumentFailure(item.id, f"attachment is {size:,} bytes; the limit is {self.max_attachment_bytes:,}",
                                   retryable=False)
        link = (item.raw.get("_links") or {}).get("download")
        if not isinstance(link, str) or not link:
            return DocumentFailure(item.id, f"malformed: attachment {item.id} has no download link")
        try:
            data = self.client.request(link, raw=True)
        except ConfluenceNotFound:
            return DocumentDeleted(item.id)  # deleted between the listing and the download
        except ConfluenceUnavailable as error:
            return DocumentFailure(item.id, f"download failed: {error}")
        if len(data) > self.max_attachment_bytes:
            return DocumentFailure(item.id, f"attachment is {len(data):,} bytes; the limit is {self.max_attachment_bytes:,}",
                                   retryable=False)
        try:
            return attachment_input(item, data, path=path, space=place, principals=principals, base_url=self.base_url)
        except ExtractionFailed as error:
            return DocumentFailure(item.id, f"no text extracted: {error}", retryable=False)

    # -- the change stream ---------------------------------------------------------------------
    def changes(self, *, cursor: dict):
        if not cursor or cursor.get("phase") == "full":
            yield from self._full_pass(cursor or {})
        else:
            yield from self._incremental(cursor)

    def _newest_modification(self, spaces) -> str | None:
        body = self.client.request("/rest/api/content/search", {
            "cql": f"{self._cql_scope(spaces)} ORDER BY lastmodified DESC", "limit": 1, "expand": "version"})
        results = self.client.page_of(body).results
        when = parse_when(((results[0] or {}).get("version") or {}).get("when")) if results else None
        return when.isoformat() if when else None

    def _full_pass(self, cursor: dict):
        spaces = self._spaces()
        if "watermark" not in cursor:
            cursor = {"phase": "full", "watermark": self._newest_modification(spaces), "space": "", "type": _TYPES[0],
                      "start": 0, "prev": []}
        expand = _CONTENT + (",children.attachment.version" if self.include_attachments else "")
        watermark = parse_when(cursor["watermark"])
        recent: dict[str, list] = dict(cursor.get("recent") or {})
        for space_key in sorted(spaces):
            # Position: the space and type being listed; type None once the space is done.
            if cursor["space"] and (space_key < cursor["space"] or (space_key == cursor["space"] and cursor["type"] is None)):
                continue
            for kind in _TYPES:
                here = space_key == cursor["space"]
                if here and _TYPES.index(kind) < _TYPES.index(cursor["type"]):
                    continue
                start, previous = (cursor["start"], set(cursor["prev"])) if here and kind == cursor["type"] else (0, set())
                while True:
                    page = self.client.page_of(self.client.request("/rest/api/content", {
                        "spaceKey": space_key, "type": kind, "status": "current", "expand": expand,
                        "limit": self.page_size, "start": start}))
                    for raw in page.results:
                        if isinstance(raw, dict) and str(raw.get("id")) in previous:
                            continue  # seen on the previous, overlapping result page
                        for result in self._items(raw, spaces, with_attachments=True):
                            if isinstance(result, DocumentInput) and result.updated_at and watermark and \
                                    result.updated_at >= watermark - self.overlap - timedelta(minutes=1):
                                # The next incremental's overlap would read it again: remember its version.
                                recent[result.external_id] = [_version(raw, result.external_id),
                                                              result.updated_at.isoformat()]
                            yield result
                    if not page.next_path or not page.results:
                        break
                    step = len(page.results)
                    start += step - _PAGE_OVERLAP if step > 2 * _PAGE_OVERLAP else step
                    previous = {str(r.get("id")) for r in page.results if isinstance(r, dict)}
                    yield self._checkpoint({**cursor, "space": space_key, "type": kind, "start": start,
                                            "prev": sorted(previous), "recent": recent})
                following = _TYPES[_TYPES.index(kind) + 1] if kind != _TYPES[-1] else None
                yield self._checkpoint({**cursor, "space": space_key, "type": following, "start": 0, "prev": [],
                                        "recent": recent})
        yield self._checkpoint({"phase": "incremental", "since": cursor["watermark"], "recent": recent, "trashed": []})

    def _incremental(self, cursor: dict):
        spaces = self._spaces()
        since = parse_when(cursor.get("since"))
        recent: dict[str, list] = dict(cursor.get("recent") or {})
        trashed = list(cursor.get("trashed") or [])
        cql = self._cql_scope(spaces)
        if since is not None:
            bound = (since - self.overlap).astimezone(self.timezone).strftime("%Y-%m-%d %H:%M")
            cql += f' AND lastmodified >= "{bound}"'
        params = {"cql": cql + " ORDER BY lastmodified ASC", "limit": self.page_size,
                  "expand": _CONTENT + ",container"}
        watermark = since
        for page in self.client.pages("/rest/api/content/search", params):
            for raw in page.results:
                if isinstance(raw, dict):
                    key, number = str(raw.get("id")), (raw.get("version") or {}).get("number")
                    if key in recent and recent[key][0] == number:
                        continue  # applied already, in the overlap of a previous run
                yield from self._items(raw, spaces, with_attachments=False)
                try:
                    item = item_of(raw)
                except MalformedContent:
                    continue
                if item.when is not None:
                    watermark = max(watermark, item.when) if watermark else item.when
                    recent[item.id] = [item.version, item.when.isoformat()]
            recent = _recent_within(recent, watermark, self.overlap)
            yield self._checkpoint({"phase": "incremental", "since": watermark.isoformat() if watermark else None,
                                    "recent": recent, "trashed": trashed})
        now_trashed = []
        for space_key in sorted(spaces):
            for kind in _TYPES:
                for raw in self.client.all_results("/rest/api/content", {
                        "spaceKey": space_key, "type": kind, "status": "trashed", "limit": self.page_size,
                        "expand": "children.attachment" if self.include_attachments else ""}):
                    if not isinstance(raw, dict) or raw.get("id") in (None, ""):
                        continue
                    gone = [str(raw["id"]), *(str(a.get("id")) for a in
                                               (((raw.get("children") or {}).get("attachment") or {}).get("results") or [])
                                               if isinstance(a, dict) and a.get("id"))]
                    now_trashed.extend(gone)
        already = set(trashed)
        for external_id in now_trashed:
            if external_id not in already:
                yield DocumentDeleted(external_id)
        yield self._checkpoint({"phase": "incremental", "since": watermark.isoformat() if watermark else None,
                                "recent": recent, "trashed": sorted(set(now_trashed))})

    def reload(self, external_ids: list[str]):
        spaces = self._spaces()
        for external_id in external_ids:
            try:
                raw = self.client.request(f"/rest/api/content/{external_id}", {"expand": _CONTENT + ",container"})
            except ConfluenceNotFound:
                yield DocumentDeleted(external_id)
                continue
            except ConfluenceUnavailable as error:
                yield DocumentFailure(external_id, f"reading failed: {error}")
                continue
            yield from self._items(raw, spaces, with_attachments=False)

    # -- permission sync -----------------------------------------------------------------------
    def access_lists(self):
        spaces = self._spaces()
        expand = _ACCESS + ",space" + (",children.attachment" if self.include_attachments else "")
        for space_key in sorted(spaces):
            for kind in _TYPES:
                for page in self.client.pages("/rest/api/content", {"spaceKey": space_key, "type": kind,
                                                                    "status": "current", "expand": expand,
                                                                    "limit": self.page_size}):
                    for raw in page.results:
                        yield from self._access_of(raw, spaces[space_key])

    def _access_of(self, raw: object, space: SpaceAccess):
        if not isinstance(raw, dict) or raw.get("id") in (None, ""):
            yield DocumentFailure("unidentified item", "malformed: a listed item without an id", retryable=False)
            return
        external_id = str(raw["id"])
        try:
            principals = self.access.principals(space, self.access.levels(raw))
        except MalformedAccess as error:
            yield DocumentFailure(external_id, f"malformed: {error}", revoke_access=True)
            return
        # The space it is listed in is where it lives now: a page moved to another space is moved
        # here, minutes after the move (a move does not change ``lastmodified``).
        place = space_place(space.key, space.name)
        yield AccessChanged(external_id, principals, place)
        if self.include_attachments:
            try:
                item = Item(external_id, str(raw.get("type")), str(raw.get("title")), 0, None, raw)
                attachments = list(self._attachments_of(item))
            except ConfluenceNotFound:
                return  # deleted meanwhile; the content sync reports it
            for attachment in attachments:
                if isinstance(attachment, dict) and attachment.get("id"):
                    yield AccessChanged(str(attachment["id"]), principals, place)


def _malformed(error: MalformedContent) -> DocumentFailure:
    if error.external_id:
        # Read again next run (``reload``), where it may well come back whole.
        return DocumentFailure(error.external_id, f"malformed: {error}")
    return DocumentFailure("unidentified item", f"malformed: {error}", retryable=False)


def _version(raw: dict, external_id: str) -> int | None:
    """The version of ``external_id``: the page's own, or one of its expanded attachments'."""
    if str(raw.get("id")) == external_id:
        return (raw.get("version") or {}).get("number")
    for attachment in (((raw.get("children") or {}).get("attachment") or {}).get("results") or []):
        if isinstance(attachment, dict) and str(attachment.get("id")) == external_id:
            return (attachment.get("version") or {}).get("number")
    return None


def _recent_within(recent: dict[str, list], watermark: datetime | None, overlap: timedelta) -> dict[str, list]:
    if watermark is None:
        return recent
    floor = watermark - overlap - timedelta(minutes=1)  # CQL bounds are whole minutes
    kept = {key: value for key, value in recent.items() if (parse_when(value[1]) or datetime.min.replace(tzinfo=UTC)) >= floor}
    if len(kept) > _RECENT_LIMIT:  # re-reading costs a hash comparison; an unbounded cursor costs more
        kept = dict(sorted(kept.items(), key=lambda pair: pair[1][1])[-_RECENT_LIMIT:])
    return kept


def _int_option(config: dict, name: str, default: int, low: int, high: int) -> int:
    value = config.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConnectorConfigError(f"confluence: {name} must be an integer between {low} and {high}")
    return value
