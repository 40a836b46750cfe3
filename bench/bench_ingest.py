"""Ingest throughput: a file-share sync end to end against the model alone, per precision.

A bulk corpus (passages of ../shared/eval/mixed-kb, English, Chinese and Japanese, sampled evenly)
is written out as a folder of Markdown files, registered as a ``filesystem`` source and synced with
``source_sync`` into a throwaway SQLite database and embedded index, exactly as ``manage.py
sync_source`` would: walking and reading files, parsing, language detection, chunking (with its
token counts), embedding, analysis, database rows, the outbox and the index.

The model-only rate is the same encoder on the same chunk texts, in calls of the same sizes as the
ingest made, with nothing else running; cosine compares each precision's vectors with float32's.
Each precision runs in its own process (a fresh database, index and model load). Inside a run, a
few functions are wrapped with timers to show where the time outside the model goes (parsing,
tokenizer calls while chunking, analysis, database and index writes, the outbox). With ingest
overlapping the model and the rest, those parts add up to more than the wall time they cost.

On a shared machine wall-clock rates follow the other load, so two load-robust figures are given
as well: the process's CPU time per chunk (end to end and model alone), and the CPU time of the
ingesting thread outside the model (its thread time minus what it spent inside encoder calls),
which is what ingest adds to the model whatever else runs. ``--repeat`` alternates rounds of sync
and model alone and shows medians.

    .venv/bin/python bench/bench_ingest.py [--documents 400] [--layout passages|articles] [--repeat N]
        [--precision default --precision float32 --precision bfloat16] [--share demo/sample_kb]
        [--profile FILE]

``--precision default`` (the default list starts with it) is whatever the encoder picks with no
setting given (``KBSEARCH_EMBED_PRECISION`` unset); the label shows what it resolved to.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "eval" / "mixed-kb" / "corpus.jsonl"
DEMO_KB = ROOT / "demo" / "sample_kb"
DEFAULT_PRECISIONS = ["default", "float32", "bfloat16"]


# --- the corpus as a file share ----------------------------------------------------------------


def write_share(folder: Path, *, corpus: Path, documents: int, layout: str) -> int:
    """Write ``documents`` files (passages sampled evenly over the corpus) under ``folder``.

    ``passages``: one file per passage. ``articles``: the passages of one article (same title) in
    one file, a heading per article, as a wiki export looks; ``documents`` counts articles then.
    """
    rows = [json.loads(line) for line in corpus.open(encoding="utf-8")]
    folder.mkdir(parents=True)
    (folder / "_access.yaml").write_text("principals: [public]\n", encoding="utf-8")
    if layout == "passages":
        stride = max(1, len(rows) // documents)
        picked = [[row] for row in rows[::stride][:documents]]
    else:
        articles: dict[tuple[str, str], list[dict]] = {}
        for row in rows:
            articles.setdefault((row["_id"].split(":")[0], row["title"]), []).append(row)
        groups = list(articles.values())
        stride = max(1, len(groups) // documents)
        picked = groups[::stride][:documents]
    for number, group in enumerate(picked):
        title = group[0]["title"].replace("_", " ")
        body = "\n\n".join(row["text"] for row in group)
        (folder / f"{number:05d}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    return len(picked)


# --- timers around the parts outside the model ------------------------------------------------


class Probes:
    """Seconds and calls per named part; a part nested in another is counted in both."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner, attribute: str, part: str) -> None:
        """Time ``owner.attribute`` (a module function, a class method or an instance's) if it exists."""
        inner = getattr(owner, attribute, None)
        if inner is None:
            return

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - started
                self.calls[part] += 1

        setattr(owner, attribute, timed)

    def install(self, encoder) -> None:
        from connectors import filesystem
        from kbsearch.documents import indexing, outbox, services

        try:
            from kbsearch.documents import ingest_batches
        except ImportError:  # the code before batching
            ingest_batches = None
        from kbsearch.index.embedded import EmbeddedIndexBackend

        for suffix, parser in list(filesystem._PARSERS.items()):
            holder = type("Holder", (), {"parse": staticmethod(parser)})
            self.wrap(holder, "parse", "parse files")
            filesystem._PARSERS[suffix] = holder.parse
        self.wrap(services, "detect_language", "language detection")
        self.wrap(services, "chunk_blocks", "chunking (tokenizer included)")
        self.wrap(encoder, "count_tokens", "tokenizer calls while chunking")
        self.wrap(encoder, "count_tokens_many", "tokenizer calls while chunking")
        self.wrap(indexing, "chunk_terms", "analysis (index terms)")
        # Database writes: the per-document store before, the batched one after.
        self.wrap(services, "_store", "database writes (documents, chunks, outbox)")
        self.wrap(services, "store_batch", "database writes (documents, chunks, outbox)")
        self.wrap(services, "_stored_versions", "looking up stored versions")
        self.wrap(EmbeddedIndexBackend, "upsert_chunks", "index writes")
        self.wrap(EmbeddedIndexBackend, "delete_documents", "index writes")
        for module in (services, outbox, ingest_batches):
            if module is not None:
                self.wrap(module, "index_changes_clear", "outbox clear")


