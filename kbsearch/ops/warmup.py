"""Loading the embedding model when a web worker starts, and knowing when it is loaded.

Loading the model takes 7-13 s; a search that arrived first would pay for it. gunicorn.conf.py
starts the load as each worker starts (or once in the master before the fork, with preload), and
``/readyz`` answers 503 until it is done, so a load balancer sends no search to a cold worker. A
failed load is reported by ``/readyz`` with its reason and tried again on the next probe.
"""
import logging
import threading

logger = logging.getLogger(__name__)


def _load_encoder() -> None:
    from embeddings.loading import get_encoder

    get_encoder()


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
        """Load in this thread (gunicorn's master before the fork: the workers then share the weights)."""
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
