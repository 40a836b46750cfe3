"""The index outbox: how every document change reaches the index, even across a crash.

A change to a document (new content, new access list, deletion) is written to the database in one
transaction together with a ``PendingIndexChange`` naming the document. The index is written after
the commit and the record removed after that. A process that dies anywhere on the way leaves the
record behind, and the next writer of the source replays it before doing anything else
(``source_sync``, ``source_delete``, the periodic ``index_changes_replay_task``).

A record says *which* document to bring up to date, never *what* to write: replay reads the
document as the database holds it now and makes the index hold exactly that (``_reconcile``). So
the latest state always wins, several records for one document collapse into one piece of work,
and replaying twice does nothing more:
- document gone from the database: its chunks are deleted from the index;
- the index holds other chunk ids than the database (chunk rows are never edited, only replaced,
  so equal ids mean equal entries): the stored chunk texts are re-embedded (the encoder is
  deterministic) and the document's index entries replaced;
- same chunks, other principals: the access list is replaced, without re-embedding;
- same chunks, another place: the document is moved, without re-embedding.

Writers of one source hold its lock (``kbsearch.documents.locks``) while writing and replaying, so
two processes never apply different states of one document in the wrong order.
"""
import logging
from collections.abc import Iterable, Sequence

from django.db import transaction

from kbsearch.documents import faults
from kbsearch.documents.indexing import index_chunks_for
from kbsearch.documents.locks import SourceBusy, source_lock
from kbsearch.documents.models import Chunk, Document, DocumentAccess, PendingIndexChange, Source
from kbsearch.documents.places import document_place_value, place_value
from kbsearch.index.base import BaseIndexBackend, IndexChunk

logger = logging.getLogger(__name__)
# Documents reconciled together: one index read and one embedding call per batch.
_BATCH_DOCUMENTS = 64
_VERIFY_BATCH_DOCUMENTS = 500


def index_changes_record(*, documents: Iterable[tuple[int, int | None]], kind: str) -> list[int]:
    """Queue index work for ``(document id, source id)`` pairs; call inside the writing transaction."""
    records = PendingIndexChange.objects.bulk_create(
        PendingIndexChange(document_id=document_id, source_id=source_id, kind=kind)
        for document_id, source_id in documents
    )
    return [record.pk for record in records]


def index_changes_clear(record_ids: Sequence[int]) -> None:
    """Forget records whose work the index has taken (only these: later ones stay pending)."""
    PendingIndexChange.objects.filter(pk__in=list(record_ids)).delete()


def index_changes_replay(*, source_id: int | None, index: BaseIndexBackend, encoder=None) -> int:
    """Apply the pending records of one source (``None``: records of no source); returns documents done.

    The caller holds the source's lock. Records are cleared batch by batch once the index holds what
    the database holds, so a replay killed half way is resumed by the next one.
    """
    pending: dict[int, list[int]] = {}
    for record_id, document_id in PendingIndexChange.objects.filter(source_id=source_id).values_list(
        "pk", "document_id"
    ):
        pending.setdefault(document_id, []).append(record_id)
    document_ids = sorted(pending)
    failed: set[int] = set()
    for start in range(0, len(document_ids), _BATCH_DOCUMENTS):
        batch = document_ids[start : start + _BATCH_DOCUMENTS]
        encoder, batch_failed = _reconcile(batch, index, encoder)
        failed |= batch_failed
        faults.point("documents.replay.indexed")
        # A document the index refused keeps its records: the next replay tries it again.
        index_changes_clear([
            record_id for document_id in batch if document_id not in batch_failed for record_id in pending[document_id]
        ])
    if failed:
        logger.warning("the index refused chunks of %d document(s); their pending changes stay: %s",
                       len(failed), sorted(failed)[:20])
    return len(document_ids) - len(failed)


def index_changes_replay_all(*, index: BaseIndexBackend, encoder=None) -> int:
    """Replay every pending record (the periodic task); sources being written right now are skipped.

    A source that is busy is left to its current writer, which replays before it writes. Records of
    sources that no longer exist have no writer left, so they need no lock.
    """
    done = 0
    source_ids = set(PendingIndexChange.objects.values_list("source_id", flat=True).distinct())
    sources = Source.objects.in_bulk([source_id for source_id in source_ids if source_id is not None])
    for source_id in sorted(source_ids, key=lambda value: (value is None, value or 0)):
        source = sources.get(source_id)
        if source is None:
            done += index_changes_replay(source_id=source_id, index=index, encoder=encoder)
            continue
        try:
            with source_lock(source):
                done += index_changes_replay(source_id=source_id, index=index, encoder=encoder)
        except SourceBusy:
            logger.info("source %s is busy; its writer replays its pending index changes", source.key)
    return done


