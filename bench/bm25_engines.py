"""Why the embedded index does its own BM25: SQLite FTS5 against our numpy postings, same data.

Both hold the same chunks (Zipf-distributed terms, 120 a chunk) and answer the same OR queries of
four terms, keeping only chunks whose document's access list names the searcher's group (1% or 50%
of chunks), top 100 by BM25. FTS5 gets the access list as an indexed table joined in the query.

    .venv/bin/python bench/bm25_engines.py [--chunks 100000] [--queries 10]
"""
import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbsearch.index.base import IndexChunk, IndexMetadata, SearchFilters  # noqa: E402
from kbsearch.index.embedded import EmbeddedIndexBackend  # noqa: E402
from kbsearch.text.analysis import ANALYZER_VERSION  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vocab_size = 30_000
    weights = 1.0 / np.arange(1, vocab_size + 1)
    weights /= weights.sum()
    terms = rng.choice(vocab_size, size=(args.chunks, 120), p=weights)
    groups = ["group:one-percent" if i % 100 == 0 else ("group:half" if i % 2 == 0 else "group:other")
              for i in range(args.chunks)]
    queries = [[f"w{t}" for t in rng.choice(3000, size=4)] for _ in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        fts = sqlite3.connect(f"{tmp}/fts.sqlite3")
        fts.execute("CREATE VIRTUAL TABLE chunks USING fts5(body, tokenize='ascii')")
        fts.execute("CREATE TABLE access (chunk INTEGER, principal TEXT)")
        fts.executemany("INSERT INTO chunks (rowid, body) VALUES (?, ?)",
                        ((i + 1, " ".join(f"w{t}" for t in terms[i])) for i in range(args.chunks)))
        fts.executemany("INSERT INTO access VALUES (?, ?)", ((i + 1, g) for i, g in enumerate(groups)))
        fts.execute("CREATE INDEX access_by_principal ON access (principal, chunk)")
        fts.commit()
        ours = EmbeddedIndexBackend(path=f"{tmp}/ours.sqlite3")
        ours.ensure_index(metadata=IndexMetadata("bench-random-vectors", "1", 4, ANALYZER_VERSION))
        zero = np.array([1, 0, 0, 0], dtype=np.float32)
        for start in range(0, args.chunks, 5000):
            ours.upsert_chunks([
                IndexChunk(i + 1, i + 1, "bench", "en", [f"w{t}" for t in terms[i]], zero, frozenset({groups[i]}))
                for i in range(start, min(start + 5000, args.chunks))
            ])
        ours.bm25_search(terms=["w1"], filters=SearchFilters(principals=frozenset({"group:half"})), limit=1)
        print(f"{args.chunks:,} chunks, {args.queries} queries each\n")
        print("| engine | filter admits | p50 ms | max ms |")
        print("|---|---|---|---|")
        for group, label in (("group:one-percent", "1%"), ("group:half", "50%")):
            for engine in ("sqlite-fts5", "kbsearch numpy"):
                timings = []
                for words in queries:
                    began = time.perf_counter()
                    if engine == "sqlite-fts5":
                        fts.execute(
                            "SELECT rowid, bm25(chunks) AS s FROM chunks WHERE chunks MATCH ? AND rowid IN "
                            "(SELECT chunk FROM access WHERE principal = ?) ORDER BY s LIMIT 100",
                            (" OR ".join(f'"{w}"' for w in words), group),
                        ).fetchall()
                    else:
                        ours.bm25_search(terms=words, filters=SearchFilters(principals=frozenset({group})), limit=100)
                    timings.append((time.perf_counter() - began) * 1000)
                print(f"| {engine} | {label} | {np.percentile(timings, 50):.1f} | {max(timings):.1f} |")
        ours.close()
        fts.close()


if __name__ == "__main__":
    main()
