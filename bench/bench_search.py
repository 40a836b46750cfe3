"""Search latency of the embedded index on 100,000 chunks, query encoding excluded.

Vectors are random unit vectors (384-d, as e5-small); terms follow a Zipf distribution over a
vocabulary mixing English words and CJK bigrams, 120 terms a chunk. Access lists: 1% of documents
carry group:one-percent, 50% carry group:half; the searcher holds only that group, so each run
measures a filter admitting 1% or 50% of the chunks. Prints a Markdown table.

    .venv/bin/python bench/bench_search.py [--chunks 100000] [--queries 200] [--user-groups 500]
"""
import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbsearch.index.base import IndexChunk, IndexMetadata, SearchFilters  # noqa: E402
from kbsearch.index.embedded import EmbeddedIndexBackend  # noqa: E402
from kbsearch.index.ranking import rank_documents  # noqa: E402
from kbsearch.text.analysis import ANALYZER_VERSION  # noqa: E402

DIM = 384


def vocabulary(size: int, rng) -> list[str]:
    han = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    words = []
    for i in range(size):
        if i % 3 == 0:
            words.append(rng.choice(han) + rng.choice(han))
        else:
            words.append(f"w{i}")
    return words


def build(path: str, chunks: int, rng, *, places: int = 0) -> list[str]:
    """Write the corpus; with ``places``, document ``d`` is in place ``bench:p<(d // 7) % places>``
    (by sevens, so a place holds documents of either parity, as the access groups split them)."""
    vocab = vocabulary(30_000, rng)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    index = EmbeddedIndexBackend(path=path)
    index.ensure_index(metadata=IndexMetadata("bench-random-vectors", "1", DIM, ANALYZER_VERSION))
    batch = []
    for start in range(0, chunks, 5000):
        count = min(5000, chunks - start)
        vectors = rng.normal(size=(count, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        terms = rng.choice(len(vocab), size=(count, 120), p=weights)
        batch = []
        for i in range(count):
            chunk_id = start + i + 1
            document_id = (chunk_id + 3) // 4  # four chunks a document
            principals = {"group:everyone"}
            # Team groups split each filter's documents 2,000 ways, so a searcher in hundreds of
            # groups (--user-groups) is admitted to the same share through many principals.
            if document_id % 100 == 0:
                principals.update({"group:one-percent", f"group:one-percent-team-{(document_id // 100) % 2000}"})
            if document_id % 2 == 0:
                principals.update({"group:half", f"group:half-team-{(document_id // 2) % 2000}"})
            batch.append(
                IndexChunk(chunk_id, document_id, "bench", "zh" if i % 2 else "en",
                           [vocab[t] for t in terms[i]], vectors[i], frozenset(principals),
                           place=f"bench:p{(document_id // 7) % places}" if places else "")
            )
        index.upsert_chunks(batch).raise_for_failures()
    index.close()
    return vocab


def search_percentiles(index, vocab: list[str], filters: SearchFilters, mode: str, queries: int, rng
                       ) -> tuple[float, float]:
    """p50 and p95 in ms of ``queries`` searches of four random words (and a random vector)."""
    timings = []
    for _ in range(queries):
        query = " ".join(vocab[int(i)] for i in rng.integers(0, 3000, size=4))
        vector = rng.normal(size=DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        began = time.perf_counter()
        rank_documents(index=index, query=query, query_vector=vector, filters=filters, mode=mode, alpha=0.5, limit=10)
        timings.append((time.perf_counter() - began) * 1000)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 95))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--user-groups", type=int, default=1,
                        help="groups the searcher holds: the filter's group plus this many minus one of its teams")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.sqlite3")
        started = time.perf_counter()
        vocab = build(path, args.chunks, rng)
        build_seconds = time.perf_counter() - started
        index = EmbeddedIndexBackend(path=path)
        started = time.perf_counter()
        index.bm25_search(terms=["w1"], filters=SearchFilters(principals=frozenset({"group:half"})), limit=1)
        load_seconds = time.perf_counter() - started
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # The first search of a new backend maps the segment the writer left and replays the log
        # past it (bench/bench_coldstart.py measures this in a fresh process).
        print(f"{args.chunks:,} chunks; write {build_seconds:.1f} s; first search {load_seconds:.2f} s; "
              f"peak RSS {rss_mb:.0f} MB; searcher in {args.user_groups} group(s)\n")
        print("| filter admits | mode | p50 ms | p95 ms |")
        print("|---|---|---|---|")
        for group, label in (("group:one-percent", "1%"), ("group:half", "50%")):
            teams = {f"{group}-team-{k}" for k in range(args.user_groups - 1)}
            filters = SearchFilters(principals=frozenset({group, *teams}))
            for mode in ("bm25", "vector", "hybrid"):
                p50, p95 = search_percentiles(index, vocab, filters, mode, args.queries, rng)
                print(f"| {label} | {mode} | {p50:.1f} | {p95:.1f} |")
        index.close()


if __name__ == "__main__":
    main()
