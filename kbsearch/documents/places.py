"""Places: where a document lives in its source (a Confluence space, a SharePoint library, a file
share's top folder), for the ``place`` facet and filter.

A document stores its connector's ``Place`` (a stable key and a label people read). The index and
the API name it ``<source key>:<place key>``: source keys are slugs, so the first colon splits the
value unambiguously, and two sources' spaces with the same key stay apart.

A move (a Confluence page to another space) changes the key without touching the content:
``kbsearch.documents.services.document_set_place`` writes the row and an outbox record in one
transaction, then the index moves the document without re-embedding, as an access change does. A
new label for the same key (a renamed space) is the database's alone: the index holds keys only.
"""
from kbsearch.documents.models import Document, Source
from kbsearch.ingest.inputs import Place

PLACE_KEY_MAX = Document._meta.get_field("place_key").max_length
PLACE_LABEL_MAX = Document._meta.get_field("place_label").max_length
SEPARATOR = ":"
PLACE_VALUE_MAX = Source._meta.get_field("key").max_length + len(SEPARATOR) + PLACE_KEY_MAX


class InvalidPlace(ValueError):
    """A place a connector gave that cannot be stored; the message says why."""


def place_value(source_key: str, place_key: str) -> str:
    """A place as the index, facets and filters name it; ``""`` for no place."""
    return f"{source_key}{SEPARATOR}{place_key}" if place_key else ""


def document_place_value(document: Document) -> str:
    """``document``'s place as the index names it (``document.source`` is read)."""
    return place_value(document.source.key, document.place_key)


def place_split(value: str) -> tuple[str, str] | None:
    """(source key, place key) of a place value, or None when it is not shaped like one."""
    source_key, separator, place_key = value.partition(SEPARATOR)
    if not separator or not source_key or not place_key:
        return None
    return source_key, place_key


def place_fields(place: Place | None) -> tuple[str, str]:
    """(key, label) to store for a connector's place; raises ``InvalidPlace``."""
    if place is None:
        return "", ""
    key = (place.key or "").strip()
    if not key:
        raise InvalidPlace("the document's place has an empty key")
    if len(key) > PLACE_KEY_MAX:
        raise InvalidPlace(f"the document's place key is {len(key)} characters; the limit is {PLACE_KEY_MAX}")
    return key, place.display_label[:PLACE_LABEL_MAX]
