"""Writing ingested documents a batch at a time, with the embedding of one batch overlapping the rest.

``documents_ingest`` (``services``) prepares documents one by one (hash, chunks) and hands them
over in batches of growing size (``batch_targets``: 64 chunks, then up to 256). Per batch:
1. the chunk texts are embedded on a background thread (``EmbeddingPipeline``): torch releases the
   interpreter lock while it computes, so reading, parsing and chunking the next batch and writing
   the previous one go on meanwhile instead of waiting for the model;
2. when its vectors are ready, the batch is stored in one database transaction (documents, chunks,
   access rows and one outbox record per document: ``store_batch``);
3. then applied to the index with one delete and one upsert, and the outbox records of the
   documents the index took are cleared together (``index_batch``).

The order per document is the one the outbox needs (``kbsearch.documents.outbox``): vectors first,
then the database commit with its record, then the index, then the record cleared; a crash anywhere
leaves records that the next run replays. Batching only makes the commits fewer: a transaction and
an fsync per document cost more than the model on short documents. A batch the database refuses as
a whole (one document breaking a constraint) is stored again one document per transaction, so one
bad document is reported and the others are kept, as before batching.
"""
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import connection, transaction

from kbsearch.documents import faults
from kbsearch.documents.indexing import index_chunks_for
from kbsearch.documents.models import Chunk, Document, DocumentAccess, PendingIndexChange, Source
from kbsearch.documents.outbox import index_changes_clear, index_changes_record
from kbsearch.index.base import BaseIndexBackend
from kbsearch.ingest.inputs import DocumentInput

logger = logging.getLogger(__name__)
# Chunks embedded and written together. The first batch is small so the model starts early (its
# preparation and the last batch's writes are the only parts not overlapped); each next one is twice
# as large up to the most, where sorting by length leaves little padding: with the model's batches
# of 16 mixed-kb chunks, calls of 64 pad 14% more tokens than they hold, calls of 256 5%.
FIRST_BATCH_CHUNKS = 64
MAX_BATCH_CHUNKS = 256


def batch_targets() -> Iterator[int]:
    """Chunks to gather for each batch in turn: 64, 128, 256, 256, ..."""
    target = FIRST_BATCH_CHUNKS
    while True:
        yield target
        target = min(2 * target, MAX_BATCH_CHUNKS)


@dataclass
class PreparedDocument:
    """A new or changed document, validated, hashed and chunked, ready to embed and store."""

    item: DocumentInput
    body: str
    content_hash: str
    principals: frozenset[str]
    language: str
    place: tuple[str, str]  # (key, label); ("", "") for none
    chunk_texts: list[str] = field(default_factory=list)
    chunk_headings: list[list[str]] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)


@dataclass
class Stored:
    """A document as committed: its rows and the outbox record announcing it."""

    prepared: PreparedDocument
    document: Document
    chunks: list[Chunk]
    created: bool
    record_id: int


@dataclass
class Outcome:
    """What became of one document of a batch (``services`` turns these into the report)."""

    prepared: PreparedDocument
    created: bool | None = None  # None: not stored
    error: str = ""
    retryable: bool = False


class EmbeddingPipeline:
    """Embeds each submitted batch on a background thread and hands it to ``write`` with its vectors.

    Submitting batch N queues its embedding, then writes batch N-1 (waiting for its vectors if
    need be) while N is embedded; ``finish`` writes the last. ``write`` runs on the caller's thread,
    so database work stays on the caller's connection and transactions. Batches are written in
    the order submitted.
    """

    # False embeds on the caller's thread, each batch written before the next is prepared (for
    # measuring what the overlap gains: bench/bench_ingest.py --no-overlap).
    overlap = True

    def __init__(self, encoder, write: Callable[[list[PreparedDocument], object], None]) -> None:
        self._encoder = encoder
        self._write = write
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbsearch-embed")
        self._in_flight: tuple[list[PreparedDocument], Future] | None = None

    def __enter__(self) -> "EmbeddingPipeline":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        # On an error, a batch still being embedded is waited for (torch cannot be interrupted)
        # and dropped; nothing of it was written.
        self._in_flight = None
        self._executor.shutdown(wait=True, cancel_futures=True)

    def submit(self, batch: list[PreparedDocument]) -> None:
        texts = [text for prepared in batch for text in prepared.chunk_texts]
        if not self.overlap:
            self._write(batch, self._encoder.encode_passages(texts))
            return
        future = self._executor.submit(self._encoder.encode_passages, texts)
        previous, self._in_flight = self._in_flight, (batch, future)
        if previous is not None:
            self._write(previous[0], previous[1].result())

    def finish(self) -> None:
        if self._in_flight is not None:
            batch, future = self._in_flight
            self._in_flight = None
            self._write(batch, future.result())


