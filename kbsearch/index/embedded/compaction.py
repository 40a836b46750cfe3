"""Building postings: a delta's as chunks arrive, and a new segment's from a memory copy.

Compaction works on the arrays already in memory, never on the SQLite text: no term is parsed
again, so it costs a few sorts and gathers over the postings rather than the 20 s a load from the
store takes at 100,000 chunks. The memory copy is exactly the store at the seq it has replayed
to, so the segment written from it is a picture of the store at that seq.
"""
from array import array
from typing import TYPE_CHECKING

import numpy as np

from kbsearch.index.embedded.segments import SegmentArrays, StringTable

if TYPE_CHECKING:
    from kbsearch.index.embedded.memory import MemoryIndex

_EMPTY_ROWS = np.zeros(0, dtype=np.int64)


def append_postings(postings: dict[str, tuple[array, array]], start: int, term_lists: list[list[str]]) -> None:
    """Add the postings of rows ``start, start + 1, ..`` (one list of terms each) to a delta's
    ``postings`` (term -> (rows, frequencies)), in one pass of numpy rather than a Counter per chunk:
    ten times faster, which is what keeps replaying a delta at a new process's start short."""
    counts = [len(terms) for terms in term_lists]
    vocabulary: dict[str, int] = {}
    term_ids = np.fromiter((vocabulary.setdefault(term, len(vocabulary)) for terms in term_lists for term in terms),
                           dtype=np.int64, count=sum(counts))
    if len(term_ids) == 0:
        return
    rows = np.repeat(np.arange(start, start + len(term_lists), dtype=np.int64), counts)
    stride = start + len(term_lists)
    keys, frequencies = np.unique(term_ids * stride + rows, return_counts=True)  # by term, then row
    term_of_key, row_of_key = np.divmod(keys, stride)
    bounds = np.r_[0, np.flatnonzero(np.diff(term_of_key)) + 1, len(keys)]
    row_values = row_of_key.astype(np.int32)
    frequency_values = frequencies.astype(np.float32)
    names = list(vocabulary)
    for begin, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        posting_rows, posting_frequencies = postings.setdefault(names[int(term_of_key[begin])], (array("i"), array("f")))
        posting_rows.frombytes(row_values[begin:end].tobytes())
        posting_frequencies.frombytes(frequency_values[begin:end].tobytes())


def _access_pairs(memory: "MemoryIndex") -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every (principal, slot) of the current access lists: (principal strings, ids into them, slots)."""
    names: list[str] = []
    name_ids: list[np.ndarray] = []
    slots: list[np.ndarray] = []
    segment = memory.segment
    if memory.base_documents:
        names = segment.principals.strings()
        counts = np.diff(segment.access_starts)
        segment_ids = np.repeat(np.arange(len(names), dtype=np.int64), counts)
        segment_slots = np.asarray(segment.access_slots, dtype=np.int64)
        current = ~memory.overridden[segment_slots]  # lists replaced since are taken from the delta
        name_ids.append(segment_ids[current])
        slots.append(segment_slots[current])
    position = {name: i for i, name in enumerate(names)}
    delta_ids, delta_slots = [], []
    for slot, principals in memory.principals_of_slot.items():
        for principal in principals:
            if principal not in position:
                position[principal] = len(names)
                names.append(principal)
            delta_ids.append(position[principal])
            delta_slots.append(slot)
    name_ids.append(np.array(delta_ids, dtype=np.int64))
    slots.append(np.array(delta_slots, dtype=np.int64))
    return names, np.concatenate(name_ids), np.concatenate(slots)


def _posting_triples(memory: "MemoryIndex") -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Every posting as (term strings, term ids into them, old rows, frequencies)."""
    terms: list[str] = []
    term_ids, rows, frequencies = [], [], []
    segment = memory.segment
    if memory.base_rows:
        terms = segment.terms.strings()
        counts = np.diff(segment.posting_starts)
        term_ids.append(np.repeat(np.arange(len(terms), dtype=np.int32), counts))
        rows.append(np.asarray(segment.posting_rows, dtype=np.int32))
        frequencies.append(np.asarray(segment.posting_frequencies, dtype=np.float32))
    position = {term: i for i, term in enumerate(terms)}
    for term, (delta_rows, delta_frequencies) in memory.postings.items():
        if term not in position:
            position[term] = len(terms)
            terms.append(term)
        term_ids.append(np.full(len(delta_rows), position[term], dtype=np.int32))
        rows.append(np.frombuffer(delta_rows, dtype=np.int32))
        frequencies.append(np.frombuffer(delta_frequencies, dtype=np.float32))
    if not term_ids:
        empty = np.zeros(0, dtype=np.int32)
        return terms, empty, empty, np.zeros(0, dtype=np.float32)
    return terms, np.concatenate(term_ids), np.concatenate(rows), np.concatenate(frequencies)


