"""The connector seam: a small base class plus capability mixins, registered by key.

A connector declares what it can do by the mixins it inherits, and the sync service picks the
cheapest way to bring a source up to date:
- ``FullLoadMixin``: every document, for a first sync or a full resync.
- ``PollMixin``: documents changed in a time window, for incremental syncs.
- ``IdListingMixin``: the ids of every document, cheaply, so deletions can be pruned.
- ``CursorMixin``: changes since an opaque cursor (a Graph delta link, a CQL position), with
  checkpoints along the way: a killed run resumes from the last one, the next run starts from the
  last one. The source reports deletions and permission-only changes itself.
- ``PermissionSyncMixin``: every document's access list and nothing else, cheap enough to run more
  often than content syncs, so restrictions inherited from ancestors and group changes at the
  source apply quickly and without re-embedding.

Loads yield ``DocumentInput``s, and ``DocumentFailure``s for items that exist but cannot be read, so
one bad item never hides the others (nor gets its document deleted as if it had vanished). Each
input names its ``Place`` (a space, a library, a top folder: the ``place`` facet). Cursor
streams also yield ``DocumentDeleted``, ``AccessChanged``, ``ItemNotice`` and ``Checkpoint``, and
raise ``ResyncRequired`` when their cursor has expired.
"""
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from kbsearch.ingest.inputs import DocumentInput, Place


class ConnectorConfigError(ValueError):
    """The source's connector configuration is unusable; the message says how."""


class ConnectorError(RuntimeError):
    """The source failed as a whole (unreachable, unauthorised); nothing is pruned after it."""


class ResyncRequired(ConnectorError):
    """The source can no longer give changes since the saved cursor (Graph's 410 ``resyncRequired``).

    Raised from ``changes`` during an incremental pass: the sync service restarts the run as a full
    pass from an empty cursor, which is the only pass that finds, and prunes, what was deleted
    while the cursor was unusable. Raised during a full pass it fails the run like any
    ``ConnectorError``.
    """


@dataclass(frozen=True)
class DocumentFailure:
    """An item that exists at the source but could not be turned into a document."""

    external_id: str
    reason: str
    # When the item's permissions could not be determined, fail closed: hide what we indexed before.
    revoke_access: bool = False
    # False when reading the item again unchanged fails the same way (binary, too large): such a
    # failure does not hold back ``Source.last_synced_at``, since a change to the item is one the
    # next poll sees anyway. True (the safe default) keeps the poll window open until it succeeds.
    retryable: bool = True


@dataclass(frozen=True)
class DocumentDeleted:
    """The source says this item is gone (Graph's ``deleted`` facet, a page moved to the trash)."""

    external_id: str


@dataclass(frozen=True)
class AccessChanged:
    """The item's content is unchanged but who may read it changed: applied without re-embedding.

    ``place``, when given, is where the item lives now (a permission sync lists it at no extra
    cost): an item moved to another space is moved without re-embedding. None: not stated, kept.
    """

    external_id: str
    principals: tuple[str, ...]
    place: Place | None = None


@dataclass(frozen=True)
class Checkpoint:
    """Everything yielded before this is the connector's whole answer up to ``cursor``.

    The sync service commits what came before, then persists ``cursor``; a run that dies later
    resumes from it. The last item of a stream must be a checkpoint: the next run's starting point.
    ``cursor`` is opaque to kbsearch but must be JSON (it is stored on the source and the run).
    """

    cursor: dict


@dataclass(frozen=True)
class ItemNotice:
    """Something an admin must know about an item that was synced anyway (an anonymous sharing
    link left out of its access list): recorded with the run's errors, not counted as a failure."""

    external_id: str
    message: str


LoadItem = DocumentInput | DocumentFailure
ChangeItem = DocumentInput | DocumentFailure | DocumentDeleted | AccessChanged | ItemNotice | Checkpoint

_registry: dict[str, type["BaseConnector"]] = {}


def register_connector(key: str):
    """Class decorator adding a connector to the registry under ``key``."""

    def decorator(cls: type["BaseConnector"]) -> type["BaseConnector"]:
        if key in _registry and _registry[key] is not cls:
            raise ValueError(f"connector key {key!r} is already registered to {_registry[key].__name__}")
        cls.key = key
        _registry[key] = cls
        return cls

    return decorator


def get_connector_class(key: str) -> type["BaseConnector"]:
    try:
        return _registry[key]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise ConnectorConfigError(f"unknown connector {key!r}; registered: {known}") from None


def registered_connectors() -> dict[str, type["BaseConnector"]]:
    return dict(_registry)


class BaseConnector:
    """Base class of connectors; subclasses add capability mixins."""

    key: str = ""

    def __init__(self, *, config: dict, state: dict | None = None, credentials: dict | None = None) -> None:
        self.config = dict(config)
        # Decrypted secrets (``kbsearch.documents.credentials``), kept apart from the configuration
        # so that logging or showing a configuration never shows a secret.
        self.credentials = dict(credentials or {})
        # What the connector remembers between runs (a listing, a cursor): loaded from
        # ``Source.checkpoint`` and saved back only after a run completed, so a failed run is redone
        # from the last good state.
        self.state = dict(state or {})
        self.validate_config()

    def validate_config(self) -> None:
        """Raise ConnectorConfigError when the configuration cannot work."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"  # never the credentials


class FullLoadMixin:
    def load_all(self) -> Iterator[LoadItem]:
        """Yield every document of the source."""
        raise NotImplementedError


class PollMixin:
    def poll(self, *, start: datetime, end: datetime) -> Iterator[LoadItem]:
        """Yield documents created or changed (content or permissions) in [start, end)."""
        raise NotImplementedError


class CursorMixin:
    def changes(self, *, cursor: dict) -> Iterator[ChangeItem]:
        """Yield what changed since ``cursor``; everything the source has when ``cursor`` is empty.

        Yield a ``Checkpoint`` after each batch that can be resumed from (a page of results) and
        one at the end. From an empty cursor, every current item must be yielded (as a document or
        a failure): the sync service deletes the documents such a full pass did not mention.
        """
        raise NotImplementedError

    def reload(self, external_ids: list[str]) -> Iterator["LoadItem | DocumentDeleted"]:
        """Read these items again (they failed retryably before): a document, a failure or a deletion each."""
        raise NotImplementedError


class PermissionSyncMixin:
    def access_lists(self) -> Iterator["AccessChanged | DocumentFailure"]:
        """Yield the current access list of every item (ids and principals only, no content)."""
        raise NotImplementedError


class IdListingMixin:
    def list_ids(self) -> Iterator[str]:
        """Yield the external id of every document the source has now."""
        raise NotImplementedError
