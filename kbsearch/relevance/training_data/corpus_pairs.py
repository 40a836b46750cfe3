"""Pairs from the corpus, before anyone has searched: a section's heading path (the chunk's context
line, "Handbook > Benefits > Parental leave", or the title alone) as the query, the section's text
as the positive, as teams that fine-tune on internal wikis pair titles with summaries.

The positive is the chunk's body without its context line: with the heading inside it the pair
would teach nothing but string matching. The first chunk of each section is taken, at most
``corpus_per_document`` sections per document (in document order), ``corpus_per_query`` sections
per heading text (a title many documents share, "Overview", "日本共産党", names no one section, and
in-batch negatives of one query would be its own other positives), and ``corpus_total`` in all.
Where a cap bites, a fixed hash of the chunk id (with the seed) decides which stay, so every source
keeps its share and a rebuild chooses the same pairs.
"""
import hashlib
import heapq
from collections import Counter
from dataclasses import dataclass

from kbsearch.analytics.services import query_normalize
from kbsearch.relevance.training_data.params import TrainingDataParams
from kbsearch.relevance.training_data.passages import Passage, PassageStore
from kbsearch.relevance.training_data.pii import PersonalDataFilter

DROP_SHORT = "corpus section too short"
DROP_PERSONAL_TITLE = "heading looks like personal data"
DROP_OVER_CAP = "corpus pairs over the total cap"
DROP_SHARED_HEADING = "heading shared by more sections than the per-query cap"


@dataclass(frozen=True)
class CorpusPair:
    query_key: str
    query: str
    passage: Passage


def _rank_key(seed: int, chunk_id: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{chunk_id}".encode()).digest()[:8], "big")


def corpus_pairs_collect(*, params: TrainingDataParams, store: PassageStore) -> tuple[list[CorpusPair], Counter]:
    """Heading-path pairs for every document outside the excluded sources (see the module docstring)."""
    dropped: Counter = Counter()
    if min(params.corpus_per_document, params.corpus_per_query, params.corpus_total) == 0:
        return [], dropped
    personal = PersonalDataFilter(params.pii_patterns)
    # First pass: candidates as (rank key, chunk id) per query, no text kept.
    by_query: dict[str, list[tuple[int, int]]] = {}
    document_id, taken, contexts = None, 0, set()
    for passage in store.iter_all(exclude_source_keys=params.exclude_sources):
        if passage.document_id != document_id:
            document_id, taken, contexts = passage.document_id, 0, set()
        if taken >= params.corpus_per_document or passage.context in contexts:
            continue  # a later chunk of a section already paired, or the document's quota is used
        contexts.add(passage.context)
        if not passage.context or len(passage.body.strip()) < params.corpus_min_chars:
            dropped[DROP_SHORT] += 1
            continue
        if personal.looks_personal(passage.context):
            dropped[DROP_PERSONAL_TITLE] += 1
            continue
        taken += 1
        by_query.setdefault(query_normalize(passage.context), []).append(
            (_rank_key(params.seed, passage.chunk_id), passage.chunk_id)
        )
    candidates = []
    for found in by_query.values():
        kept = heapq.nsmallest(params.corpus_per_query, found)
        if len(found) > len(kept):
            dropped[DROP_SHARED_HEADING] += len(found) - len(kept)
        candidates.extend(kept)
    chosen = heapq.nsmallest(params.corpus_total, candidates)
    if len(candidates) > len(chosen):
        dropped[DROP_OVER_CAP] += len(candidates) - len(chosen)
    passages = store.by_ids(chunk_id for _, chunk_id in chosen)
    pairs = [
        CorpusPair(query_normalize(passage.context), passage.context, passage)
        for passage in sorted(passages.values(), key=lambda passage: (passage.document_id, passage.ordinal))
    ]
    return pairs, dropped
