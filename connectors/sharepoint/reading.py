"""Reading one library file or one site page into what the sync service applies.

``ItemReader.file_items(library, raw)`` turns a driveItem (from delta or a direct GET) into a
``DocumentInput`` (text through ``kbsearch.ingest.extract.blocks_from_file``, principals from the
item's permissions), preceded by an ``ItemNotice`` when it has anonymous links; or into a
``DocumentDeleted`` when the item vanished between the listing and the fetch (404); or into a
``DocumentFailure``: a file with no readable text is not retryable (the same bytes fail the same
way), while an item whose permissions could not be read is retryable and hidden meanwhile (fail
closed). When only the content failed, the fresh access list is still applied (``AccessChanged``).

A file's place (the ``place`` facet and filter) is its library: the drive id, stable across
renames, labelled ``site > library``; a site page's is the site's pages, ``site > Site Pages``. The
title keeps the whole path, ``site > library > folder > name``, which shows in results and is
ranked like any title words.
"""
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

from connectors.base import AccessChanged, DocumentDeleted, DocumentFailure, ItemNotice
from connectors.sharepoint.client import GraphClient, GraphError, GraphNotFound, GraphUnauthorized
from connectors.sharepoint.permissions import IdentityPolicy, item_access
from kbsearch.ingest.extract import ExtractionFailed, blocks_from_file
from kbsearch.ingest.inputs import DocumentInput, Place
from kbsearch.ingest.parsers import Block, blocks_from_html

PATH_SEPARATOR = " > "


def item_external_id(drive_id: str, item_id: str) -> str:
    return f"item:{drive_id}:{item_id}"


def page_external_id(site_id: str, page_id: str) -> str:
    return f"page:{site_id}:{page_id}"


@dataclass
class Library:
    """A document library being read: its names for titles, and its folders' paths by id."""

    site_id: str
    site_name: str
    drive_id: str
    name: str
    folders: dict[str, tuple[str, ...]] = field(default_factory=dict)


def library_place(library: Library) -> Place:
    return Place(key=library.drive_id, label=PATH_SEPARATOR.join((library.site_name, library.name)))


def pages_place(site: dict) -> Place:
    # "pages:" cannot be a drive id (those start with "b!"), so a site's pages never share a key with a library.
    return Place(key=f"pages:{site['id']}", label=PATH_SEPARATOR.join((site_title(site), "Site Pages")))


def malformed_reason(raw: object) -> str | None:
    """Why a delta entry cannot be read, or None when it has the shape of a driveItem."""
    if not isinstance(raw, dict):
        return "not a JSON object"
    if not isinstance(raw.get("id"), str) or not raw["id"]:
        return "no id"
    if "deleted" in raw:
        return None
    if not isinstance(raw.get("name"), str):
        return "no name"
    for facet in ("file", "folder", "parentReference"):
        if facet in raw and not isinstance(raw[facet], dict):
            return f"{facet} is not an object"
    return None


