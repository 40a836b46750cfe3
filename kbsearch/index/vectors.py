"""Which chunk vectors an index may store, the same rule for every backend.

A vector must have the generation's dimension and finite values. A NaN or infinite component would
poison every similarity it takes part in (and JSON cannot carry it), so such a chunk is refused
before anything is sent or written: as a per-item failure in a batch, never retryable (the same
vector fails again), or as an error where a caller asked for all-or-nothing.
"""
from collections.abc import Sequence

import numpy as np

from kbsearch.index.base import IndexBackendError, IndexChunk, ItemFailure


def vector_problem(chunk: IndexChunk, dimension: int) -> str | None:
    """Why this chunk's vector cannot be stored (wrong size, NaN/inf), or None when it can."""
    vector = np.asarray(chunk.vector)
    if vector.shape != (dimension,):
        return f"vector of shape {vector.shape}, index wants ({dimension},)"
    if not np.all(np.isfinite(vector)):
        return "non-finite vector"
    return None


def split_valid(chunks: Sequence[IndexChunk], dimension: int) -> tuple[list[IndexChunk], list[ItemFailure]]:
    """The chunks that can be stored, and a failure for each one that cannot."""
    valid: list[IndexChunk] = []
    failures: list[ItemFailure] = []
    for chunk in chunks:
        problem = vector_problem(chunk, dimension)
        if problem is None:
            valid.append(chunk)
        else:
            failures.append(ItemFailure(chunk.chunk_id, chunk.document_id, problem, retryable=False))
    return valid, failures


def check_vectors(chunks: Sequence[IndexChunk], dimension: int) -> None:
    """Refuse vectors of the wrong size or with NaN/inf before anything is written."""
    for chunk in chunks:
        problem = vector_problem(chunk, dimension)
        if problem is not None:
            raise IndexBackendError(f"chunk {chunk.chunk_id} has a {problem}")