def store_batch(batch: Sequence[PreparedDocument], source: Source) -> tuple[list[Stored], list[Outcome]]:
    """Commit a batch's documents with their outbox records; returns those stored and those that failed.

    One transaction for the batch; if the database refuses it, one per document, so a document that
    cannot be stored fails alone.
    """
    if connection.features.can_return_rows_from_bulk_insert:
        try:
            return _store_together(batch, source), []
        except Exception:  # noqa: BLE001 - any refusal: find the document responsible, one at a time
            logger.info("storing %d documents of %s together failed; storing them one at a time",
                        len(batch), source.key, exc_info=True)
    stored: list[Stored] = []
    failed: list[Outcome] = []
    for prepared in batch:
        try:
            stored.append(store_one(prepared, source))
        except Exception as error:  # one failing document must not lose the rest of the batch
            logger.exception("storing %s failed", prepared.item.external_id)
            failed.append(Outcome(prepared, error=f"storing failed: {error}", retryable=True))
    return stored, failed


def _fill(document: Document, prepared: PreparedDocument, source: Source) -> None:
    item = prepared.item
    document.source = source  # already in hand; the index entries read its key
    document.title = item.display_title[:1024]
    document.url = item.url[:2048]
    document.language = prepared.language
    document.body = prepared.body
    document.content_hash = prepared.content_hash
    document.source_updated_at = item.updated_at
    document.place_key, document.place_label = prepared.place


def _new_chunks(document: Document, prepared: PreparedDocument) -> list[Chunk]:
    return [
        Chunk(document=document, ordinal=i, text=text, heading_path=heading, token_count=tokens)
        for i, (text, heading, tokens) in enumerate(
            zip(prepared.chunk_texts, prepared.chunk_headings, prepared.chunk_tokens, strict=True)
        )
    ]


def _new_state(existing: Document | None, prepared: PreparedDocument, source: Source) -> tuple[Document, bool]:
    """The document row as ``prepared`` leaves it (unsaved), and whether it is new."""
    document = existing or Document(source=source, external_id=prepared.item.external_id)
    if existing is not None and existing.content_hash != prepared.content_hash:
        document.version += 1
    _fill(document, prepared, source)
    return document, existing is None


def store_one(prepared: PreparedDocument, source: Source) -> Stored:
    """Write one document's new state and its outbox record in one transaction."""
    with transaction.atomic():
        existing = (
            Document.objects.select_for_update().filter(source=source, external_id=prepared.item.external_id).first()
        )
        document, created = _new_state(existing, prepared, source)
        document.save()
        document.chunks.all().delete()
        chunks = Chunk.objects.bulk_create(_new_chunks(document, prepared))
        access_rows_replace(document, prepared.principals)
        (record_id,) = index_changes_record(documents=[(document.pk, source.pk)], kind=PendingIndexChange.Kind.UPSERT)
    if any(chunk.pk is None for chunk in chunks):  # backends without RETURNING
        chunks = list(document.chunks.order_by("ordinal"))
    return Stored(prepared, document, chunks, created, record_id)


def _store_together(batch: Sequence[PreparedDocument], source: Source) -> list[Stored]:
    """``store_one`` for a whole batch in a handful of statements (needs RETURNING for the new ids)."""
    with transaction.atomic():
        found = {
            document.external_id: document
            for document in Document.objects.select_for_update().filter(
                source=source, external_id__in=[prepared.item.external_id for prepared in batch]
            )
        }
        documents: list[tuple[PreparedDocument, Document, bool]] = []
        for prepared in batch:
            # A repeated id is a new row, which the database refuses.
            document, created = _new_state(found.pop(prepared.item.external_id, None), prepared, source)
            documents.append((prepared, document, created))
        Document.objects.bulk_create([document for _, document, created in documents if created])
        changed = [document for _, document, created in documents if not created]
        for document in changed:
            document.save()  # not bulk_update: it would skip updated_at (auto_now)
        if changed:
            Chunk.objects.filter(document__in=changed).delete()
        chunks = [_new_chunks(document, prepared) for prepared, document, _ in documents]
        Chunk.objects.bulk_create([chunk for rows in chunks for chunk in rows])
        _access_rows_replace_many([(document, prepared.principals) for prepared, document, _ in documents], changed)
        record_ids = index_changes_record(
            documents=[(document.pk, source.pk) for _, document, _ in documents], kind=PendingIndexChange.Kind.UPSERT
        )
    return [
        Stored(prepared, document, rows, created, record_id)
        for (prepared, document, created), rows, record_id in zip(documents, chunks, record_ids, strict=True)
    ]