class ItemReader:
    def __init__(self, client: GraphClient, policy: IdentityPolicy) -> None:
        self.client = client
        self.policy = policy
        self._upns: dict[str, str | None] = {}

    # -- principals --------------------------------------------------------------------------------

    def upn_of(self, object_id: str) -> str | None:
        """A user's UPN by object id, for grants that do not carry it (cached per run)."""
        if object_id not in self._upns:
            try:
                user = self.client.get_json(f"users/{object_id}", params={"$select": "id,userPrincipalName"})
                self._upns[object_id] = user.get("userPrincipalName") or None
            except GraphNotFound:
                self._upns[object_id] = None
        return self._upns[object_id]

    def access(self, drive_id: str, item_id: str):
        """The item's ``ItemAccess``; raises GraphNotFound when the item is gone."""
        permissions = list(self.client.get_pages(f"drives/{drive_id}/items/{item_id}/permissions"))
        return item_access(permissions, policy=self.policy, upn_of=self.upn_of)

    # -- folders -------------------------------------------------------------------------------------

    def folder_seen(self, library: Library, raw: dict) -> None:
        """Remember a folder's path from a delta entry (parents come before their children)."""
        if "root" in raw:
            library.folders[raw["id"]] = ()
            return
        parent = (raw.get("parentReference") or {}).get("id")
        if parent in library.folders:
            library.folders[raw["id"]] = (*library.folders[parent], raw["name"])
        else:
            library.folders.pop(raw["id"], None)  # resolved on demand

    def folder_path(self, library: Library, folder_id: str | None) -> tuple[str, ...]:
        if not folder_id:
            return ()
        if folder_id not in library.folders:
            try:
                folder = self.client.get_json(f"drives/{library.drive_id}/items/{folder_id}",
                                              params={"$select": "id,name,root,parentReference"})
            except GraphNotFound:
                return ()
            library.folders[folder_id] = () if "root" in folder else (*_path_names(folder), folder.get("name", ""))
        return library.folders[folder_id]

    # -- files ---------------------------------------------------------------------------------------

    def file_items(self, library: Library, raw: dict) -> list:
        item_id = raw["id"]
        external_id = item_external_id(library.drive_id, item_id)
        try:
            access = self.access(library.drive_id, item_id)
        except GraphNotFound:
            return [DocumentDeleted(external_id)]
        except GraphUnauthorized:
            raise
        except GraphError as error:
            return [DocumentFailure(external_id, f"permissions unreadable: {error}", revoke_access=True)]
        principals = tuple(sorted(access.principals))
        items: list = []
        if access.anonymous_links:
            items.append(ItemNotice(external_id, (
                f"{len(access.anonymous_links)} anonymous sharing link(s) (permission ids "
                f"{', '.join(access.anonymous_links)}): not indexed as public; only the item's other grants apply")))
        name = raw["name"]
        parent = raw.get("parentReference") or {}
        folders = _path_names(raw) if "path" in parent else self.folder_path(library, parent.get("id"))
        try:
            data = self._content(library.drive_id, item_id, raw.get("@microsoft.graph.downloadUrl"))
        except GraphNotFound:
            return [DocumentDeleted(external_id)]
        except GraphUnauthorized:
            raise
        except GraphError as error:
            return [*items, AccessChanged(external_id, principals), DocumentFailure(external_id, f"download: {error}")]
        media_type = str((raw.get("file") or {}).get("mimeType") or "")
        try:
            blocks = blocks_from_file(data, filename=name, media_type=media_type)
        except ExtractionFailed as error:
            return [*items, AccessChanged(external_id, principals),
                    DocumentFailure(external_id, f"no text: {error}", retryable=False)]
        title = PATH_SEPARATOR.join((library.site_name, library.name, *folders, name))
        items.append(DocumentInput(external_id=external_id, title=title, blocks=blocks, principals=principals,
                                   url=str(raw.get("webUrl") or ""), updated_at=_when(raw.get("lastModifiedDateTime")),
                                   place=library_place(library)))
        return items

    def _content(self, drive_id: str, item_id: str, download_url: str | None) -> bytes:
        if download_url:
            try:
                return self.client.download(download_url, authorized=False)
            except GraphUnauthorized:
                pass  # the pre-authenticated URL expired (they live about an hour): ask again
        return self.client.download(f"drives/{drive_id}/items/{item_id}/content", authorized=True)

    # -- site pages ----------------------------------------------------------------------------------

    def page_item(self, site: dict, page_id: str, principals: tuple[str, ...]):
        external_id = page_external_id(site["id"], page_id)
        try:
            page = self.client.get_json(f"sites/{site['id']}/pages/{page_id}/microsoft.graph.sitePage",
                                        params={"$expand": "canvasLayout"})
        except GraphNotFound:
            return DocumentDeleted(external_id)
        except GraphUnauthorized:
            raise
        except GraphError as error:
            return DocumentFailure(external_id, f"page unreadable: {error}")
        blocks = page_blocks(page)
        if not blocks:
            return DocumentFailure(external_id, "the page has no text", retryable=False)
        title = PATH_SEPARATOR.join((site_title(site), "Site Pages", str(page.get("title") or page.get("name") or "")))
        return DocumentInput(external_id=external_id, title=title, blocks=blocks, principals=principals,
                             url=str(page.get("webUrl") or ""), updated_at=_when(page.get("lastModifiedDateTime")),
                             place=pages_place(site))


def site_title(site: dict) -> str:
    return str(site.get("displayName") or site.get("name") or site.get("id"))


def page_blocks(page: dict) -> list[Block]:
    """The text web parts of a modern page, in reading order, as blocks."""
    layout = page.get("canvasLayout") or {}
    sections = list(layout.get("horizontalSections") or [])
    if layout.get("verticalSection"):
        sections.append({"columns": [layout["verticalSection"]]})
    blocks: list[Block] = []
    for section in sections:
        for column in section.get("columns") or []:
            for part in column.get("webparts") or []:
                if isinstance(part, dict) and isinstance(part.get("innerHtml"), str):
                    blocks.extend(b for b in blocks_from_html(part["innerHtml"]) if b.text.strip())
    return blocks


def _path_names(raw: dict) -> tuple[str, ...]:
    """Folder names from ``parentReference.path`` (``/drives/{id}/root:/A/B``), when Graph sends it."""
    path = str((raw.get("parentReference") or {}).get("path") or "")
    inside = path.split("root:", 1)[1] if "root:" in path else ""
    return tuple(unquote(part) for part in inside.split("/") if part)


def _when(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
