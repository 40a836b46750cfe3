"""Ingesting documents: change detection, chunking, embedding, indexing, deletion.

Connectors hand over ``DocumentInput``s; this module decides what work each needs, comparing the
source with what the database holds (content hash and access rows, written in one transaction):
- same content and same access list: nothing;
- same content, new access list: the access list is replaced in the database and the index, with no
  re-embedding;
- same content, another place (a page moved to another space; ``kbsearch.documents.places``): the
  document is moved in the database and the index, with no re-embedding (a new label alone is
  saved in the database only);
- new or changed content: chunked, embedded (in batches across documents, which is what makes ingest
  fast) and its chunks replaced.
Every change is written to the database together with an outbox record, then applied to the index,
then the record is cleared (``kbsearch.documents.outbox``): a process that dies anywhere in between
leaves work that the next run replays from the database, whatever the source did meanwhile. One bad
document is reported with its reason and the rest of the batch goes on; an index failure stops the
run (the outbox keeps the work).

A source with an identity mapping (``access.mapping``) has the principals its connector states
scoped to it (``source/<key>/group:<id>``) here, on the way in, and each identity noted so it can
be mapped to directory users and groups; a principal scoped to another source rejects the document.

Callers writing a source hold its lock (``kbsearch.documents.locks.source_lock``); ``source_sync``
and ``source_delete`` do.
"""
import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from access.mapping import source_identities_forget, source_identities_record, source_principals_scoped
from access.principals import SOURCE_SCOPE, InvalidPrincipal
from access.selectors import identity_mapping_exists
from kbsearch.documents import faults
from kbsearch.documents.ingest_batches import (
    EmbeddingPipeline,
    PreparedDocument,
    access_rows_replace,
    batch_targets,
    index_batch,
    store_batch,
    vectors_for,
)
from kbsearch.documents.locks import source_lock
from kbsearch.documents.models import Document, DocumentAccess, PendingIndexChange, Source
from kbsearch.documents.outbox import index_changes_clear, index_changes_record, index_changes_replay
from kbsearch.documents.places import InvalidPlace, document_place_value, place_fields
from kbsearch.index.base import BaseIndexBackend
from kbsearch.index.registry import get_index_backend
from kbsearch.ingest.chunking import chunk_blocks
from kbsearch.ingest.inputs import DocumentInput
from kbsearch.text.language import detect_language

logger = logging.getLogger(__name__)
# Room for the "passage: " prompt and the <s> </s> tokens inside the model's chunk budget.
_PROMPT_TOKEN_RESERVE = 8
# Items whose stored versions are looked up together (two queries per group, not per item).
_LOOKUP_BATCH = 64
_DELETE_BATCH_DOCUMENTS = 500
# How long deleting a source waits for a running sync of it to finish before giving up.
_DELETE_LOCK_WAIT_SECONDS = 30.0
# Source identities noted (created, mapped, last_seen_at) together during an ingest.
_IDENTITY_BATCH = 1000


class DocumentRejected(ValueError):
    """A document that cannot be indexed; the message says why.

    ``principals``: its access list as it would be stored, when that much was valid (None when the
    access list itself was refused). A stored earlier version of the document takes it on (or, when
    None, is hidden): a rejected new version must not leave the old, perhaps wider, access list.
    """

    def __init__(self, message: str, principals: frozenset[str] | None = None) -> None:
        super().__init__(message)
        self.principals = principals


