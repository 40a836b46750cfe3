"""The SharePoint Online connector (``sharepoint``): document libraries and site pages over Graph.

Sites are the configured ones (``sites``: ids or ``host:/sites/name`` paths) or every site the
app can find (``GET /sites?search=*``). Each site's document libraries are read with
``driveItem: delta``; its modern pages by listing them and comparing eTags.

The cursor (saved by the sync service at each ``Checkpoint``) is::

    {"full": bool,                        # true while a full pass is under way
     "drives": {drive_id: link},          # the nextLink to carry on from, or the deltaLink
     "pages": {site_id: {page_id: eTag}}} # the pages last read, to find edits and deletions

A checkpoint follows every delta page and every site's pages, so a killed run resumes at the last
page it committed: following a saved deltaLink again costs one call that returns what changed
since. Delta is called with ``Prefer: deltashowsharingchanges``: without it Graph leaves
permission-only changes (an item unshared) out of app-only delta rounds. Changed files are read
again whole (content and permissions); unchanged text costs a hash comparison, not an embedding.

A 410 (``resyncRequired``) on an incremental round, a library that vanished or a site dropped
from the configuration raise ``ResyncRequired``: the sync service restarts as a full pass of the
whole source, the only pass after which it may delete the documents nobody mentioned. (Tracking
"seen" per library would save re-reading the other libraries, but the seam prunes per source.) In
a full pass a 410 on a nextLink just restarts that library's enumeration.

``access_lists`` (the permission sync) lists every file's permissions without downloading
anything, so sharing changes the delta rounds do not show (an ancestor's grants, Entra group
changes do not concern us: groups are mapped at query time) apply between content syncs.
"""
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
    ResyncRequired,
    register_connector,
)
from connectors.sharepoint.auth import ClientCredentials
from connectors.sharepoint.client import GraphClient, GraphError, GraphGone, GraphNotFound, GraphUnauthorized
from connectors.sharepoint.permissions import IdentityPolicy
from connectors.sharepoint.reading import (
    ItemReader,
    Library,
    item_external_id,
    library_place,
    malformed_reason,
    page_external_id,
    pages_place,
    site_title,
)

GRAPH_URL = "https://graph.microsoft.com/v1.0"
TOKEN_URL = "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
SHOW_SHARING = {"Prefer": "deltashowsharingchanges"}
_RESTARTS_PER_LIBRARY = 3


