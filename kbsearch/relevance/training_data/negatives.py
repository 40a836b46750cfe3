"""Hard negatives: passages that look like answers to a query but are not, mined two ways and
filtered so that none of them is in fact a positive.

- **Lexical**: Okapi BM25 (rank-bm25, k1 1.2 and b 0.75 as the product's own BM25) over the
  candidate pool: every positive and thumbs-down passage of the build plus a fixed sample of other
  chunks (``pool_sample``). Only pool passages sharing a term with the query are scored.
- **Semantic**: the serving index's vector leg with the query encoded by the serving model, so
  the negatives are the passages the current model confuses with the answer.

The two ranked lists are interleaved (thumbs-down passages of the query come first). A candidate
is refused when it is a passage of the positive's document, of any document clicked or given a
thumbs-up for the same (normalised) query, of an excluded source, of a document none of the row's
users may see (corpus rows: the document's own audience, who also see public documents), or has
the positive's text.
"""
import hashlib
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rank_bm25 import BM25Okapi

from kbsearch.index.base import BaseIndexBackend, IndexBackendError, SearchFilters
from kbsearch.relevance.training_data.params import TrainingDataParams
from kbsearch.relevance.training_data.passages import Passage, PassageStore, QueryVectors
from kbsearch.text.analysis import index_terms, query_terms

# Pool passages scored per query before only the query's selective terms are used to find them.
_SCORED_CANDIDATES = 2000


@dataclass(frozen=True)
class MiningRequest:
    query_key: str
    query: str
    positive: Passage
    audience: frozenset[str]
    explicit: tuple[Passage, ...] = ()  # thumbs-down passages for the query


def _same_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def passage_sample(*, store: PassageStore, params: TrainingDataParams, count: int, salt: str) -> list[Passage]:
    """A fixed sample of ``count`` chunks outside the excluded sources: the smallest hashes of
    (salt, seed, chunk id), so a rebuild over the same chunks samples the same ones."""
    if count == 0:
        return []
    keyed: list[tuple[bytes, Passage]] = []
    for passage in store.iter_all(exclude_source_keys=params.exclude_sources):
        keyed.append((hashlib.sha256(f"{salt}:{params.seed}:{passage.chunk_id}".encode()).digest()[:8], passage))
        if len(keyed) >= 4 * count:  # trim as we go: memory stays a few times the sample
            keyed = sorted(keyed, key=lambda item: item[0])[:count]
    sample = [passage for _, passage in sorted(keyed, key=lambda item: item[0])[:count]]
    store.remember(sample)
    return sample


