"""Encoder speed on this machine: query latency (``--queries``) or passage throughput (default).

Queries (issue 10):  .venv/bin/python bench/bench_encoder.py --queries [--calls 60] [--lengths 8,16,32]
        [--threads 1,2] [--runtimes onnxruntime,openvino]

One query at a time, as a search encodes it, of exactly 8, 16 and 32 model tokens (``query: `` prefix
and the two special tokens included), cut from the questions of /work/shared/eval/mixed-kb (English,
Chinese, Japanese; a different question on every call). Side by side in one run, interleaved call by
call so a busy machine slows every path alike:
  * before: the query path as it was before issue 10: float32 through ``nn.Linear`` (MKL), or
    bfloat16 under autocast, the model called through sentence-transformers, no cache;
  * after: ``Encoder`` in float32 and in the automatic precision (linear layers prepacked for
    oneDNN), its query cache off; and one row of cache hits (the same query again);
  * with ``--runtimes``, the same model exported to ONNX Runtime and/or OpenVINO (not dependencies of
    kbsearch: measured when importable), with their cosine to float32.
Prints a Markdown table: p50 and p95 wall milliseconds per length with the p50 CPU milliseconds (all
threads of the process: steadier than wall time on a shared machine), the threads, the load average.

Passages:  .venv/bin/python bench/bench_encoder.py [--model SPEC] [--chunks 128] [--tokens 256]
        [--min-tokens N] [--batch-sizes 8,16,32] [--plain] [--threads 1,2] [--bf16]

Passages come from /work/shared/eval/mixed-kb (English, Chinese, Japanese), cut to the requested
token count with the model's own tokenizer. For each setting the script reports chunks/s and the
share of wall time spent outside the model forward (tokenizing, padding, sorting, copying).
`--plain` adds stock `SentenceTransformer.encode` for comparison; `--bf16` also runs the Encoder in
bfloat16 and reports its cosine agreement with float32.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

# As every kbsearch process does (embeddings/__init__.py), before torch loads OpenMP: idle OpenMP
# threads sleep instead of spinning, which on a shared machine made two-thread runs 10-100x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.query_paths import after_paths, before_paths, runtime_paths  # noqa: E402
from embeddings.encoder import PASSAGE_PREFIX, QUERY_PREFIX, Encoder, model_kwargs_for  # noqa: E402
from embeddings.loading import DEFAULT_CACHE_DIR, DEFAULT_MODEL_SPEC, resolve_model  # noqa: E402

EVAL = Path("/work/shared/eval/mixed-kb")
CORPUS = EVAL / "corpus.jsonl"
QUERIES = EVAL / "queries.jsonl"


def make_chunks(encoder: Encoder, count: int, tokens: int, min_tokens: int | None = None) -> list[str]:
    """Concatenate corpus passages of one language and cut them at `tokens` tokens each.

    With `min_tokens`, lengths are drawn (seeded) between `min_tokens` and `tokens` instead.
    """
    rng = np.random.default_rng(7)
    tokenizer = encoder._counting_tokenizer  # untruncated Rust tokenizer
    by_language: dict[str, list[str]] = {}
    with open(CORPUS, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            by_language.setdefault(row.get("lang", "?"), []).append(row["text"])
    streams = [iter(texts) for _, texts in sorted(by_language.items())]
    chunks: list[str] = []
    buffers = [""] * len(streams)
    while len(chunks) < count:
        for i, stream in enumerate(streams):
            if len(chunks) >= count:
                break
            length = tokens if min_tokens is None else int(rng.integers(min_tokens, tokens + 1))
            while encoder.count_tokens(buffers[i]) < length:
                buffers[i] += " " + next(stream)
            cut = tokenizer.encode(buffers[i], add_special_tokens=False).offsets[length - 1][1]
            chunks.append(buffers[i][:cut].strip())
            buffers[i] = buffers[i][cut:]
    return chunks


def make_queries(encoder: Encoder, count: int, length: int) -> list[str]:
    """``count`` queries whose model input is exactly ``length`` tokens, prefix and specials included.

    Questions are taken in turn (languages alternate), joined with the next one when too short and
    cut at a token boundary when too long."""
    with open(QUERIES, encoding="utf-8") as handle:
        questions = [json.loads(line)["text"] for line in handle]
    questions = questions[::3] + questions[1::3] + questions[2::3]  # interleave the sets
    overhead = len(encoder._token_ids(["a"], QUERY_PREFIX)[0]) - encoder.count_tokens("a")
    queries: list[str] = []
    stream = iter(questions * 4)
    while len(queries) < count:
        text = next(stream)
        while encoder.count_tokens(text) < length - overhead:
            text += " " + next(stream)
        offsets = encoder._counting_tokenizer.encode(text, add_special_tokens=False).offsets
        candidate = text[: offsets[length - overhead - 1][1]].strip()
        if len(encoder._token_ids([candidate], QUERY_PREFIX)[0]) == length:  # a cut may merge pieces
            queries.append(candidate)
    return queries


def measure_queries(args: argparse.Namespace) -> None:
    path = resolve_model(args.model, cache_dir=args.cache_dir)
    load_before = os.getloadavg()[0]
    paths = before_paths(path) + after_paths(path)
    reference = paths[0]  # before, float32: the vectors everything is compared with
    if args.runtimes:
        paths += runtime_paths(path, [name for name in args.runtimes.split(",") if name])
    lengths = [int(value) for value in args.lengths.split(",")]
    queries = {length: make_queries(reference.encoder, args.calls, length) for length in lengths}
    thread_counts = [int(value) for value in args.threads.split(",") if value] or [torch.get_num_threads()]
    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for path_ in paths:
            path_.set_threads(threads)
        timings = {(path_.label, length): [] for path_ in paths for length in lengths}
        cpu = {(path_.label, length): [] for path_ in paths for length in lengths}
        cosines = {path_.label: 1.0 for path_ in paths}
        for length in lengths:
            for path_ in paths:  # warm-up: first calls build oneDNN kernels and thread pools
                for text in queries[length][:3]:
                    path_.encode(text)
                path_.prime(queries[length])
            for call, text in enumerate(queries[length]):
                expected = reference.encode(text)
                for path_ in paths[call % len(paths):] + paths[: call % len(paths)]:
                    started, cpu_started = time.perf_counter(), time.process_time()
                    vector = path_.encode(text)
                    timings[(path_.label, length)].append((time.perf_counter() - started) * 1000)
                    cpu[(path_.label, length)].append((time.process_time() - cpu_started) * 1000)
                    cosines[path_.label] = min(cosines[path_.label], float(vector @ expected))
        for path_ in paths:
            row = {"path": path_.label, "threads": threads, "cosine": cosines[path_.label]}
            for length in lengths:
                values = sorted(timings[(path_.label, length)])
                row[length] = (statistics.median(values), values[min(len(values) - 1, round(0.95 * (len(values) - 1)))],
                               statistics.median(cpu[(path_.label, length)]))
            rows.append(row)
    cpu = _cpu_name()
    print(f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__}; {args.calls} calls per length and path; "
          f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    # CPU time (all threads of this process) is steadier than wall time on a shared machine.
    header = " | ".join(f"{length} tokens: p50 / p95 ms (CPU p50)" for length in lengths)
    print(f"| path | threads | {header} | min cosine to float32 |")
    print("|---|---|" + "---|" * len(lengths) + "---|")
    for row in rows:
        cells = " | ".join(f"{row[length][0]:.1f} / {row[length][1]:.1f} ({row[length][2]:.1f})" for length in lengths)
        print(f"| {row['path']} | {row['threads']} | {cells} | {row['cosine']:.6f} |")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown CPU"


class ForwardTimer:
    """Wraps a module's forward to add up the seconds spent inside it."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.seconds = 0.0
        self._forward = module.forward
        module.forward = self  # instance attribute shadows the class method

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._forward(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def time_encoder(encoder: Encoder, chunks: list[str], repeats: int) -> dict:
    """Best-of-`repeats` run: chunks/s, CPU seconds per chunk, share of wall time outside forward.

    CPU time is reported because this machine is shared: under load, wall-clock rates drop while
    CPU seconds per chunk (with one thread) stay a fair measure of the work.
    """
    timer = ForwardTimer(encoder._model)
    encoder.encode_passages(chunks[: encoder.batch_size])  # warm-up
    best: dict = {}
    for _ in range(repeats):
        timer.seconds = 0.0
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        result = encoder.encode_passages(chunks)
        wall = time.perf_counter() - wall_start
        cpu = time.process_time() - cpu_start
        rate = len(chunks) / wall
        if rate > best.get("rate", 0.0):
            best = {"rate": rate, "cpu_per_chunk": cpu / len(chunks), "outside": 1.0 - timer.seconds / wall,
                    "result": result}
    del encoder._model.forward  # drop the timing wrapper
    return best


def describe(label: str, stats: dict) -> str:
    return (f"{label}: {stats['rate']:6.1f} chunks/s wall, {stats['cpu_per_chunk'] * 1000:6.1f} CPU-ms/chunk, "
            f"{stats['outside']:5.1%} of wall time outside model forward")


def time_plain(path: str, chunks: list[str], batch_size: int, repeats: int) -> dict:
    """Stock `SentenceTransformer.encode` (sorts by characters, tokenizes per batch)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu", model_kwargs=model_kwargs_for(path))
    inputs = [PASSAGE_PREFIX + chunk for chunk in chunks]
    model.encode(inputs[:batch_size], batch_size=batch_size)
    best: dict = {}
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        model.encode(inputs, batch_size=batch_size, normalize_embeddings=True)
        wall = time.perf_counter() - wall_start
        cpu = time.process_time() - cpu_start
        if len(chunks) / wall > best.get("rate", 0.0):
            best = {"rate": len(chunks) / wall, "cpu_per_chunk": cpu / len(chunks)}
    return best


def measure_passages(args: argparse.Namespace) -> None:
    path = resolve_model(args.model, cache_dir=args.cache_dir)
    encoder = Encoder(path)
    fast = Encoder(path, precision="bfloat16") if args.bf16 else None
    chunks = make_chunks(encoder, args.chunks, args.tokens, args.min_tokens)
    lengths = [encoder.count_tokens(chunk) for chunk in chunks]
    print(f"model {path}: {len(chunks)} chunks, tokens/chunk mean {np.mean(lengths):.0f} "
          f"(+{encoder.count_tokens(PASSAGE_PREFIX.strip()) + 2} prefix/special)")
    thread_counts = [int(t) for t in args.threads.split(",") if t] or [torch.get_num_threads()]
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            tag = f"threads={threads} batch={batch_size:3d}"
            encoder.batch_size = batch_size
            reference = time_encoder(encoder, chunks, args.repeats)
            print(describe(f"Encoder fp32 {tag}", reference), flush=True)
            if fast is not None:
                fast.batch_size = batch_size
                stats = time_encoder(fast, chunks, args.repeats)
                cosine = float(np.min(np.sum(stats["result"] * reference["result"], axis=1)))
                print(describe(f"Encoder bf16 {tag}", stats) + f", min cosine vs fp32 {cosine:.5f}", flush=True)
            if args.plain:
                plain = time_plain(path, chunks, batch_size, args.repeats)
                print(f"plain ST     {tag}: {plain['rate']:6.1f} chunks/s wall, "
                      f"{plain['cpu_per_chunk'] * 1000:6.1f} CPU-ms/chunk", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL_SPEC)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--queries", action="store_true", help="measure query latency instead of passage throughput")
    parser.add_argument("--calls", type=int, default=60, help="queries: calls per length and path")
    parser.add_argument("--lengths", default="8,16,32", help="queries: model tokens per query")
    parser.add_argument("--runtimes", default="", help="queries: also onnxruntime and/or openvino, if importable")
    parser.add_argument("--chunks", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--min-tokens", type=int, default=None, help="mixed lengths from this to --tokens")
    parser.add_argument("--batch-sizes", default="8,16,32")
    parser.add_argument("--threads", default="", help="comma list of torch thread counts to try")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--plain", action="store_true", help="also time stock SentenceTransformer.encode")
    parser.add_argument("--bf16", action="store_true", help="also time the Encoder in bfloat16")
    args = parser.parse_args()
    if args.queries:
        measure_queries(args)
    else:
        measure_passages(args)


if __name__ == "__main__":
    main()
