"""Ranking metrics with binary relevance: nDCG@k, MRR@k, Recall@k."""
import math
from collections.abc import Sequence


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    gains = sum(1.0 / math.log2(position + 2) for position, doc in enumerate(ranked[:k]) if doc in relevant)
    ideal = sum(1.0 / math.log2(position + 2) for position in range(min(len(relevant), k)))
    return gains / ideal if ideal else 0.0


def mrr_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    for position, doc in enumerate(ranked[:k]):
        if doc in relevant:
            return 1.0 / (position + 1)
    return 0.0


def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def summarize(runs: dict[str, list[str]], qrels: dict[str, set[str]]) -> dict[str, float]:
    """Mean metrics over the queries that have judgements."""
    judged = [query_id for query_id in runs if qrels.get(query_id)]
    if not judged:
        raise ValueError("no judged queries to evaluate")
    metrics = {
        "ndcg@10": lambda r, q: ndcg_at(r, q, 10),
        "mrr@10": lambda r, q: mrr_at(r, q, 10),
        "recall@10": lambda r, q: recall_at(r, q, 10),
        "recall@100": lambda r, q: recall_at(r, q, 100),
    }
    return {
        name: sum(fn(runs[query_id], qrels[query_id]) for query_id in judged) / len(judged)
        for name, fn in metrics.items()
    } | {"queries": len(judged)}