def _csr(keys: np.ndarray, values: list[np.ndarray], groups: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sort ``values`` by ``keys`` (stably) and return (starts of each key's run, sorted values)."""
    order = np.argsort(keys, kind="stable")
    starts = np.zeros(groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=groups), out=starts[1:])
    return starts, [value[order] for value in values]


def _interned(strings: list[str], ids: np.ndarray) -> tuple[StringTable, np.ndarray]:
    """A table of the strings ``ids`` uses, and ``ids`` renumbered into it."""
    used = np.unique(ids)
    table, new_ids_of_used = StringTable.build([strings[i] for i in used.tolist()])
    new_ids_of_used = new_ids_of_used.astype(ids.dtype)
    renumber = np.full(len(strings), -1, dtype=ids.dtype)
    renumber[used] = new_ids_of_used
    return table, renumber[ids]


def _access_list_ranks(table: StringTable, principal_ids: np.ndarray, slots: np.ndarray, documents: int
                       ) -> np.ndarray:
    """For each document slot, the rank of its access list (as sorted principal strings) among all."""
    names = table.strings()
    lists: list[list[str]] = [[] for _ in range(documents)]
    for principal_id, slot in zip(principal_ids.tolist(), slots.tolist()):
        lists[slot].append(names[principal_id])
    signatures = [tuple(sorted(principals)) for principals in lists]
    rank_of = {signature: rank for rank, signature in enumerate(sorted(set(signatures)))}
    return np.array([rank_of[signature] for signature in signatures], dtype=np.int64)


def compact(memory: "MemoryIndex", *, seq: int, store_id: str) -> SegmentArrays:
    size = memory.size
    live_rows = np.flatnonzero(memory.alive[:size])
    document_of_slot = np.concatenate([
        np.asarray(memory.segment.document_ids if memory.base_documents else _EMPTY_ROWS, dtype=np.int64),
        np.array(memory.new_document_ids, dtype=np.int64),
    ])

    # Documents: those with live rows or an access list (an access list may come before chunks).
    principal_names, pair_principals, pair_slots = _access_pairs(memory)
    old_slots = np.unique(np.concatenate([memory.document_slots[live_rows].astype(np.int64), pair_slots]))
    document_ids = document_of_slot[old_slots]
    slot_order = np.argsort(document_ids, kind="stable")
    document_ids = document_ids[slot_order]
    new_slot = np.full(len(document_of_slot), -1, dtype=np.int64)
    new_slot[old_slots[slot_order]] = np.arange(len(old_slots))

    principal_table, pair_principals = _interned(principal_names, pair_principals)
    pair_slots = new_slot[pair_slots]

    # Rows, sorted by (access list, place, document id, chunk id): each document's rows are one
    # range, and documents with the same access list sit together, in place order within it, so a
    # filter admitting a few large groups (or places of them) scores a few contiguous blocks of
    # vectors instead of the whole matrix (``vector_search``).
    chunk_ids = memory.chunk_ids[live_rows]
    row_slots = new_slot[memory.document_slots[live_rows]]
    access_rank = _access_list_ranks(principal_table, pair_principals, pair_slots, len(document_ids))
    document_places = memory.place_of_slot[old_slots[slot_order]].astype(np.int32)
    order = np.lexsort((chunk_ids, row_slots, document_places[row_slots], access_rank[row_slots]))
    live_rows, chunk_ids, row_slots = live_rows[order], chunk_ids[order], row_slots[order]
    new_row = np.full(size, -1, dtype=np.int32)
    new_row[live_rows] = np.arange(len(live_rows), dtype=np.int32)
    vectors = np.empty((len(live_rows), memory.dimension), dtype=np.float32)
    from_segment = live_rows < memory.base_rows
    if memory.base_rows:
        vectors[from_segment] = memory.segment.vectors[live_rows[from_segment]]
    vectors[~from_segment] = memory.delta_vectors[live_rows[~from_segment] - memory.base_rows]
    counts = np.bincount(row_slots, minlength=len(document_ids))
    document_row_starts = np.zeros(len(document_ids), dtype=np.int64)
    first_rows = np.flatnonzero(np.r_[True, row_slots[1:] != row_slots[:-1]]) if len(row_slots) else _EMPTY_ROWS
    document_row_starts[row_slots[first_rows]] = first_rows
    document_row_ends = document_row_starts + counts
    rows_by_chunk = np.argsort(chunk_ids, kind="stable")

    # Postings of live rows, renumbered; terms left with none are dropped.
    term_strings, term_ids, posting_rows, frequencies = _posting_triples(memory)
    keep = new_row[posting_rows] >= 0
    term_table, term_ids = _interned(term_strings, term_ids[keep])
    posting_starts, (posting_rows, frequencies) = _csr(
        term_ids, [new_row[posting_rows[keep]], frequencies[keep]], len(term_table)
    )
    # Term counts are small integers: 2 bytes each instead of 4 unless one is too large.
    if len(frequencies) == 0 or frequencies.max() <= np.iinfo(np.uint16).max:
        frequencies = frequencies.astype(np.uint16)

    access_starts, (access_slots,) = _csr(pair_principals, [pair_slots.astype(np.int32)], len(principal_table))

    lengths = np.asarray(memory.lengths[live_rows], dtype=np.float32)
    return SegmentArrays(
        seq=seq,
        store_id=store_id,
        dimension=memory.dimension,
        live_length=float(lengths.sum(dtype=np.float64)),
        languages=list(memory.language_names),
        sources=memory.source_names(),
        places=list(memory.place_names),
        chunk_ids=chunk_ids.astype(np.int64),
        document_slots=row_slots.astype(np.int32),
        lengths=lengths,
        language_codes=np.asarray(memory.language_codes[live_rows], dtype=np.int16),
        source_codes=np.asarray(memory.source_codes[live_rows], dtype=np.int32),
        updated=np.asarray(memory.updated[live_rows], dtype=np.float64),
        vectors=vectors,
        sorted_chunk_ids=chunk_ids[rows_by_chunk].astype(np.int64),
        rows_by_chunk=rows_by_chunk.astype(np.int32),
        document_ids=document_ids,
        document_row_starts=document_row_starts,
        document_row_ends=document_row_ends,
        terms=term_table,
        posting_starts=posting_starts,
        posting_rows=posting_rows,
        posting_frequencies=frequencies,
        principals=principal_table,
        access_starts=access_starts,
        access_slots=access_slots,
        document_places=document_places,
    )
