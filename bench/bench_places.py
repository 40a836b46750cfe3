"""The place filter in the embedded index: its cost per search, moving documents, and the one-off
load an upgrade to segment format 2 costs (100,000 chunks).

The corpus of ``bench_search.py`` with every document in one of 50 places (2% of the documents
each, ``build(places=50)``). Search rows: the 50% access filter alone, then with one place (2%),
five places OR-ed (10%) and 25 places (50%); query encoding excluded. Then 1,000 documents are
moved (``update_places_many``) and a second process catches up with the move; last, the segment
directory is removed and a new backend's first search loads the store and writes a new segment,
which is what the first search of each generation costs once after the upgrade.

    .venv/bin/python bench/bench_places.py [--chunks 100000] [--queries 200]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search import DIM, build, search_percentiles  # noqa: E402

from kbsearch.index.base import SearchFilters  # noqa: E402
from kbsearch.index.embedded import EmbeddedIndexBackend  # noqa: E402
from kbsearch.index.embedded.segments import segments_directory  # noqa: E402

PLACES = 50


def timed_rows(index, vocab, queries: int, rng) -> list[tuple[str, str, float, float]]:
    rows = []
    cases = [("none", None), ("1 place (2%)", {"bench:p1"}), ("5 places (10%)", {f"bench:p{i}" for i in range(5)}),
             ("25 places (50%)", {f"bench:p{i}" for i in range(25)})]
    for label, places in cases:
        filters = SearchFilters(principals=frozenset({"group:half"}),
                                places=frozenset(places) if places is not None else None)
        for mode in ("bm25", "vector", "hybrid"):
            rows.append((label, mode, *search_percentiles(index, vocab, filters, mode, queries, rng)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.sqlite3")
        started = time.perf_counter()
        vocab = build(path, args.chunks, rng, places=PLACES)
        print(f"{args.chunks:,} chunks in {PLACES} places; write {time.perf_counter() - started:.1f} s; "
              f"load average {os.getloadavg()[0]:.2f}\n")
        reader = EmbeddedIndexBackend(path=path)
        reader.bm25_search(terms=["w1"], filters=SearchFilters(principals=frozenset({"group:half"})), limit=1)
        print("| place filter (with the 50% access filter) | mode | p50 ms | p95 ms |")
        print("|---|---|---|---|")
        for label, mode, p50, p95 in timed_rows(reader, vocab, args.queries, rng):
            print(f"| {label} | {mode} | {p50:.1f} | {p95:.1f} |")

        writer = EmbeddedIndexBackend(path=path)
        moved = {document_id: "bench:moved" for document_id in range(1, 4001, 4)}  # 1,000 documents
        began = time.perf_counter()
        writer.update_places_many(moved).raise_for_failures()
        move_seconds = time.perf_counter() - began
        began = time.perf_counter()
        found = reader.vector_search(vector=np.ones(DIM, dtype=np.float32) / np.sqrt(DIM), limit=10_000, filters=SearchFilters(
            principals=frozenset({"group:everyone"}), places=frozenset({"bench:moved"})))
        catch_up_seconds = time.perf_counter() - began
        assert {hit.document_id for hit in found} == set(moved), "the reader missed the move"
        print(f"\nmove 1,000 documents: {move_seconds * 1000:.0f} ms in the writer; the reader's next search "
              f"(replaying it) {catch_up_seconds * 1000:.0f} ms")
        reader.close()
        writer.close()

        shutil.rmtree(segments_directory(Path(path)))
        upgraded = EmbeddedIndexBackend(path=path)
        began = time.perf_counter()
        upgraded.bm25_search(terms=["w1"], filters=SearchFilters(principals=frozenset({"group:half"})), limit=1)
        print(f"first search without a usable segment (load the store, write a format-2 segment): "
              f"{time.perf_counter() - began:.1f} s")
        upgraded.close()
        later = EmbeddedIndexBackend(path=path)
        began = time.perf_counter()
        later.bm25_search(terms=["w1"], filters=SearchFilters(principals=frozenset({"group:half"})), limit=1)
        print(f"the next process's first search (maps the new segment): {(time.perf_counter() - began) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
