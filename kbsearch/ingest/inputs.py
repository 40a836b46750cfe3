"""What a connector hands to ingest: one document's text blocks, identity and access list.

Kept free of Django so connectors, tests and benchmarks can build inputs without a database; the
documents app validates them (``kbsearch.documents.services.documents_ingest``).
"""
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from kbsearch.ingest.parsers import Block


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

    @property
    def display_title(self) -> str:
        """The title to store and show: the given one, else the external id."""
        return (self.title or "").strip() or str(self.external_id)
