"""Writing chunk objects in batches, with per-item failures and retries of transient errors.

Writes use ``collection.data.insert_many`` (one synchronous gRPC ``BatchObjects`` call per page)
rather than the client's background ``batch.dynamic()`` context: our callers already hand us
bounded batches from Celery tasks, a synchronous call reports every failed object by its position
(``BatchObjectReturn.errors``, the same ``ErrorObject``s ``batch.failed_objects`` collects), and no
background threads are left running in web or worker processes. Objects carry deterministic uuids
(uuid5 of the chunk id), so a batch object with an existing uuid replaces it: retrying a page is
idempotent and an upsert needs no lookup.

Failures are classified by the server's message: overload, timeouts and unavailable shards are
retried with backoff (``attempts``); anything else (a wrong vector length, a bad property) is
reported at once as an ``ItemFailure`` with the server's reason and ``retryable=False``. When the
whole call fails (connection lost, or the client's "every object failed" error), every object of
the page is retried, then reported with that reason.
"""
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
from weaviate.classes.data import DataObject
from weaviate.exceptions import WeaviateBaseError
from weaviate.util import generate_uuid5

from kbsearch.index.base import BatchResult, IndexBackendError, IndexChunk, ItemFailure
from kbsearch.index.weaviate.filters import as_utc
from kbsearch.index.weaviate.schema import PLACE, TERMS, VECTOR_NAME

logger = logging.getLogger(__name__)

PAGE_SIZE = 200
ATTEMPTS = 4
_TRANSIENT_MARKERS = (
    "deadline exceeded", "timeout", "timed out", "unavailable", "connection", "too many requests",
    "resource exhausted", "resourceexhausted", "try again", "temporarily", "read-only", "readonly", "eof",
)


def chunk_uuid(chunk_id: int) -> str:
    """The object uuid of a chunk: the same in every generation, so replaces need no lookup."""
    return generate_uuid5(chunk_id, namespace="kbsearch-chunk:")


def is_transient(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _TRANSIENT_MARKERS)


def chunk_object(chunk: IndexChunk) -> DataObject:
    properties = {
        TERMS: " ".join(chunk.terms),
        "principals": sorted(chunk.principals),
        "source_key": chunk.source_key,
        "language": chunk.language,
        PLACE: chunk.place,
        "document_id": chunk.document_id,
        "chunk_id": chunk.chunk_id,
    }
    if chunk.updated_at is not None:
        properties["updated_at"] = as_utc(chunk.updated_at)
    vector = np.asarray(chunk.vector, dtype=np.float32).tolist()
    return DataObject(properties=properties, uuid=chunk_uuid(chunk.chunk_id), vector={VECTOR_NAME: vector})


def write_chunks(
    collection,
    chunks: Sequence[IndexChunk],
    *,
    page_size: int = PAGE_SIZE,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchResult:
    """Insert or replace ``chunks`` in ``collection``; every chunk is written or named in a failure."""
    written = 0
    failures: list[ItemFailure] = []
    for start in range(0, len(chunks), page_size):
        page_written, page_failures = _write_page(
            collection, list(chunks[start:start + page_size]), attempts=attempts, sleep=sleep
        )
        written += page_written
        failures.extend(page_failures)
    return BatchResult(written=written, failures=tuple(failures))


def _write_page(collection, chunks: list[IndexChunk], *, attempts: int, sleep) -> tuple[int, list[ItemFailure]]:
    pending = chunks
    written = 0
    failures: list[ItemFailure] = []
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        retry: list[IndexChunk] = []
        try:
            result = collection.data.insert_many([chunk_object(chunk) for chunk in pending])
        except WeaviateBaseError as error:
            reason = f"batch call failed: {error}".strip()
            if last or not is_transient(reason):
                failures.extend(_failure(chunk, reason, retryable=is_transient(reason)) for chunk in pending)
                return written, failures
            retry = pending
        else:
            errors = result.errors or {}
            written += len(pending) - len(errors)
            for index, error in sorted(errors.items()):
                chunk = pending[index]
                if is_transient(error.message) and not last:
                    retry.append(chunk)
                else:
                    failures.append(_failure(chunk, error.message, retryable=is_transient(error.message)))
        if not retry:
            return written, failures
        logger.warning("retrying %d chunk(s) after a transient Weaviate error (attempt %d)", len(retry), attempt)
        sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        pending = retry
    return written, failures


def _failure(chunk: IndexChunk, reason: str, *, retryable: bool) -> ItemFailure:
    return ItemFailure(chunk_id=chunk.chunk_id, document_id=chunk.document_id, reason=reason, retryable=retryable)


def raise_unless_deleted(result, what: str) -> None:
    if result.failed:
        raise IndexBackendError(f"Weaviate failed to delete {result.failed} of {result.matches} objects ({what})")