@dataclass
class IngestReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    access_updated: int = 0
    place_updated: int = 0  # same content, moved to another place or its place renamed
    deleted: int = 0
    chunks_indexed: int = 0
    replayed: int = 0  # documents whose pending index work (left by an interrupted run) was applied
    repaired: int = 0  # documents ``--full`` found out of step in the index and repaired
    # Failures a retry could fix without any change at the source (a read error, a database error),
    # as opposed to content that is rejected the same way every time it is read.
    retryable_errors: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (external id, reason)

    def merge(self, other: "IngestReport") -> None:
        for name in (
            "created", "updated", "unchanged", "access_updated", "place_updated", "deleted", "chunks_indexed", "replayed",
            "repaired", "retryable_errors",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def principals_for_source(*, source: Source, principals: Iterable[str]) -> frozenset[str]:
    """An access list as stored for a document of ``source`` (scoped when it has an identity
    mapping); raises InvalidPrincipal."""
    mapped = identity_mapping_exists(source_key=source.key)
    return source_principals_scoped(source_key=source.key, principals=principals, mapped=mapped)


def _digest(item: DocumentInput, *, source_key: str, mapped: bool) -> PreparedDocument:
    """Validate a document and hash it; cheap, so unchanged documents cost nothing more.

    Its principals are scoped to the source when the source has an identity mapping (``mapped``).
    """
    if not item.external_id or not str(item.external_id).strip():
        raise DocumentRejected("document has no external id")
    try:
        principals = source_principals_scoped(source_key=source_key, principals=item.principals, mapped=mapped)
    except InvalidPrincipal as error:
        raise DocumentRejected(str(error)) from error
    body = "\n\n".join(block.text for block in item.blocks if block.text.strip())
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > settings.KBSEARCH_MAX_DOCUMENT_BYTES:
        raise DocumentRejected(
            f"document text is {size:,} bytes; the limit is {settings.KBSEARCH_MAX_DOCUMENT_BYTES:,} "
            "(KBSEARCH_MAX_DOCUMENT_BYTES)",
            principals,
        )
    if not body.strip():
        raise DocumentRejected("document has no text", principals)
    try:
        place = place_fields(item.place)
    except InvalidPlace as error:
        raise DocumentRejected(str(error), principals) from error
    title = item.display_title
    language = item.language or detect_language(body)
    return PreparedDocument(item, body, _sha256(f"{title}\x00{item.url}\x00{body}"), principals, language, place)


def _chunk(prepared: PreparedDocument, encoder) -> None:
    item = prepared.item
    title = item.display_title
    chunks = chunk_blocks(
        list(item.blocks),
        count_tokens=encoder.count_tokens,
        max_tokens=settings.KBSEARCH_CHUNK_TOKENS - _PROMPT_TOKEN_RESERVE,
        overlap_tokens=settings.KBSEARCH_CHUNK_OVERLAP_TOKENS,
        title=title,
    )
    if not chunks:
        raise DocumentRejected("document has no text", prepared.principals)
    prepared.chunk_texts = [chunk.text for chunk in chunks]
    prepared.chunk_headings = [list(chunk.heading_path) for chunk in chunks]
    prepared.chunk_tokens = [chunk.token_count for chunk in chunks]


def documents_ingest(
    *, source: Source, items: Iterable[DocumentInput], encoder=None, index: BaseIndexBackend | None = None
) -> IngestReport:
    """Bring the given documents of ``source`` up to date in the database and the index.

    Without ``encoder``, chunks are embedded with the serving generation's model (``encoder_for``),
    whichever model this process is configured with; ``ensure_index`` refuses any other. New and
    changed documents are embedded and written in batches, each batch's embedding overlapping the
    preparation of the next (``kbsearch.documents.ingest_batches``).
    """
    index = index or get_index_backend()
    if encoder is None:
        from embeddings.loading import encoder_for

        encoder = encoder_for(index.serving_metadata())
    index.ensure_index(metadata=encoder.index_metadata)
    report = IngestReport()
    pending: list[PreparedDocument] = []
    pending_chunks = 0
    mapped = identity_mapping_exists(source_key=source.key)
    identities: set[str] = set()

    def write(batch: list[PreparedDocument], vectors) -> None:
        _batch_write(batch, vectors, source, index, report)

    targets = batch_targets()
    target = next(targets)
    with EmbeddingPipeline(encoder, write) as pipeline:
        for group in _groups(items, _LOOKUP_BATCH):
            existing, access = _stored_versions(source, group)
            for item in group:
                prepared = _prepare(item, existing.get(item.external_id), access, source, index, mapped, encoder, report)
                if prepared is None:
                    continue
                identities.update(p for p in prepared.principals if p.startswith(SOURCE_SCOPE + "/"))
                if len(identities) >= _IDENTITY_BATCH:
                    _identities_note(source, identities)
                pending.append(prepared)
                pending_chunks += len(prepared.chunk_texts)
                if pending_chunks >= target:
                    _identities_note(source, identities)  # before the documents naming them become visible
                    pipeline.submit(pending)
                    pending, pending_chunks, target = [], 0, next(targets)
        _identities_note(source, identities)
        if pending:
            pipeline.submit(pending)
        pipeline.finish()
    return report


def _groups(items: Iterable[DocumentInput], size: int) -> Iterator[list[DocumentInput]]:
    group: list[DocumentInput] = []
    for item in items:
        group.append(item)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def _stored_versions(source: Source, group: list[DocumentInput]) -> tuple[dict[str, Document], dict[int, set[str]]]:
    """The stored documents of these items and their access lists, in two queries."""
    external_ids = [item.external_id for item in group if item.external_id]
    existing = {
        document.external_id: document
        for document in Document.objects.filter(source=source, external_id__in=external_ids)
    }
    access: dict[int, set[str]] = {document.pk: set() for document in existing.values()}
    for document_id, principal in DocumentAccess.objects.filter(document_id__in=list(access)).values_list(
        "document_id", "principal"
    ):
        access[document_id].add(principal)
    return existing, access


def _prepare(
    item: DocumentInput, existing: Document | None, access: dict[int, set[str]], source: Source,
    index: BaseIndexBackend, mapped: bool, encoder, report: IngestReport,
) -> PreparedDocument | None:
    """The item chunked for embedding, or None when nothing needs embedding (unchanged, access-only
    or place-only change, rejected: handled here)."""
    try:
        prepared = _digest(item, source_key=source.key, mapped=mapped)
        if existing is not None and existing.content_hash == prepared.content_hash:
            existing.source = source
            moved = document_set_place(document=existing, key=prepared.place[0], label=prepared.place[1], index=index)
            report.place_updated += int(moved)
            if access[existing.pk] != prepared.principals:
                document_set_access(document=existing, principals=prepared.principals, index=index, mapped=mapped)
                access[existing.pk] = set(prepared.principals)
                report.access_updated += 1
            elif not moved:
                report.unchanged += 1
            return None
        _chunk(prepared, encoder)
    except DocumentRejected as error:
        report.errors.append((str(item.external_id), str(error)))
        if existing is not None:
            _rejected_access_follow(existing, source, error.principals, index, mapped, report)
        return None
    return prepared


def _batch_write(
    batch: list[PreparedDocument], vectors, source: Source, index: BaseIndexBackend, report: IngestReport
) -> None:
    stored, failed = store_batch(batch, source)
    # Index failures propagate: the index is down for every document alike, and the outbox
    # records just committed keep the work for the next run.
    outcomes, written = index_batch(stored, vectors_for(stored, batch, vectors), index)
    report.chunks_indexed += written
    position = {id(prepared): number for number, prepared in enumerate(batch)}
    for outcome in sorted(failed + outcomes, key=lambda outcome: position[id(outcome.prepared)]):
        if outcome.error:
            report.errors.append((outcome.prepared.item.external_id, outcome.error))
            report.retryable_errors += int(outcome.retryable)
        if outcome.created is not None:
            if outcome.created:
                report.created += 1
            else:
                report.updated += 1


def _rejected_access_follow(
    document: Document, source: Source, principals: frozenset[str] | None, index, mapped: bool, report: IngestReport
) -> None:
    """The stored version of a rejected document takes the new access list, or none when it was refused."""
    wanted = principals or frozenset()
    if set(document.access.values_list("principal", flat=True)) == wanted:
        return
    document.source = source
    document_set_access(document=document, principals=wanted, index=index, mapped=mapped)
    report.access_updated += 1


def _identities_note(source: Source, identities: set[str]) -> None:
    if identities:
        source_identities_record(source_key=source.key, principals=identities)
        identities.clear()


def document_set_access(
    *, document: Document, principals: Iterable[str], index: BaseIndexBackend | None = None, mapped: bool | None = None
) -> None:
    """Replace a document's access list in the database and the index, without re-embedding.

    The principals are scoped as its source's identity mapping says (``access.mapping``; ``mapped``
    when the caller knows whether there is one); raises ``InvalidPrincipal`` for another source's.
    """
    source_key = document.source.key
    if mapped is None:
        mapped = identity_mapping_exists(source_key=source_key)
    principals = source_principals_scoped(source_key=source_key, principals=principals, mapped=mapped)
    if any(p.startswith(SOURCE_SCOPE + "/") for p in principals):
        source_identities_record(source_key=source_key, principals=principals)
    index = index or get_index_backend()
    # Database rows and outbox record together (search re-checks the rows, so a narrowing takes
    # effect at once); the index follows, and a failure there is replayed by the next run.
    with transaction.atomic():
        access_rows_replace(document, principals)
        record_ids = index_changes_record(
            documents=[(document.pk, document.source_id)], kind=PendingIndexChange.Kind.ACCESS
        )
    faults.point("documents.access.committed")
    index.update_access(document.pk, principals)
    faults.point("documents.access.indexed")
    index_changes_clear(record_ids)


def document_set_place(
    *, document: Document, key: str, label: str, index: BaseIndexBackend | None = None
) -> bool:
    """Put a stored document in the place ``key`` named ``label`` (``kbsearch.documents.places``);
    returns whether anything changed. ``document.source`` is read.

    A new key moves the document in the database (with an outbox record, in one transaction) and
    then in the index, without re-embedding; a new label alone is saved in the database only.
    """
    if (document.place_key, document.place_label) == (key, label):
        return False
    if document.place_key == key:
        Document.objects.filter(pk=document.pk).update(place_label=label)
        document.place_label = label
        return True
    index = index or get_index_backend()
    with transaction.atomic():
        Document.objects.filter(pk=document.pk).update(place_key=key, place_label=label)
        record_ids = index_changes_record(documents=[(document.pk, document.source_id)], kind=PendingIndexChange.Kind.PLACE)
    document.place_key, document.place_label = key, label
    faults.point("documents.place.committed")
    index.update_places_many({document.pk: document_place_value(document)}).raise_for_failures()
    faults.point("documents.place.indexed")
    index_changes_clear(record_ids)
    return True


def documents_delete(*, documents: Iterable[Document], index: BaseIndexBackend | None = None) -> int:
    """Delete documents from the database (with outbox records, in one transaction), then the index.

    Search re-checks access rows in the database, so a deleted document stops showing at the commit;
    the index catches up right after, or at the next replay if this process dies first.
    """
    index = index or get_index_backend()
    pairs = [(document.pk, document.source_id) for document in documents]
    for start in range(0, len(pairs), _DELETE_BATCH_DOCUMENTS):
        batch = pairs[start : start + _DELETE_BATCH_DOCUMENTS]
        ids = [document_id for document_id, _source_id in batch]
        with transaction.atomic():
            record_ids = index_changes_record(documents=batch, kind=PendingIndexChange.Kind.DELETE)
            Document.objects.filter(pk__in=ids).delete()
        faults.point("documents.delete.committed")
        index.delete_documents(ids)
        faults.point("documents.delete.indexed")
        index_changes_clear(record_ids)
    return len(pairs)


def documents_prune(
    *, source: Source, keep_external_ids: set[str], index: BaseIndexBackend | None = None
) -> int:
    """Delete the source's documents that the source no longer lists."""
    stale = [
        document
        for document in Document.objects.filter(source=source).only("pk", "source_id", "external_id")
        if document.external_id not in keep_external_ids
    ]
    return documents_delete(documents=stale, index=index)


def documents_prune_unseen(*, source: Source, seen_since, index: BaseIndexBackend | None = None) -> int:
    """Delete the source's documents a full pass started at ``seen_since`` did not mention."""
    stale = list(
        Document.objects.filter(source=source)
        .filter(Q(seen_at__isnull=True) | Q(seen_at__lt=seen_since))
        .only("pk", "source_id")
    )
    return documents_delete(documents=stale, index=index)


def source_delete(*, source: Source, index: BaseIndexBackend | None = None) -> None:
    """Delete a source: its documents from the index and the database, then the source itself.

    The source is disabled first, so a deletion that dies half way leaves a disabled source that no
    schedule refills; deleting it again finishes the job (pending index work included). Waits a
    little for a running sync of the source, then raises ``SourceBusy``.
    """
    index = index or get_index_backend()
    Source.objects.filter(pk=source.pk).update(enabled=False)
    source.enabled = False
    with source_lock(source, wait_seconds=_DELETE_LOCK_WAIT_SECONDS):
        while True:
            batch = list(Document.objects.filter(source=source).only("pk", "source_id")[:_DELETE_BATCH_DOCUMENTS])
            if not batch:
                break
            documents_delete(documents=batch, index=index)
        # Leftovers of an earlier interrupted run: every document is gone now, so these are deletions.
        index_changes_replay(source_id=source.pk, index=index)
        faults.point("documents.source_delete.emptied")
        source_identities_forget(source_key=source.key)
        source.delete()
