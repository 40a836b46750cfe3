"""Index backends, chosen by a dotted path in ``settings.KBSEARCH_INDEX`` the way Django picks caches."""
import threading

from django.conf import settings
from django.utils.module_loading import import_string

from kbsearch.index.base import BaseIndexBackend

_lock = threading.Lock()
_backend: BaseIndexBackend | None = None


def get_index_backend() -> BaseIndexBackend:
    """Return the process-wide index backend configured in settings."""
    global _backend
    with _lock:
        if _backend is None:
            config = settings.KBSEARCH_INDEX
            backend_class = import_string(config["BACKEND"])
            _backend = backend_class(**config.get("OPTIONS", {}))
        return _backend


def reset_index_backend() -> None:
    """Close and forget the configured backend (tests, settings changes)."""
    global _backend
    with _lock:
        if _backend is not None:
            _backend.close()
        _backend = None
