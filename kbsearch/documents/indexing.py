"""From stored documents to index entries: the one mapping of ``Chunk`` rows to ``IndexChunk``s,
and rebuilding the whole index from the database.

The database is the source of truth (``kbsearch.documents.models``); everything the index holds is
derived here, so ingest, crash recovery and rebuilds cannot disagree on what a chunk looks like in
the index (its terms include the document title; its date is the source's, else ours).
"""
from collections.abc import Iterable, Sequence

import numpy as np

from kbsearch.documents.models import Chunk, Document, DocumentAccess
from kbsearch.index.base import BaseIndexBackend, IndexChunk
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
    )


def index_chunks_for(
    *, document: Document, chunks: Sequence[Chunk], vectors: Iterable[np.ndarray], principals: frozenset[str]
) -> list[IndexChunk]:
    """Index entries for a document's chunks, paired with their vectors in order."""
    return [
        index_chunk_for(document=document, chunk=chunk, vector=vector, principals=principals)
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]


def index_rebuild(*, encoder=None, index: BaseIndexBackend | None = None, batch_size: int = 256) -> int:
    """Re-embed and re-analyze every stored chunk into the index (after a model or analyzer change).

    Chunking is kept as stored; a change of chunk budget needs a full sync of each source instead.
    """
    if encoder is None:
        from embeddings.loading import get_encoder

        encoder = get_encoder()
    index = index or get_index_backend()
    index.ensure_index(dimension=encoder.dimension)
    access: dict[int, set[str]] = {}
    for document_id, principal in DocumentAccess.objects.values_list("document_id", "principal"):
        access.setdefault(document_id, set()).add(principal)
    total = 0
    chunks = Chunk.objects.select_related("document__source").order_by("document_id", "ordinal")
    batch: list[Chunk] = []
    for chunk in chunks.iterator(chunk_size=batch_size):
        batch.append(chunk)
        if len(batch) >= batch_size:
            total += _rebuild_batch(batch, encoder, index, access)
            batch = []
    if batch:
        total += _rebuild_batch(batch, encoder, index, access)
    return total


def _rebuild_batch(batch: list[Chunk], encoder, index: BaseIndexBackend, access: dict[int, set[str]]) -> int:
    vectors = encoder.encode_passages([chunk.text for chunk in batch])
    index.upsert_chunks(
        [
            index_chunk_for(
                document=chunk.document,
                chunk=chunk,
                vector=vector,
                principals=frozenset(access.get(chunk.document_id, ())),
            )
            for chunk, vector in zip(batch, vectors, strict=True)
        ]
    )
    return len(batch)
