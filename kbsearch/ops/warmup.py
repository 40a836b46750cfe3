"""Loading the embedding model when a web worker starts, and knowing when it is loaded.

Loading the model takes 7-13 s; a search that arrived first would pay for it. gunicorn.conf.py
starts the load as each worker starts (or once in the master before the fork, with preload), and
``/readyz`` answers 503 until it is done, so a load balancer sends no search to a cold worker. A
failed load is reported by ``/readyz`` with its reason and tried again on the next probe.

The model loaded is the serving generation's (``encoder_for``: its model and precision), the one
searches encode with, and one query goes through it, so the first search finds oneDNN's kernels
built. In gunicorn's master that runs on one thread (``torch_single_threaded``): workers forked
after a multi-threaded OpenMP region would hang at their first search.
"""
import logging
import threading

logger = logging.getLogger(__name__)

_WARM_UP_QUERY = "warm-up query"


def _load_encoder() -> None:
    from embeddings.loading import encoder_for
    from kbsearch.index.registry import get_index_backend

    try:
        metadata = get_index_backend().serving_metadata()
    except Exception:  # an index that does not answer yet: /readyz reports it; load the configured model
        logger.warning("could not read the serving generation; loading the configured model", exc_info=True)
        metadata = None
    encoder_for(metadata).encode_queries([_WARM_UP_QUERY])


class EncoderWarmup:
    """One background load at a time; its outcome as ``(loaded, reason)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loaded = False
        self._error: str | None = None

    def start(self) -> bool:
        """Begin loading unless loaded or loading already; True if this call began it."""
        with self._lock:
            if self._loaded or (self._thread is not None and self._thread.is_alive()):
                return False
            self._error = None
            self._thread = threading.Thread(target=self._run, name="kbsearch-encoder-load", daemon=True)
            self._thread.start()
            return True

    def load_now(self) -> None:
        """Load in this thread, single-threaded (gunicorn's master before the fork: the workers then
        share the weights)."""
        from embeddings.encoder import torch_single_threaded

        with torch_single_threaded():
            self._run()

    def _run(self) -> None:
        try:
            _load_encoder()
        except Exception as error:  # reported by /readyz; the next probe tries again
            logger.exception("loading the embedding model failed")
            with self._lock:
                self._error = f"{type(error).__name__}: {error}"
            return
        with self._lock:
            self._loaded = True

    def status(self) -> tuple[bool, str | None]:
        with self._lock:
            if self._loaded:
                return True, None
            return False, f"model failed to load: {self._error}" if self._error else "model loading"

    def reset(self) -> None:
        """Forget the outcome (tests; a model change)."""
        with self._lock:
            self._loaded, self._error, self._thread = False, None, None


encoder_warmup = EncoderWarmup()