@register_connector("sharepoint")
class SharePointConnector(BaseConnector, CursorMixin, PermissionSyncMixin):
    def validate_config(self) -> None:
        config = self.config
        for key in ("tenant_id", "client_id"):
            if not isinstance(config.get(key), str) or not config[key].strip():
                raise ConnectorConfigError(f"sharepoint needs {key}")
        sites = config.get("sites") or []
        if not isinstance(sites, list) or not all(isinstance(s, str) and s.strip() for s in sites):
            raise ConnectorConfigError("sites must be a list of site ids or host:/sites/name paths (empty: all)")
        page_size = config.get("page_size", 200)
        if not isinstance(page_size, int) or not 1 <= page_size <= 999:
            raise ConnectorConfigError("page_size must be an integer from 1 to 999")
        if config.get("user_identity", "upn") not in {"upn", "email", "id"}:
            raise ConnectorConfigError("user_identity must be upn, email or id")
        if config.get("group_identity", "name") not in {"name", "id"}:
            raise ConnectorConfigError("group_identity must be name or id")
        self.policy = IdentityPolicy(
            user_identity=config.get("user_identity", "upn"), group_identity=config.get("group_identity", "name"),
            organization_links_public=bool(config.get("organization_links_public", False)),
            organization_group=str(config.get("organization_group") or "sharepoint-organization"),
        )
        self.page_size = page_size
        # Off unless asked for: Graph v1.0 gives no page permissions, so a page is given its site's;
        # a page whose own permissions were narrowed would be shown too widely (fail open).
        self.include_pages = bool(config.get("include_pages", False))
        self._client: GraphClient | None = None

    @property
    def client(self) -> GraphClient:
        """Built on first use: a source is validated (at creation) without its credentials."""
        if self._client is None:
            config = self.config
            credentials = ClientCredentials(
                token_url=config.get("token_url") or TOKEN_URL.format(tenant_id=config["tenant_id"]),
                client_id=config["client_id"], client_secret=self.credentials.get("client_secret", ""),
                private_key_pem=self.credentials.get("private_key_pem", ""),
                certificate_pem=self.credentials.get("certificate_pem", ""),
            )
            self._client = GraphClient(base_url=config.get("graph_url") or GRAPH_URL, credentials=credentials,
                                       **self.config.get("client_options", {}))
            self.reader = ItemReader(self._client, self.policy)
        return self._client

    # -- discovery -----------------------------------------------------------------------------------

    def _sites(self) -> list[dict]:
        configured = self.config.get("sites") or []
        if not configured:
            return list(self.client.get_pages("sites", params={"search": "*"}))
        sites = []
        for reference in configured:
            try:
                sites.append(self.client.get_json(f"sites/{reference.strip()}"))
            except GraphNotFound:
                raise ConnectorError(f"configured site {reference!r} not found (or not granted to the app)") from None
        return sites

    def _libraries(self, site: dict) -> list[Library]:
        drives = self.client.get_pages(f"sites/{site['id']}/drives")
        return [Library(site["id"], site_title(site), d["id"], str(d.get("name") or d["id"]))
                for d in drives if d.get("driveType", "documentLibrary") == "documentLibrary"]

    # -- changes -------------------------------------------------------------------------------------

    def changes(self, *, cursor: dict):
        self.client  # noqa: B018 - signs in before anything is read
        full = not cursor or bool(cursor.get("full"))
        state = {"full": full, "drives": dict(cursor.get("drives") or {}),
                 "pages": {k: dict(v) for k, v in (cursor.get("pages") or {}).items()}}
        live_drives, live_sites = set(), set()
        for site in self._sites():
            live_sites.add(site["id"])
            for library in self._libraries(site):
                live_drives.add(library.drive_id)
                yield from self._library_changes(library, state)
            if self.include_pages:
                yield from self._page_changes(site, state)
        vanished = (set(state["drives"]) - live_drives) | (set(state["pages"]) - live_sites)
        if vanished and not full:
            raise ResyncRequired(f"{len(vanished)} libraries or sites are gone; only a full pass can prune them")
        state["drives"] = {k: v for k, v in state["drives"].items() if k in live_drives}
        state["pages"] = {k: v for k, v in state["pages"].items() if k in live_sites}
        state["full"] = False
        yield Checkpoint(_copy(state))

    def _library_changes(self, library: Library, state: dict):
        start = self.client.url(f"drives/{library.drive_id}/root/delta") + f"?$top={self.page_size}"
        link = state["drives"].get(library.drive_id)
        fresh = link is None
        link = link or start
        restarts = 0
        while True:
            try:
                body = self.client.get_json(link, headers=SHOW_SHARING)
            except GraphGone as gone:
                if not (state["full"] or fresh):
                    raise ResyncRequired(f"the delta link of library {library.name!r} expired: {gone}") from gone
                restarts += 1
                if restarts > _RESTARTS_PER_LIBRARY:
                    raise ConnectorError(f"library {library.name!r}: delta keeps expiring mid-enumeration") from gone
                library.folders.clear()
                link = start
                continue
            for raw in body.get("value") or []:
                yield from self._delta_entry(library, raw)
            following = body.get("@odata.nextLink") or body.get("@odata.deltaLink")
            if not following:
                raise GraphError(200, "invalidDelta", "a delta page without a nextLink or a deltaLink")
            state["drives"][library.drive_id] = following
            yield Checkpoint(_copy(state))
            if "@odata.nextLink" not in body:
                return
            link = following

    def _delta_entry(self, library: Library, raw):
        problem = malformed_reason(raw)
        if problem is not None:
            item_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else "?"
            yield DocumentFailure(item_external_id(library.drive_id, item_id),
                                  f"malformed delta entry in library {library.name!r}: {problem}; skipped",
                                  retryable=False)
            return
        if "deleted" in raw:
            library.folders.pop(raw["id"], None)
            yield DocumentDeleted(item_external_id(library.drive_id, raw["id"]))
        elif "root" in raw or "folder" in raw:
            self.reader.folder_seen(library, raw)
        elif "file" in raw:
            yield from self.reader.file_items(library, raw)
        # notebooks, packages and other non-file entries hold no text of their own

    def _page_changes(self, site: dict, state: dict):
        known = state["pages"].get(site["id"], {})
        try:
            listing = list(self.client.get_pages(f"sites/{site['id']}/pages/microsoft.graph.sitePage",
                                                 params={"$select": "id,eTag,title,name"}))
        except GraphUnauthorized:
            raise
        except GraphError as error:
            raise ConnectorError(f"site pages of {site['id']} unreadable: {error}") from error
        current = {p["id"]: str(p.get("eTag")) for p in listing if isinstance(p.get("id"), str)}
        changed = [page_id for page_id, etag in current.items() if known.get(page_id) != etag]
        if changed:
            principals = self._site_principals(site)
            for page_id in changed:
                yield self.reader.page_item(site, page_id, principals)
        for page_id in set(known) - set(current):
            yield DocumentDeleted(page_external_id(site["id"], page_id))
        state["pages"][site["id"]] = current
        yield Checkpoint(_copy(state))

    def _site_principals(self, site: dict) -> tuple[str, ...]:
        """Who may read the site's pages: the grants on the root of its default library.

        Graph v1.0 has no permissions for pages; pages and the default library both inherit the
        site's permissions unless someone broke inheritance, which is not visible here.
        """
        drive = self.client.get_json(f"sites/{site['id']}/drive", params={"$select": "id"})
        root = self.client.get_json(f"drives/{drive['id']}/root", params={"$select": "id"})
        return tuple(sorted(self.reader.access(drive["id"], root["id"]).principals))

    # -- reload and permission sync ------------------------------------------------------------------

    def reload(self, external_ids: list[str]):
        self.client  # noqa: B018
        for external_id in external_ids:
            kind, _, rest = external_id.partition(":")
            container, _, item_id = rest.partition(":")
            try:
                if kind == "item":
                    yield from self._reload_file(container, item_id)
                elif kind == "page":
                    site = self.client.get_json(f"sites/{container}")
                    yield self.reader.page_item(site, item_id, self._site_principals(site))
                else:
                    yield DocumentFailure(external_id, "not an id of this connector; not read again", retryable=False)
            except GraphNotFound:
                yield DocumentDeleted(external_id)
            except GraphUnauthorized:
                raise  # the whole source is refused: fail the run
            except (GraphError, KeyError, TypeError) as error:
                # One item that still cannot be read (a 403 on it, an answer without parentReference)
                # must not fail every run from now on: it stays in the retry list, hidden meanwhile.
                yield DocumentFailure(external_id, f"reading again failed: {error!r}", revoke_access=True)

    def _reload_file(self, drive_id: str, item_id: str):
        raw = self.client.get_json(f"drives/{drive_id}/items/{item_id}")
        drive = self.client.get_json(f"drives/{drive_id}", params={"$select": "id,name"})
        site = self.client.get_json(f"sites/{raw['parentReference']['siteId']}")
        library = Library(site["id"], site_title(site), drive_id, str(drive.get("name") or drive_id))
        yield from self.reader.file_items(library, raw)

    def access_lists(self):
        self.client  # noqa: B018
        for site in self._sites():
            for library in self._libraries(site):
                link = self.client.url(f"drives/{library.drive_id}/root/delta") + (
                    f"?$top={self.page_size}&$select=id,name,file,folder,root,parentReference")
                while link:
                    body = self.client.get_json(link)
                    for raw in body.get("value") or []:
                        if malformed_reason(raw) is None and "file" in raw and "deleted" not in raw:
                            yield self._access_item(library, raw["id"])
                    link = body.get("@odata.nextLink")
            if self.include_pages:
                pages = list(self.client.get_pages(f"sites/{site['id']}/pages/microsoft.graph.sitePage",
                                                   params={"$select": "id"}))
                if pages:
                    principals = self._site_principals(site)
                    for page in pages:
                        yield AccessChanged(page_external_id(site["id"], page["id"]), principals, pages_place(site))

    def _access_item(self, library: Library, item_id: str):
        """The item's access list, and its library as its place (so a renamed site or library is
        relabelled by the next permission sync)."""
        drive_id = library.drive_id
        external_id = item_external_id(drive_id, item_id)
        try:
            return AccessChanged(external_id, tuple(sorted(self.reader.access(drive_id, item_id).principals)),
                                 library_place(library))
        except GraphNotFound:
            return AccessChanged(external_id, ())  # gone since the listing: hidden until the content sync
        except GraphUnauthorized:
            raise
        except GraphError as error:
            return DocumentFailure(external_id, f"permissions unreadable: {error}", revoke_access=True)


def _copy(state: dict) -> dict:
    return {"full": state["full"], "drives": dict(state["drives"]),
            "pages": {k: dict(v) for k, v in state["pages"].items()}}
