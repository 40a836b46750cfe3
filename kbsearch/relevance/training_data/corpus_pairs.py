"""Pairs from the corpus, before anyone has searched: a section's heading path (the chunk's context
line, "Handbook > Benefits > Parental leave", or the title alone) as the query, the section's text
as the positive, as teams that fine-tune on internal wikis pair titles with summaries.

The positive is the chunk's body without its context line: with the heading inside it the pair
would teach nothing but string matching. The first chunk of each section is taken, at most
``corpus_per_document`` sections per document (in document order) and ``corpus_total`` in all; over
the total, a fixed hash of the chunk id (with the seed) decides which stay, so every source keeps
its share and a rebuild chooses the same pairs.
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
    if params.corpus_per_document == 0 or params.corpus_total == 0:
        return [], dropped
    personal = PersonalDataFilter(params.pii_patterns)
    kept: list[tuple[int, CorpusPair]] = []  # a heap of (-rank key, pair): the largest keys leave first
    document_id, taken, contexts = None, 0, set()
    over_cap = 0
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
        pair = CorpusPair(query_normalize(passage.context), passage.context, passage)
        item = (-_rank_key(params.seed, passage.chunk_id), passage.chunk_id, pair)
        if len(kept) < params.corpus_total:
            heapq.heappush(kept, item)
        else:
            heapq.heappushpop(kept, item)
            over_cap += 1
    if over_cap:
        dropped[DROP_OVER_CAP] += over_cap
    pairs = sorted((pair for _, _, pair in kept), key=lambda pair: (pair.passage.document_id, pair.passage.ordinal))
    store.remember(pair.passage for pair in pairs)
    return pairs, dropped
