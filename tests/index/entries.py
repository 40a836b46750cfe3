"""Index entries made for the index tests (``tests.index.entries``): vectors from a seed, not a model."""
import numpy as np

from kbsearch.index.base import IndexChunk, IndexMetadata, SearchFilters
from kbsearch.text.analysis import ANALYZER_VERSION, index_terms

DIM = 8


def unit(seed: int, dimension: int = DIM) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def chunk(chunk_id, document_id, text, principals, vector=None, language="en", source="s", dimension=DIM):
    return IndexChunk(
        chunk_id=chunk_id,
        document_id=document_id,
        source_key=source,
        language=language,
        terms=index_terms(text),
        vector=unit(chunk_id, dimension) if vector is None else vector,
        principals=frozenset(principals),
    )


def public(*extra):
    return SearchFilters(principals=frozenset({"public", *extra}))


def meta(dimension: int = DIM, model: str = "test-model", version: str = "1") -> IndexMetadata:
    """Index metadata for vectors made here: ``model``/``version`` name a pretend embedding model."""
    return IndexMetadata(model_id=model, model_version=version, dimension=dimension, analyzer_version=ANALYZER_VERSION)