class TimedEncoder:
    """The encoder with its passage calls timed and their sizes recorded."""

    def __init__(self, encoder) -> None:
        self.inner = encoder
        self.seconds = 0.0
        self.main_thread_cpu = 0.0  # CPU the ingesting thread spent inside the model (none when overlapped)
        self.calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_passages(self, texts):
        started, cpu_started = time.perf_counter(), time.thread_time()
        vectors = self.inner.encode_passages(texts)
        self.seconds += time.perf_counter() - started
        if threading.current_thread() is threading.main_thread():
            self.main_thread_cpu += time.thread_time() - cpu_started
        self.calls.append(len(vectors))
        return vectors


# --- one precision in this process ------------------------------------------------------------


def run_one(args: argparse.Namespace) -> dict:
    tmp = Path(args.work_dir)
    os.environ["KBSEARCH_VAR_DIR"] = str(tmp / "var")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
    os.environ.setdefault("KBSEARCH_MODEL_CACHE_DIR", str(ROOT / "var" / "models"))
    if args.child == "default":
        os.environ.pop("KBSEARCH_EMBED_PRECISION", None)
    else:
        os.environ["KBSEARCH_EMBED_PRECISION"] = args.child
    import django

    django.setup()
    import numpy as np
    from django.core.management import call_command

    from connectors.services import source_create, source_sync
    from embeddings.loading import get_encoder
    from kbsearch.documents.models import Chunk

    call_command("migrate", verbosity=0)
    encoder = get_encoder()
    _ = encoder.index_metadata  # the fingerprint is a one-off at start-up, not ingest work
    encoder.encode_passages(["warm-up passage"] * 8)  # one-off kernel set-up (oneDNN) off the clock
    if args.share:
        share = Path(args.share).resolve()
        files = sum(1 for path in share.rglob("*") if path.is_file() and path.name != "_access.yaml")
    else:
        share = tmp / "share"
        files = write_share(share, corpus=Path(args.corpus), documents=args.documents, layout=args.layout)
    result: dict = {"precision": args.child, "resolved": str(getattr(encoder, "precision", "?")), "files": files}
    if args.no_overlap:
        from kbsearch.documents.ingest_batches import EmbeddingPipeline

        EmbeddingPipeline.overlap = False
    timed = TimedEncoder(encoder)
    probes = Probes()
    probes.install(encoder)

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def sync(key: str, root: Path) -> tuple[float, int]:
        source = source_create(key=key, name=key, connector="filesystem", config={"root": str(root)})
        before = Chunk.objects.count()
        started = time.perf_counter()
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            run = profiler.runcall(source_sync, source=source, encoder=timed)
            profiler.dump_stats(f"{args.profile}.{args.child}")
        else:
            run = source_sync(source=source, encoder=timed)
        elapsed = time.perf_counter() - started
        if run.status != "succeeded":
            raise SystemExit(f"sync of {key} {run.status}: {run.errors[:3]}")
        return elapsed, Chunk.objects.count() - before

    load_before = os.getloadavg()[0]
    rounds = []
    for number in range(args.repeat):
        # Each round syncs the share as a new source (every document new), then runs the model
        # alone on what it stored, so drifting load hits both sides of a ratio alike.
        timed.seconds, timed.main_thread_cpu, timed.calls = 0.0, 0.0, []
        cpu_started, thread_started = cpu(), time.thread_time()
        total, chunks = sync(f"bulk{number}", share)
        cpu_ingest = cpu() - cpu_started
        outside_cpu = time.thread_time() - thread_started - timed.main_thread_cpu
        stored = Chunk.objects.filter(document__source__key=f"bulk{number}").order_by("document_id", "ordinal")
        texts = list(stored.values_list("text", flat=True))
        started, cpu_started = time.perf_counter(), cpu()
        vectors, position = [], 0
        for size in timed.calls:  # the calls the ingest made
            vectors.append(encoder.encode_passages(texts[position : position + size]))
            position += size
        model_only = time.perf_counter() - started
        rounds.append({
            "end_to_end": chunks / total, "model_only": chunks / model_only, "model_in_ingest": chunks / timed.seconds,
            "cpu_ms_per_chunk": 1000 * cpu_ingest / chunks,
            "model_cpu_ms_per_chunk": 1000 * (cpu() - cpu_started) / chunks, "seconds": total,
            "outside_cpu_ms_per_chunk": 1000 * outside_cpu / chunks,
        })
    np.save(tmp / f"vectors-{args.child}.npy", np.concatenate(vectors) if vectors else np.empty((0, 0)))
    tokens = list(stored.values_list("token_count", flat=True))
    result.update({name: statistics.median(r[name] for r in rounds) for name in rounds[0]})
    result.update(
        chunks=chunks, mean_tokens=sum(tokens) / max(1, len(tokens)), rounds=rounds,
        ratios=[r["end_to_end"] / r["model_only"] for r in rounds],
        encode_calls=list(timed.calls), load_before=load_before, load_after=os.getloadavg()[0],
        parts={part: round(seconds / args.repeat, 3) for part, seconds in sorted(probes.seconds.items())},
        part_calls={part: calls // args.repeat for part, calls in probes.calls.items()},
    )
    return result


# --- the side-by-side run ---------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--layout", choices=["passages", "articles"], default="passages")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--precision", action="append", help="default, float32 or bfloat16; repeatable")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of sync then model alone; medians shown")
    parser.add_argument("--no-overlap", action="store_true", help="embed on the ingesting thread (to compare)")
    parser.add_argument("--share", type=Path, help=f"sync this folder instead of the corpus (e.g. {DEMO_KB})")
    parser.add_argument("--profile", help="write a cProfile of each sync to FILE.<precision>")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args)))
        return
    precisions = list(dict.fromkeys(args.precision or DEFAULT_PRECISIONS))
    rows = []
    with tempfile.TemporaryDirectory() as vectors_dir:
        for precision in precisions:
            with tempfile.TemporaryDirectory() as work_dir:
                command = [sys.executable, __file__, "--child", precision, "--work-dir", work_dir,
                           "--documents", str(args.documents), "--layout", args.layout, "--corpus", str(args.corpus),
                           "--repeat", str(args.repeat)]
                command += ["--no-overlap"] * args.no_overlap
                command += (["--share", str(args.share)] if args.share else []) + (
                    ["--profile", args.profile] if args.profile else [])
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{precision} failed:\n{done.stderr[-3000:]}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                os.replace(Path(work_dir) / f"vectors-{precision}.npy", Path(vectors_dir) / f"{precision}.npy")
                rows.append(row)
        cosines = _cosines(rows, Path(vectors_dir))
    _report(rows, cosines, args)


