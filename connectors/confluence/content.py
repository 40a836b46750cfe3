"""Confluence content to ``DocumentInput``s: storage-format bodies to blocks, titles and paths.

Storage format is XHTML with Confluence's own elements (``ac:structured-macro``, ``ac:link``,
``ri:page`` ...). Before the HTML parser sees it, the elements that carry no reader-facing text
(macro parameters, images, emoticons, placeholders) are dropped, code macros become ``<pre>``
(their CDATA body would otherwise be skipped as markup), and a link without a body shows the title
of the page it points to. Headings are kept, so chunks carry their heading path.

Each document starts with its path, ``Space > ancestor > ... > page`` (``> file`` for an
attachment), so it is shown and ranked with where it lives, and its place is its space (key and
name: the ``place`` facet).
"""
from dataclasses import dataclass
from datetime import datetime

from bs4 import BeautifulSoup

from kbsearch.ingest.extract import blocks_from_file
from kbsearch.ingest.inputs import DocumentInput, Place
from kbsearch.ingest.parsers import Block, blocks_from_html

KINDS = ("page", "blogpost", "attachment")
_DROPPED = ("ac:parameter", "ac:image", "ac:emoticon", "ac:placeholder", "ri:attachment", "ac:inline-comment-marker-ref")


class MalformedContent(ValueError):
    """An item the API returned in a shape kbsearch cannot read (no title, a wrong type ...)."""

    def __init__(self, reason: str, external_id: str | None) -> None:
        super().__init__(reason)
        self.external_id = external_id


@dataclass(frozen=True)
class Item:
    """The fields of a content item kbsearch relies on, checked."""

    id: str
    type: str
    title: str
    version: int
    when: datetime | None
    raw: dict


def item_of(raw: object) -> Item:
    if not isinstance(raw, dict):
        raise MalformedContent(f"a listed item is {type(raw).__name__}, not an object", None)
    item_id = raw.get("id")
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or not str(item_id).strip():
        raise MalformedContent("a listed item has no id", None)
    item_id = str(item_id)
    if raw.get("type") not in KINDS:
        raise MalformedContent(f"item {item_id}: unknown type {raw.get('type')!r}", item_id)
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        raise MalformedContent(f"item {item_id}: no title", item_id)
    version = raw.get("version") or {}
    number = version.get("number") if isinstance(version, dict) else None
    if not isinstance(number, int):
        raise MalformedContent(f"item {item_id}: no version number", item_id)
    return Item(item_id, raw["type"], title, number, parse_when(version.get("when")), raw)


def parse_when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def storage_blocks(storage: str) -> list[Block]:
    """Blocks of a storage-format body, headings kept."""
    soup = BeautifulSoup(storage, "html.parser")
    for tag in soup.find_all(list(_DROPPED)):
        tag.decompose()
    for body in soup.find_all("ac:plain-text-body"):
        pre = soup.new_tag("pre")
        pre.string = body.get_text()
        body.replace_with(pre)
    for link in soup.find_all("ac:link"):
        if not link.get_text(strip=True):
            target = link.find(["ri:page", "ri:blog-post", "ri:space", "ri:user"])
            title = target.get("ri:content-title") or target.get("ri:space-key") if target else ""
            link.replace_with(title or "")
    return blocks_from_html(str(soup))


def breadcrumb(space_name: str, ancestors: list, title: str) -> str:
    titles = [a.get("title") for a in ancestors if isinstance(a, dict) and isinstance(a.get("title"), str)]
    return " > ".join([space_name, *titles, title])


def _url(base_url: str, raw: dict) -> str:
    webui = (raw.get("_links") or {}).get("webui") or ""
    return f"{base_url}{webui}" if webui else ""


def space_place(key: str, name: str) -> Place:
    """A space as a place: its key (stable; a space keeps it when renamed) and its name."""
    return Place(key=key, label=name)


def page_input(item: Item, *, space: Place, principals: tuple[str, ...], base_url: str) -> DocumentInput:
    body = ((item.raw.get("body") or {}).get("storage") or {}).get("value")
    if not isinstance(body, str):
        raise MalformedContent(f"item {item.id}: no storage body", item.id)
    path = breadcrumb(space.display_label, item.raw.get("ancestors") or [], item.title)
    blocks = [Block("paragraph", path), *storage_blocks(body)]
    return DocumentInput(external_id=item.id, title=item.title, blocks=blocks, principals=principals,
                         url=_url(base_url, item.raw), updated_at=item.when, place=space)


def attachment_input(
    item: Item, data: bytes, *, path: str, space: Place, principals: tuple[str, ...], base_url: str
) -> DocumentInput:
    """Raises ``ExtractionFailed`` for a file without honest text."""
    media_type = ((item.raw.get("metadata") or {}).get("mediaType") or
                  (item.raw.get("extensions") or {}).get("mediaType") or "")
    blocks = [Block("paragraph", path), *blocks_from_file(data, filename=item.title, media_type=media_type)]
    return DocumentInput(external_id=item.id, title=item.title, blocks=blocks, principals=principals,
                         url=_url(base_url, item.raw), updated_at=item.when, place=space)


def attachment_size(item: Item) -> int | None:
    size = (item.raw.get("extensions") or {}).get("fileSize")
    return size if isinstance(size, int) else None
