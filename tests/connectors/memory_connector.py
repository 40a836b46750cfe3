"""A connector over an in-memory dict, so tests set each item's modification time and failure exactly.

``ITEMS[name]`` maps external ids to ``Item``s; the source's config names the dict. Polling yields
the items modified in the window, as a real poll does; ``state["polls"]`` counts polls, to show when
the sync service saves the connector's state.
"""
from dataclasses import dataclass
from datetime import datetime

from connectors.base import (
    BaseConnector,
    DocumentFailure,
    FullLoadMixin,
    IdListingMixin,
    PollMixin,
    register_connector,
)
from kbsearch.ingest.inputs import DocumentInput
from kbsearch.ingest.parsers import blocks_from_text

ITEMS: dict[str, dict[str, "Item"]] = {}


@dataclass
class Item:
    text: str
    modified: datetime
    principals: tuple[str, ...] = ("public",)
    failure: str = ""  # when set, the item fails with this reason
    retryable: bool = True


@register_connector("test-memory")
class MemoryConnector(BaseConnector, FullLoadMixin, PollMixin, IdListingMixin):
    def validate_config(self) -> None:
        self.items = ITEMS.setdefault(self.config["name"], {})

    def _load(self, external_id: str, item: Item):
        if item.failure:
            return DocumentFailure(external_id, item.failure, retryable=item.retryable)
        return DocumentInput(
            external_id=external_id,
            title=external_id,
            blocks=blocks_from_text(item.text),
            principals=item.principals,
            updated_at=item.modified,
        )

    def load_all(self):
        for external_id, item in sorted(self.items.items()):
            yield self._load(external_id, item)

    def poll(self, *, start: datetime, end: datetime):
        self.state["polls"] = self.state.get("polls", 0) + 1
        for external_id, item in sorted(self.items.items()):
            if item.modified >= start:
                yield self._load(external_id, item)

    def list_ids(self):
        return iter(sorted(self.items))
