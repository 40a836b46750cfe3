"""Loading the embedding model in the background while someone signs in.

The first search in a fresh process would otherwise wait for the model to load (over ten seconds
on a laptop for e5-small). Nobody searches before the sign-in page, so that page starts the load
on a background thread, once per process; a failure only means the first search loads it instead.
Off when ``KBSEARCH_WARM_ENCODER`` is false (tests, or a process that never serves searches).
"""
import logging
import threading

from django.conf import settings

logger = logging.getLogger(__name__)
_started = threading.Event()
_lock = threading.Lock()


def _load() -> None:
    try:
        from embeddings.loading import encoder_for
        from kbsearch.index.registry import get_index_backend

        encoder_for(get_index_backend().serving_metadata())  # the model searches will encode with
    except Exception:  # the search that needs it will report the real error
        logger.exception("preloading the embedding model failed")


def encoder_warm_in_background() -> bool:
    """Start loading the encoder unless disabled or already started; True if this call started it."""
    if not getattr(settings, "KBSEARCH_WARM_ENCODER", True) or _started.is_set():
        return False
    with _lock:
        if _started.is_set():
            return False
        _started.set()
    threading.Thread(target=_load, name="kbsearch-encoder-warmup", daemon=True).start()
    return True
