"""The connector seam: a small base class plus capability mixins, registered by key.

A connector declares what it can do by the mixins it inherits, and the sync service picks the
cheapest way to bring a source up to date:
- ``FullLoadMixin``: every document, for a first sync or a full resync.
- ``PollMixin``: documents changed in a time window, for incremental syncs.
- ``CheckpointMixin``: a full load that can resume where a previous, interrupted run stopped.
- ``IdListingMixin``: the ids of every document, cheaply, so deletions can be pruned.

Loads yield ``DocumentInput``s, and ``DocumentFailure``s for items that exist but cannot be read, so
one bad item never hides the others (nor gets its document deleted as if it had vanished).
"""
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from kbsearch.ingest.inputs import DocumentInput


class ConnectorConfigError(ValueError):
    """The source's connector configuration is unusable; the message says how."""


class ConnectorError(RuntimeError):
    """The source failed as a whole (unreachable, unauthorised); nothing is pruned after it."""


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


LoadItem = DocumentInput | DocumentFailure

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

    def __init__(self, *, config: dict, state: dict | None = None) -> None:
        self.config = dict(config)
        # What the connector remembers between runs (a listing, a cursor): loaded from
        # ``Source.checkpoint`` and saved back only after a run completed, so a failed run is redone
        # from the last good state.
        self.state = dict(state or {})
        self.validate_config()

    def validate_config(self) -> None:
        """Raise ConnectorConfigError when the configuration cannot work."""
        raise NotImplementedError


class FullLoadMixin:
    def load_all(self) -> Iterator[LoadItem]:
        """Yield every document of the source."""
        raise NotImplementedError


class PollMixin:
    def poll(self, *, start: datetime, end: datetime) -> Iterator[LoadItem]:
        """Yield documents created or changed (content or permissions) in [start, end)."""
        raise NotImplementedError


class CheckpointMixin:
    def load_from_checkpoint(self, checkpoint: dict) -> Iterator[tuple[LoadItem | None, dict]]:
        """Yield (item, checkpoint to resume after it); start over when ``checkpoint`` is empty."""
        raise NotImplementedError


class IdListingMixin:
    def list_ids(self) -> Iterator[str]:
        """Yield the external id of every document the source has now."""
        raise NotImplementedError
