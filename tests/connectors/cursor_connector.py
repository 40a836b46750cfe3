"""A cursor connector over an in-memory site with a change log, as Graph delta or CQL polling behave.

``SITES[name]`` is a ``Site``: the current items and a log of changes numbered by ``seq``. From an
empty cursor the connector pages through every current item (a full pass, resumable by the last id
of each page); from ``{"seq": n}`` it pages through the latest change of each item logged after n.
A checkpoint follows each page, so tests can kill a run between pages and resume it.
"""
from dataclasses import dataclass, field

from connectors.base import (
    AccessChanged,
    BaseConnector,
    Checkpoint,
    CursorMixin,
    DocumentDeleted,
    DocumentFailure,
    PermissionSyncMixin,
    register_connector,
)
from kbsearch.ingest.inputs import DocumentInput
from kbsearch.ingest.parsers import blocks_from_text

SITES: dict[str, "Site"] = {}


@dataclass
class Item:
    text: str
    principals: tuple[str, ...] = ("public",)
    failure: str = ""  # when set, reading the item fails (retryably) with this reason


@dataclass
class Site:
    items: dict[str, Item] = field(default_factory=dict)
    log: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, "content"|"access"|"delete", id)
    page_size: int = 2
    reads: list[str] = field(default_factory=list)  # ids whose content was read, in order
    stream_ends_early: bool = False  # no checkpoint after the last page, as a broken connector would
    on_page: object = None  # called with the page number before each page is yielded
    credentials_seen: dict | None = None  # what the last connector instance was given
    connector: object = None

    @property
    def seq(self) -> int:
        return self.log[-1][0] if self.log else 0

    def put(self, external_id: str, item: Item) -> None:
        self.items[external_id] = item
        self.log.append((self.seq + 1, "content", external_id))

    def set_access(self, external_id: str, principals: tuple[str, ...]) -> None:
        self.items[external_id].principals = principals
        self.log.append((self.seq + 1, "access", external_id))

    def delete(self, external_id: str) -> None:
        del self.items[external_id]
        self.log.append((self.seq + 1, "delete", external_id))


@register_connector("test-cursor")
class CursorConnector(BaseConnector, CursorMixin, PermissionSyncMixin):
    def validate_config(self) -> None:
        self.site = SITES.setdefault(self.config["name"], Site())
        self.site.credentials_seen, self.site.connector = self.credentials, self

    def _read(self, external_id: str):
        item = self.site.items.get(external_id)
        if item is None:
            return DocumentDeleted(external_id)
        self.site.reads.append(external_id)
        if item.failure:
            return DocumentFailure(external_id, item.failure)
        return DocumentInput(
            external_id=external_id, title=external_id, blocks=blocks_from_text(item.text), principals=item.principals
        )

    def _pages(self, entries: list, cursor_after):
        for number, start in enumerate(range(0, len(entries), self.site.page_size)):
            if self.site.on_page:
                self.site.on_page(number)
            page = entries[start : start + self.site.page_size]
            yield from (item for item, _key in page)
            if self.site.stream_ends_early and start + self.site.page_size >= len(entries):
                return
            yield Checkpoint(cursor_after(page[-1][1]))

    def changes(self, *, cursor: dict):
        site = self.site
        if not cursor or cursor.get("phase") == "full":
            # A full pass: changes logged after it started are picked up by the next incremental run.
            start_seq = cursor.get("seq", site.seq) if cursor else site.seq
            after = cursor.get("after", "") if cursor else ""
            ids = [i for i in sorted(site.items) if i > after]
            entries = [(self._read(i), i) for i in ids]
            yield from self._pages(entries, lambda last: {"phase": "full", "after": last, "seq": start_seq})
            if not site.stream_ends_early:
                yield Checkpoint({"seq": start_seq})
            return
        latest: dict[str, tuple[int, str]] = {}
        for seq, kind, external_id in site.log:
            if seq > cursor["seq"]:
                previous = latest.get(external_id)
                # An access change after a content change still needs the content read.
                kind = "content" if previous and previous[1] == "content" and kind == "access" else kind
                latest[external_id] = (seq, kind)
        entries = []
        for external_id, (seq, kind) in sorted(latest.items(), key=lambda pair: pair[1][0]):
            if kind == "access" and external_id in site.items:
                item = AccessChanged(external_id, site.items[external_id].principals)
            else:
                item = self._read(external_id)
            entries.append((item, seq))
        yield from self._pages(entries, lambda seq: {"seq": seq})
        if not site.stream_ends_early:
            yield Checkpoint({"seq": site.seq})

    def reload(self, external_ids):
        for external_id in external_ids:
            yield self._read(external_id)

    def access_lists(self):
        for external_id, item in sorted(self.site.items.items()):
            yield AccessChanged(external_id, item.principals)
