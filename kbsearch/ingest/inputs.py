"""What a connector hands to ingest: one document's text blocks, identity, access list and place.

Kept free of Django so connectors, tests and benchmarks can build inputs without a database; the
documents app validates them (``kbsearch.documents.services.documents_ingest``).
"""
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from kbsearch.ingest.parsers import Block


@dataclass(frozen=True)
class Place:
    """Where a document lives in its source, shown as a search facet and usable as a filter.

    ``key`` is stable and unique within the source (a Confluence space key, a SharePoint drive id,
    a share's top folder); ``label`` is what people read (the space's or the library's name) and
    may change without the document moving.
    """

    key: str
    label: str = ""

    @property
    def display_label(self) -> str:
        return (self.label or "").strip() or self.key


@dataclass(frozen=True)
class DocumentInput:
    """One document as a connector delivers it."""

    external_id: str
    title: str
    blocks: Sequence[Block]
    principals: Iterable[str]
    url: str = ""
    language: str | None = None
    updated_at: datetime | None = None
    place: Place | None = None  # None: the document is in no place

    @property
    def display_title(self) -> str:
        """The title to store and show: the given one, else the external id."""
        return (self.title or "").strip() or str(self.external_id)
