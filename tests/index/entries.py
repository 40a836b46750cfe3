"""Index entries made for the index tests (``tests.index.entries``): vectors from a seed, not a model."""
import numpy as np

from kbsearch.index.base import IndexChunk, IndexMetadata, SearchFilters
from kbsearch.text.analysis import ANALYZER_VERSION, index_terms

DIM = 8


def unit(seed: int, dimension: int = DIM) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def chunk(chunk_id, document_id, text, principals, vector=None, language="en", source="s", dimension=DIM, place=""):
    return IndexChunk(
        chunk_id=chunk_id,
        document_id=document_id,
        source_key=source,
        language=language,
        terms=index_terms(text),
        vector=unit(chunk_id, dimension) if vector is None else vector,
        principals=frozenset(principals),
        place=place,
    )


def public(*extra):
    return SearchFilters(principals=frozenset({"public", *extra}))


def meta(dimension: int = DIM, model: str = "test-model", version: str = "1") -> IndexMetadata:
    """Index metadata for vectors made here: ``model``/``version`` name a pretend embedding model."""
    return IndexMetadata(model_id=model, model_version=version, dimension=dimension, analyzer_version=ANALYZER_VERSION)


class Truth:
    """What the database holds, as index entries by document: the source a rebuild or a generation
    build reads (``batches``) and a catch-up asks (``chunks_for_documents``, recorded in ``asked``)."""

    def __init__(self, chunks=()):
        self.by_document = {}
        for entry in chunks:
            self.by_document.setdefault(entry.document_id, []).append(entry)
        self.asked: list[list[int]] = []

    def set(self, document_id, chunks):
        if chunks:
            self.by_document[document_id] = list(chunks)
        else:
            self.by_document.pop(document_id, None)

    def batches(self):
        for document_id in sorted(self.by_document):
            yield list(self.by_document[document_id])

    def chunks_for_documents(self, document_ids):
        self.asked.append(list(document_ids))
        return [entry for document_id in document_ids for entry in self.by_document.get(document_id, [])]