def _cosines(rows: list[dict], folder: Path) -> dict[str, tuple[float, float]]:
    import numpy as np

    reference = next((row for row in rows if row["resolved"] == "float32"), None)
    if reference is None:
        return {}
    base = np.load(folder / f"{reference['precision']}.npy")
    found = {}
    for row in rows:
        other = np.load(folder / f"{row['precision']}.npy")
        if other.shape == base.shape:
            cosine = np.sum(base * other, axis=1)
            found[row["precision"]] = (float(cosine.mean()), float(cosine.min()))
    return found


def _ratios(row: dict) -> str:
    shown = f"{100 * statistics.median(row['ratios']):.0f}%"
    if len(row["ratios"]) > 1:
        shown += f" ({', '.join(f'{100 * ratio:.0f}' for ratio in row['ratios'])})"
    return shown


def _report(rows: list[dict], cosines: dict, args: argparse.Namespace) -> None:
    first = rows[0]
    print(f"{first['files']} files ({args.share or args.layout}) -> {first['chunks']} chunks, mean {first['mean_tokens']:.0f} "
          f"content tokens; {os.cpu_count()} CPUs; medians of {args.repeat} round(s)"
          + ("; embedding not overlapped" if args.no_overlap else ""))
    print("| precision | end to end chunks/s | model-only chunks/s | end to end / model-only | model inside ingest "
          "chunks/s | CPU ms per chunk, end to end / model-only | cosine to float32 mean / min | load avg before / after |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        label = row["precision"] if row["precision"] == row["resolved"] else f"{row['precision']} ({row['resolved']})"
        cosine = cosines.get(row["precision"])
        shown = f"{cosine[0]:.6f} / {cosine[1]:.6f}" if cosine else "-"
        print(f"| {label} | {row['end_to_end']:.1f} | {row['model_only']:.1f} | "
              f"{_ratios(row)} | {row['model_in_ingest']:.1f} | "
              f"{row['cpu_ms_per_chunk']:.0f} / {row['model_cpu_ms_per_chunk']:.0f} | {shown} | "
              f"{row['load_before']:.1f} / {row['load_after']:.1f} |")
    for row in rows:
        outside = row["seconds"] - row["chunks"] / row["model_only"]
        print(f"\n{row['precision']}: {row['seconds']:.1f} s end to end, {outside:.1f} s more than the model alone; "
              f"{row['outside_cpu_ms_per_chunk']:.1f} CPU ms per chunk outside the model (the ingesting thread); "
              f"encode calls {row['encode_calls']}; per round, seconds (wall) outside the model:")
        for part, seconds in row["parts"].items():
            print(f"  {part:<46} {seconds:7.2f} s  ({row['part_calls'][part]} calls)")


if __name__ == "__main__":
    main()
