"""Cold start, memory and search latency of the embedded index in a fresh process (100k / 1M chunks).

Builds the corpus of ``bench_search.py`` (random 384-d unit vectors, 120 Zipf terms a chunk, four
chunks a document, 1% and 50% access groups) unless ``--path`` already holds one, opens it once so
the mapped segment exists, then starts new Python processes that each open the index and run their
first search. Cold start = from constructing the backend to the first result, inside the child
(interpreter and imports are reported apart). Run twice: with the segment files in the page cache
(a web worker restarting on a running machine) and after dropping them from it with
``posix_fadvise(DONTNEED)`` (first process after a reboot). The child then runs the search rows and
reports RSS split into anonymous (private to the process) and file-backed (mapped segment pages,
shared by every process through the page cache).

    .venv/bin/python bench/bench_coldstart.py [--chunks 100000] [--queries 200] [--path DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_search import build  # noqa: E402

from kbsearch.index.base import SearchFilters  # noqa: E402
from kbsearch.index.embedded import EmbeddedIndexBackend  # noqa: E402

CHILD = r"""
import json, sys, time
started = time.perf_counter()
import numpy as np
from kbsearch.index.base import SearchFilters
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.index.ranking import rank_documents
sys.path.insert(0, sys.argv[3])
from bench_search import DIM, search_percentiles, vocabulary

def rss():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) // 1024
    return fields

imported = time.perf_counter()
index = EmbeddedIndexBackend(path=sys.argv[1])
hits = index.bm25_search(terms=["w1"], filters=SearchFilters(principals=frozenset({"group:half"})), limit=10)
first = time.perf_counter()
assert hits, "the first search found nothing"
rss_after_first = rss()
# Then one hybrid search at the 50% filter: it touches half the vectors, which after a reboot
# come from disk, not the page cache.
vector = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
began = time.perf_counter()
rank_documents(index=index, query="w1 w2", query_vector=vector / np.linalg.norm(vector),
               filters=SearchFilters(principals=frozenset({"group:half"})), mode="hybrid", alpha=0.5, limit=10)
result = {"imports_s": imported - started, "cold_start_s": first - imported, "rss_after_first": rss_after_first,
          "first_hybrid_s": time.perf_counter() - began}
queries = int(sys.argv[2])
if queries:
    rng = np.random.default_rng(7)
    vocab = vocabulary(30_000, np.random.default_rng(0))
    rows = []
    for group, label in (("group:one-percent", "1%"), ("group:half", "50%")):
        filters = SearchFilters(principals=frozenset({group}))
        for mode in ("bm25", "vector", "hybrid"):
            rows.append([label, mode, *search_percentiles(index, vocab, filters, mode, queries, rng)])
    result["rows"] = rows
    result["rss_after_queries"] = rss()
print(json.dumps(result))
"""


def drop_from_page_cache(directory: Path) -> None:
    for file in directory.rglob("*"):
        if file.is_file():
            descriptor = os.open(file, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


def child(path: str, queries: int) -> dict:
    completed = subprocess.run([sys.executable, "-c", CHILD, path, str(queries), str(REPO / "bench")],
                               cwd=REPO, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(completed.stderr)
    return json.loads(completed.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--path", help="directory to build in (and reuse when it holds an index)")
    args = parser.parse_args()
    directory = Path(args.path or tempfile.mkdtemp(prefix="bench-coldstart-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = str(directory / "bench.sqlite3")
    if not Path(path).exists():
        started = time.perf_counter()
        build(path, args.chunks, np.random.default_rng(0))
        print(f"write {args.chunks:,} chunks into SQLite: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    index = EmbeddedIndexBackend(path=path)
    index.bm25_search(terms=["w1"], filters=SearchFilters(principals=frozenset({"group:half"})), limit=1)
    index.close()
    print(f"first open, writing the segment if missing: {time.perf_counter() - started:.1f} s")
    segment_bytes = sum(f.stat().st_size for f in directory.rglob("*.npy"))
    print(f"segment on disk: {segment_bytes / 2**20:.0f} MB\n")

    warm = [child(path, 0) for _ in range(3)]
    drop_from_page_cache(directory)
    cold = child(path, 0)
    measured = child(path, args.queries)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| start | imports s | open to first result s | RSS MB (anon / file-backed) | then a hybrid 50% search s |")
    print("|---|---|---|---|---|")
    for label, run in [*(("page cache warm", run) for run in warm), ("segment dropped from page cache", cold)]:
        rss = run["rss_after_first"]
        print(f"| {label} | {run['imports_s']:.2f} | {run['cold_start_s']:.3f} | "
              f"{rss['VmRSS']} ({rss['RssAnon']} / {rss['RssFile']}) | {run['first_hybrid_s']:.3f} |")
    rss = measured["rss_after_queries"]
    print(f"\nafter the search rows: RSS {rss['VmRSS']} MB ({rss['RssAnon']} anon / {rss['RssFile']} file-backed),"
          f" peak {rss['VmHWM']} MB\n")
    print("| filter admits | mode | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    for label, mode, p50, p95 in measured["rows"]:
        print(f"| {label} | {mode} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