class NegativeMiner:
    def __init__(
        self,
        *,
        store: PassageStore,
        pool: Iterable[Passage],
        endorsed: dict[str, set[int]],
        vectors: QueryVectors,
        index: BaseIndexBackend | None,
        params: TrainingDataParams,
        allowed_source_keys: frozenset[str] | None,
    ) -> None:
        self.store, self.endorsed, self.vectors, self.index, self.params = store, endorsed, vectors, index, params
        self.allowed_source_keys = allowed_source_keys
        self.counts: Counter = Counter()
        self.notes: list[str] = []
        unique = {passage.chunk_id: passage for passage in pool}
        tokenized = [(passage, index_terms(passage.text)) for passage in unique.values()]
        tokenized = [(passage, terms) for passage, terms in tokenized if terms]
        self.pool = [passage for passage, _ in tokenized]
        self.bm25 = BM25Okapi([terms for _, terms in tokenized], k1=1.2, b=0.75) if tokenized else None
        self.postings: dict[str, list[int]] = {}
        for position, (_, terms) in enumerate(tokenized):
            for term in set(terms):
                self.postings.setdefault(term, []).append(position)

    def _lexical(self, query: str) -> list[Passage]:
        if self.bm25 is None:
            return []
        terms = query_terms(query)
        candidates = {position for term in terms for position in self.postings.get(term, ())}
        if len(candidates) > _SCORED_CANDIDATES:
            # Scoring is a Python loop per passage: over a large pool, candidates come from the
            # query's selective terms only. A term in over half the pool has its idf floored and
            # would add little to any score, while every passage holding it would be scored.
            common = len(self.pool) // 2
            selective = [term for term in terms if len(self.postings.get(term, ())) <= common]
            candidates = {position for term in selective for position in self.postings.get(term, ())} or candidates
        candidates = sorted(candidates)
        if not candidates:
            return []
        scores = self.bm25.get_batch_scores(terms, candidates)
        ranked = sorted(zip(scores, candidates), key=lambda item: (-item[0], item[1]))
        return [self.pool[position] for _, position in ranked[: self.params.mining_depth]]

    def _semantic_ids(self, query: str, audience: frozenset[str]) -> list[int]:
        vector = self.vectors.get(query)
        if vector is None or self.index is None or not audience:
            return []
        filters = SearchFilters(principals=audience, source_keys=self.allowed_source_keys)
        try:
            hits = self.index.vector_search(vector=vector, filters=filters, limit=self.params.mining_depth)
        except (IndexBackendError, ValueError) as error:
            note = f"vector negatives skipped: {error}"
            if note not in self.notes:
                self.notes.append(note)
            self.index = None
            return []
        return [hit.chunk_id for hit in hits]

    def mine(self, requests: list[MiningRequest]) -> list[list[Passage]]:
        """Negatives for each request, in order; at most ``negatives_per_pair`` each."""
        wanted = self.params.negatives_per_pair
        if wanted == 0:
            return [[] for _ in requests]
        self.vectors.prepare(request.query for request in requests)
        candidates = [(self._lexical(request.query), self._semantic_ids(request.query, request.audience))
                      for request in requests]
        semantic = self.store.by_ids({chunk_id for _, ids in candidates for chunk_id in ids})
        documents = {passage.document_id for lexical, _ in candidates for passage in lexical}
        documents |= {passage.document_id for passage in semantic.values()}
        documents |= {passage.document_id for request in requests for passage in request.explicit}
        audiences = self.store.audiences(documents)
        results = []
        for request, (lexical, ids) in zip(requests, candidates, strict=True):
            vector_list = [semantic[chunk_id] for chunk_id in ids if chunk_id in semantic]
            results.append(self._choose(request, lexical, vector_list, audiences))
        return results

    def _choose(self, request: MiningRequest, lexical: list[Passage], semantic: list[Passage],
                audiences: dict[int, frozenset[str]]) -> list[Passage]:
        forbidden = {request.positive.document_id} | self.endorsed.get(request.query_key, set())
        seen_texts = {_same_text(request.positive.text), _same_text(request.positive.body)}
        chosen: list[Passage] = []
        chosen_ids: set[int] = set()

        def take(passage: Passage, kind: str) -> None:
            if len(chosen) >= self.params.negatives_per_pair or passage.chunk_id in chosen_ids:
                return
            if passage.document_id in forbidden or passage.source_key in self.params.exclude_sources:
                self.counts["refused: positive's or clicked document"] += 1
                return
            if not audiences.get(passage.document_id, frozenset()) & request.audience:
                self.counts["refused: not visible to the row's users"] += 1
                return
            if _same_text(passage.text) in seen_texts:
                self.counts["refused: same text as the positive"] += 1
                return
            chosen.append(passage)
            chosen_ids.add(passage.chunk_id)
            seen_texts.add(_same_text(passage.text))
            self.counts[kind] += 1

        for passage in request.explicit:
            take(passage, "thumbs-down")
        for position in range(max(len(lexical), len(semantic))):
            if position < len(semantic):
                take(semantic[position], "vector")
            if position < len(lexical):
                take(lexical[position], "bm25")
        if len(chosen) < self.params.negatives_per_pair:
            self.counts["rows short of negatives"] += 1
        return chosen
