"""From stored documents to index entries: the one mapping of ``Chunk`` rows to ``IndexChunk``s,
and rebuilding the whole index from the database into a new generation.

The database is the source of truth (``kbsearch.documents.models``); everything the index holds is
derived here, so ingest, crash recovery and rebuilds cannot disagree on what a chunk looks like in
the index (its terms include the document title; its date is the source's, else ours; its place is
named with its source's key, ``kbsearch.documents.places``).
"""
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from kbsearch.documents.models import Chunk, Document, DocumentAccess
from kbsearch.documents.places import document_place_value
from kbsearch.index.base import BaseIndexBackend, IndexChunk, IndexGeneration
from kbsearch.index.registry import get_index_backend
from kbsearch.text.analysis import chunk_terms


def index_chunk_for(*, document: Document, chunk: Chunk, vector: np.ndarray, principals: frozenset[str]) -> IndexChunk:
    """The index entry of one stored chunk of ``document`` (``document.source`` is read)."""
    return IndexChunk(
        chunk_id=chunk.pk,
        document_id=document.pk,
        source_key=document.source.key,
        language=document.language,
        terms=chunk_terms(title=document.title, text=chunk.text),
        vector=vector,
        principals=principals,
        updated_at=document.source_updated_at or document.updated_at,
        place=document_place_value(document),
    )


def index_chunks_for(
    *, document: Document, chunks: Sequence[Chunk], vectors: Iterable[np.ndarray], principals: frozenset[str]
) -> list[IndexChunk]:
    """Index entries for a document's chunks, paired with their vectors in order."""
    return [
        index_chunk_for(document=document, chunk=chunk, vector=vector, principals=principals)
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]


def index_rebuild(
    *, encoder=None, index: BaseIndexBackend | None = None, batch_size: int = 256,
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexGeneration:
    """Re-embed and re-analyze every stored chunk into a new generation of the index, then switch
    every process to it (after a model or analyzer change). Searches keep using the current
    generation meanwhile; syncs may keep running, since the backend replays the documents they
    change through ``stored_index_chunks``.

    Chunking is kept as stored; a change of chunk budget needs a full sync of each source instead.
    ``on_progress(done, total)`` is called with chunks written after each batch (the command's bar).
    """
    if encoder is None:
        from embeddings.loading import get_encoder

        encoder = get_encoder()
    index = index or get_index_backend()
    batches = stored_index_batches(encoder=encoder, batch_size=batch_size)
    return index.rebuild(
        metadata=encoder.index_metadata,
        batches=_reporting(batches, on_progress) if on_progress else batches,
        chunks_for_documents=lambda document_ids: stored_index_chunks(
            document_ids=document_ids, encoder=encoder, batch_size=batch_size
        ),
    )


def _reporting(batches: Iterator[list[IndexChunk]], on_progress: Callable[[int, int], None]) -> Iterator[list[IndexChunk]]:
    """The batches, with ``on_progress(chunks done, chunks stored)`` after the backend took each."""
    done, total = 0, None
    for batch in batches:
        if total is None:  # counted once the generation has begun, like every other read
            total = Chunk.objects.count()
        yield batch
        done += len(batch)
        on_progress(done, max(total, done))


def stored_index_batches(*, encoder, batch_size: int) -> Iterator[list[IndexChunk]]:
    """Every stored chunk as index entries, a batch at a time.

    A generator on purpose: nothing is read from the database before the backend has begun the
    new generation, so any change these reads miss is one the backend saw arrive and replays.
    Chunks are read in (document, ordinal) order, so a count of those done is a progress measure.
    """
    access = _access_lists(document_ids=None)
    chunks = Chunk.objects.select_related("document__source").order_by("document_id", "ordinal")
    yield from _encoded_batches(chunks.iterator(chunk_size=batch_size), encoder, access, batch_size)


def stored_index_chunks(*, document_ids: Sequence[int], encoder, batch_size: int = 256) -> list[IndexChunk]:
    """The index entries of these documents as the database holds them now (none for a deleted one)."""
    access = _access_lists(document_ids=document_ids)
    chunks = (
        Chunk.objects.filter(document_id__in=list(document_ids))
        .select_related("document__source")
        .order_by("document_id", "ordinal")
    )
    return [entry for batch in _encoded_batches(chunks, encoder, access, batch_size) for entry in batch]


def _access_lists(*, document_ids: Sequence[int] | None) -> dict[int, set[str]]:
    rows = DocumentAccess.objects.all()
    if document_ids is not None:
        rows = rows.filter(document_id__in=list(document_ids))
    access: dict[int, set[str]] = {}
    for document_id, principal in rows.values_list("document_id", "principal"):
        access.setdefault(document_id, set()).add(principal)
    return access


def _encoded_batches(
    chunks: Iterable[Chunk], encoder, access: dict[int, set[str]], batch_size: int
) -> Iterator[list[IndexChunk]]:
    batch: list[Chunk] = []
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) >= batch_size:
            yield _index_batch(batch, encoder, access)
            batch = []
    if batch:
        yield _index_batch(batch, encoder, access)


def _index_batch(batch: list[Chunk], encoder, access: dict[int, set[str]]) -> list[IndexChunk]:
    vectors = encoder.encode_passages([chunk.text for chunk in batch])
    return [
        index_chunk_for(
            document=chunk.document,
            chunk=chunk,
            vector=vector,
            principals=frozenset(access.get(chunk.document_id, ())),
        )
        for chunk, vector in zip(batch, vectors, strict=True)
    ]
