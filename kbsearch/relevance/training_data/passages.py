"""Passages as training data uses them: stored chunks with their document's title, language, source
and access list, split into context line and body, and the chunk of a document that best answers a
query under the serving model.

A clicked or voted document is judged whole, but a training row needs one passage: the chunk of
the document the serving model ranks highest for the query (what the result page showed as its
snippet, in the usual case); without a model, the document's first chunk.
"""
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from kbsearch.documents.models import Chunk, DocumentAccess
from kbsearch.ingest.chunking import context_line_split

# Chunks encoded at a time when choosing a document's best chunk for a query.
_ENCODE_GROUP_PASSAGES = 2000


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: int
    ordinal: int
    text: str  # as embedded and served: context line, newline, body
    context: str  # title and heading path ("" when the chunk has no context line)
    body: str
    language: str
    source_key: str


class PassageStore:
    """Reads chunks and access lists once and keeps them for the whole build."""

    def __init__(self) -> None:
        self._by_id: dict[int, Passage] = {}
        self._by_document: dict[int, list[Passage]] = {}
        self._audience: dict[int, frozenset[str]] = {}

    @staticmethod
    def _passage(chunk: Chunk) -> Passage:
        document = chunk.document
        context, body = context_line_split(chunk.text, title=document.title, heading_path=chunk.heading_path)
        return Passage(
            chunk.pk, chunk.document_id, chunk.ordinal, chunk.text, context, body,
            document.language, document.source.key,
        )

    def _load(self, chunks) -> list[Passage]:
        loaded = []
        for chunk in chunks.select_related("document__source").order_by("document_id", "ordinal").iterator(
            chunk_size=1000
        ):
            passage = self._by_id.get(chunk.pk) or self._passage(chunk)
            self._by_id[chunk.pk] = passage
            loaded.append(passage)
        return loaded

    def iter_all(self, *, exclude_source_keys: Iterable[str] = ()) -> Iterator[Passage]:
        """Every stored chunk outside the excluded sources, by document and position, not kept."""
        chunks = Chunk.objects.exclude(document__source__key__in=list(exclude_source_keys))
        for chunk in chunks.select_related("document__source").order_by("document_id", "ordinal").iterator(
            chunk_size=1000
        ):
            yield self._by_id.get(chunk.pk) or self._passage(chunk)

    def remember(self, passages: Iterable[Passage]) -> None:
        self._by_id.update((passage.chunk_id, passage) for passage in passages)

    def of_documents(self, document_ids: Iterable[int]) -> dict[int, list[Passage]]:
        """Every chunk of these documents, in order (a document without chunks is left out)."""
        wanted = set(document_ids)
        missing = [document_id for document_id in wanted if document_id not in self._by_document]
        for start in range(0, len(missing), 500):
            batch = missing[start : start + 500]
            for document_id in batch:
                self._by_document[document_id] = []
            for passage in self._load(Chunk.objects.filter(document_id__in=batch)):
                self._by_document[passage.document_id].append(passage)
        return {document_id: self._by_document[document_id] for document_id in wanted if self._by_document[document_id]}

    def by_ids(self, chunk_ids: Iterable[int]) -> dict[int, Passage]:
        wanted = set(chunk_ids)
        missing = [chunk_id for chunk_id in wanted if chunk_id not in self._by_id]
        for start in range(0, len(missing), 1000):
            self._load(Chunk.objects.filter(pk__in=missing[start : start + 1000]))
        return {chunk_id: self._by_id[chunk_id] for chunk_id in wanted if chunk_id in self._by_id}

    def audiences(self, document_ids: Iterable[int]) -> dict[int, frozenset[str]]:
        """Each document's access principals (empty: visible to nobody)."""
        wanted = set(document_ids)
        missing = [document_id for document_id in wanted if document_id not in self._audience]
        for start in range(0, len(missing), 1000):
            batch = missing[start : start + 1000]
            found: dict[int, set[str]] = {document_id: set() for document_id in batch}
            for document_id, principal in DocumentAccess.objects.filter(document_id__in=batch).values_list(
                "document_id", "principal"
            ):
                found[document_id].add(principal)
            self._audience.update((document_id, frozenset(principals)) for document_id, principals in found.items())
        return {document_id: self._audience[document_id] for document_id in wanted}


class QueryVectors:
    """Query vectors of the serving model, each query encoded once (None without a model)."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self._vectors: dict[str, np.ndarray] = {}

    def prepare(self, queries: Iterable[str]) -> None:
        if self.encoder is None:
            return
        missing = list(dict.fromkeys(query for query in queries if query not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self.encoder.encode_queries(missing), strict=True))

    def get(self, query: str) -> np.ndarray | None:
        if self.encoder is None:
            return None
        self.prepare([query])
        return self._vectors[query]


def best_passages(
    *, wanted: Iterable[tuple[str, int]], store: PassageStore, vectors: QueryVectors
) -> dict[tuple[str, int], Passage]:
    """(query, document) -> the document's chunk nearest the query under the serving model; its
    first chunk without a model. Documents without chunks are left out."""
    wanted = list(dict.fromkeys(wanted))
    chunks = store.of_documents(document_id for _, document_id in wanted)
    queries_of: dict[int, list[str]] = {}
    best = {}
    for query, document_id in wanted:
        passages = chunks.get(document_id)
        if not passages:
            continue
        if len(passages) == 1 or vectors.encoder is None:
            best[(query, document_id)] = passages[0]
        else:
            queries_of.setdefault(document_id, []).append(query)
    vectors.prepare(query for queries in queries_of.values() for query in queries)
    group: list[int] = []
    for document_id in queries_of:
        group.append(document_id)
        if sum(len(chunks[member]) for member in group) >= _ENCODE_GROUP_PASSAGES:
            _nearest(group, chunks, queries_of, vectors, best)
            group = []
    if group:
        _nearest(group, chunks, queries_of, vectors, best)
    return best


def _nearest(group, chunks, queries_of, vectors: QueryVectors, best: dict) -> None:
    """Encode one group of documents' chunks and pick each query's nearest (bounded memory)."""
    encoded = vectors.encoder.encode_passages([passage.text for document_id in group for passage in chunks[document_id]])
    position = 0
    for document_id in group:
        count = len(chunks[document_id])
        own = encoded[position : position + count]
        position += count
        for query in queries_of[document_id]:
            best[(query, document_id)] = chunks[document_id][int(np.argmax(own @ vectors.get(query)))]