def documents_index_verify(*, source: Source, index: BaseIndexBackend, encoder=None) -> int:
    """Compare every document of ``source`` with what the index really holds; repair what differs.

    Chunk ids, principals and places are read back from the index (``indexed_documents``) and
    compared with the database. Documents that differ, and index entries of documents the database no longer has,
    are queued in the outbox and replayed at once. Returns the number of documents repaired.
    """
    drifted: list[int] = []
    places = {
        document_id: place_value(source.key, place_key)
        for document_id, place_key in Document.objects.filter(source=source).order_by("pk").values_list("pk", "place_key")
    }
    document_ids = list(places)
    for start in range(0, len(document_ids), _VERIFY_BATCH_DOCUMENTS):
        batch = document_ids[start : start + _VERIFY_BATCH_DOCUMENTS]
        chunks, access = _stored_chunk_ids(batch), _stored_access(batch)
        held = index.indexed_documents(batch)
        for document_id in batch:
            wanted_chunks = chunks.get(document_id, frozenset())
            entry = held.get(document_id)
            held_chunks = entry.chunk_ids if entry else frozenset()
            if held_chunks != wanted_chunks or (wanted_chunks and (
                entry.principals != access.get(document_id, frozenset()) or entry.places != {places[document_id]}
            )):
                drifted.append(document_id)
    # Index entries whose document row is gone: a deletion the index never took. Ids are never
    # reused, so whichever source they came from, deleting them is right. Read a batch at a time:
    # the index may hold millions of documents.
    for in_index in index.iter_document_ids(batch_size=_VERIFY_BATCH_DOCUMENTS):
        known = set(Document.objects.filter(pk__in=in_index).values_list("pk", flat=True))
        drifted.extend(document_id for document_id in in_index if document_id not in known)
    if not drifted:
        return 0
    logger.warning("index out of step with the database for %d document(s) of %s; repairing", len(drifted), source.key)
    with transaction.atomic():
        index_changes_record(documents=[(document_id, source.pk) for document_id in drifted], kind="repair")
    index_changes_replay(source_id=source.pk, index=index, encoder=encoder)
    return len(drifted)


def _stored_chunk_ids(document_ids: Sequence[int]) -> dict[int, frozenset[int]]:
    found: dict[int, set[int]] = {}
    for chunk_id, document_id in Chunk.objects.filter(document_id__in=document_ids).values_list("pk", "document_id"):
        found.setdefault(document_id, set()).add(chunk_id)
    return {document_id: frozenset(ids) for document_id, ids in found.items()}


def _stored_access(document_ids: Sequence[int]) -> dict[int, frozenset[str]]:
    found: dict[int, set[str]] = {}
    for document_id, principal in DocumentAccess.objects.filter(document_id__in=document_ids).values_list(
        "document_id", "principal"
    ):
        found.setdefault(document_id, set()).add(principal)
    return {document_id: frozenset(principals) for document_id, principals in found.items()}


def _reconcile(document_ids: Sequence[int], index: BaseIndexBackend, encoder) -> tuple[object, set[int]]:
    """Make the index hold exactly what the database holds for these documents; returns the encoder
    and the documents whose chunks the index refused (``ItemFailure``s).

    The encoder is loaded only when something must be re-embedded (deletions and access changes
    never need it).
    """
    documents = Document.objects.select_related("source").in_bulk(list(document_ids))
    gone = [document_id for document_id in document_ids if document_id not in documents]
    if gone:
        index.delete_documents(gone)
    if not documents:
        return encoder, set()
    chunks: dict[int, list[Chunk]] = {}
    for chunk in Chunk.objects.filter(document_id__in=list(documents)).order_by("document_id", "ordinal"):
        chunks.setdefault(chunk.document_id, []).append(chunk)
    access = _stored_access(list(documents))
    held = index.indexed_documents(list(documents))
    stale: list[Document] = []
    access_changed: dict[int, frozenset[str]] = {}
    moved: dict[int, str] = {}
    for document_id, document in documents.items():
        wanted = frozenset(chunk.pk for chunk in chunks.get(document_id, []))
        principals = access.get(document_id, frozenset())
        entry = held.get(document_id)
        if (entry.chunk_ids if entry else frozenset()) != wanted:
            stale.append(document)
            continue
        if wanted and entry.principals != principals:
            access_changed[document_id] = principals
        if wanted and entry.places != {document_place_value(document)}:
            moved[document_id] = document_place_value(document)
    if access_changed:
        index.update_access_many(access_changed).raise_for_failures()
    if moved:
        index.update_places_many(moved).raise_for_failures()
    if not stale:
        return encoder, set()
    if encoder is None:
        from embeddings.loading import encoder_for

        encoder = encoder_for(index.serving_metadata())  # the serving generation's model
    index.ensure_index(metadata=encoder.index_metadata)
    texts = [chunk.text for document in stale for chunk in chunks.get(document.pk, [])]
    vectors = encoder.encode_passages(texts) if texts else []
    entries: list[IndexChunk] = []
    start = 0
    for document in stale:
        document_chunks = chunks.get(document.pk, [])
        entries.extend(
            index_chunks_for(
                document=document,
                chunks=document_chunks,
                vectors=vectors[start : start + len(document_chunks)],
                principals=access.get(document.pk, frozenset()),
            )
        )
        start += len(document_chunks)
    index.delete_documents([document.pk for document in stale])
    result = index.upsert_chunks(entries)
    return encoder, {failure.document_id for failure in result.failures}