def access_rows_replace(document: Document, principals: frozenset[str]) -> None:
    DocumentAccess.objects.filter(document=document).exclude(principal__in=principals).delete()
    existing = set(DocumentAccess.objects.filter(document=document).values_list("principal", flat=True))
    DocumentAccess.objects.bulk_create(
        DocumentAccess(document=document, principal=p) for p in sorted(principals - existing)
    )


def _access_rows_replace_many(
    wanted: list[tuple[Document, frozenset[str]]], existing_documents: list[Document]
) -> None:
    """``access_rows_replace`` for many documents: one read, one delete, one insert."""
    held: dict[int, dict[str, int]] = {}
    for pk, document_id, principal in DocumentAccess.objects.filter(document__in=existing_documents).values_list(
        "pk", "document_id", "principal"
    ):
        held.setdefault(document_id, {})[principal] = pk
    stale: list[int] = []
    missing: list[DocumentAccess] = []
    for document, principals in wanted:
        rows = held.get(document.pk, {})
        stale.extend(pk for principal, pk in rows.items() if principal not in principals)
        missing.extend(DocumentAccess(document=document, principal=p) for p in sorted(principals - rows.keys()))
    if stale:
        DocumentAccess.objects.filter(pk__in=stale).delete()
    DocumentAccess.objects.bulk_create(missing)


def index_batch(stored: Sequence[Stored], vectors, index: BaseIndexBackend) -> tuple[list[Outcome], int]:
    """Apply stored documents to the index with their vectors (``vectors`` holds every chunk of
    ``stored`` in order), then clear the records of those the index took whole; returns each
    document's outcome and the chunks written.

    A document the index refused chunks of keeps its record, so the outbox retries it; an index
    error propagates (the index is down for every document alike) and leaves every record.
    """
    if not stored:
        return [], 0
    faults.point("documents.store.committed")
    index.delete_documents([entry.document.pk for entry in stored])
    faults.point("documents.store.index_cleared")
    entries = []
    start = 0
    for entry in stored:
        count = len(entry.chunks)
        entries.extend(index_chunks_for(
            document=entry.document, chunks=entry.chunks, vectors=vectors[start : start + count],
            principals=entry.prepared.principals,
        ))
        start += count
    result = index.upsert_chunks(entries)
    faults.point("documents.store.indexed")
    refused: dict[int, list] = {}
    for failure in result.failures:
        refused.setdefault(failure.document_id, []).append(failure)
    index_changes_clear([entry.record_id for entry in stored if entry.document.pk not in refused])
    outcomes = []
    for entry in stored:
        failures = refused.get(entry.document.pk, [])
        outcome = Outcome(entry.prepared, created=entry.created)
        if failures:
            reasons = "; ".join(sorted({failure.reason for failure in failures}))
            outcome.error = f"indexing failed for {len(failures)} chunk(s): {reasons}"
            outcome.retryable = any(failure.retryable for failure in failures)
        outcomes.append(outcome)
    return outcomes, result.written


def vectors_for(stored: Sequence[Stored], batch: Sequence[PreparedDocument], vectors):
    """The rows of ``vectors`` (one per chunk of ``batch``) that belong to the documents ``stored``."""
    if len(stored) == len(batch):
        return vectors
    offsets: dict[int, tuple[int, int]] = {}
    start = 0
    for prepared in batch:
        offsets[id(prepared)] = (start, start + len(prepared.chunk_texts))
        start += len(prepared.chunk_texts)
    return [vectors[row] for entry in stored for row in range(*offsets[id(entry.prepared)])]
