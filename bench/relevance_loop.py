"""The issue-11 measurement in one command: simulated use -> training data -> fine-tuning -> the
default model and the fine-tuned one compared on the test half and on the sets not trained on.

Runs in a throwaway var dir (a temp folder: SQLite, the embedded index, its own training and
trained-model folders); only the default model is read from the shared model cache (var/models).
The steps are the product's own commands, in order:

1. ``simulate_use SET --split question|passage`` (half the questions become logged searches and
   clicks; the other half is written as the test set);
2. ``training_data`` with the options simulate_use prints (``--exclude-source ...-test`` for the
   passage split) and ``--json``;
3. ``train --snapshot ID --foreground`` with the budget options passed through, ``--no-evaluate``
   unless ``--gate`` (the product gate judges on the snapshot's held-out slice of the click half);
4. the default model and the fine-tuned one evaluated with the gate's code (``gate_evaluate``) on the
   test half (every question) and on the regression sets (the other shared sets; ``--max-queries``
   questions each, a fixed sample by question-id hash), in vector and hybrid mode.

Writes ``<output>.json`` (before, after, delta per set and mode, the commands, phase wall and CPU
seconds, load averages) and ``<output>.md`` (the same as tables), and prints the Markdown.

    .venv/bin/python bench/relevance_loop.py [--set ../shared/eval/jsquad-valid] [--split question]
        [--limit N] [--max-minutes 20] [--max-steps N] [--batch-size 32] [--bf16]
        [--regression-set PATH ...] [--max-queries 300] [--gate] [--output var/relevance-measure/NAME]
"""
import argparse
import io
import json
import os
import resource
import shlex
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL_ROOT = ROOT.parent / "shared" / "eval"
METRICS = ("ndcg@10", "mrr@10", "recall@10")
MODES = ("vector", "hybrid")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=EVAL_ROOT / "jsquad-valid", help="the BEIR set used as the company")
    parser.add_argument("--split", choices=("question", "passage"), default="question")
    parser.add_argument("--rank", default="search", help="simulate_use --rank (default search)")
    parser.add_argument("--limit", type=int, help="simulate_use --limit: only the first N click questions")
    budget = parser.add_argument_group("training (passed to manage.py train)")
    budget.add_argument("--max-minutes", type=float, default=20.0)
    budget.add_argument("--max-steps", type=int)
    budget.add_argument("--epochs", type=float)
    budget.add_argument("--batch-size", type=int)
    budget.add_argument("--learning-rate", type=float)
    budget.add_argument("--scale", type=float, help="1 / temperature of the loss (manage.py train --scale)")
    budget.add_argument("--negatives", type=int, help="hard negatives per pair (manage.py train --negatives)")
    budget.add_argument("--update-fraction", type=float, help="share of the update kept (manage.py train --update-fraction)")
    budget.add_argument("--also-update-fraction", type=float, metavar="F",
                        help="also measure the trained model pulled back to this share of its update, "
                             "blended from the same run (embeddings.update_fraction), on the same sets")
    budget.add_argument("--bf16", action="store_true")
    budget.add_argument("--lora", action="store_true", help="train LoRA adapters (manage.py train --lora)")
    budget.add_argument("--gate", action="store_true", help="also run the product gate after training")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--regression-set", action="append", type=Path, dest="regression_sets",
                            help="repeatable; default every other set under ../shared/eval")
    evaluation.add_argument("--max-queries", type=int, default=0,
                            help="questions per regression set at most (0: all); the test half is always whole")
    evaluation.add_argument("--heldout", action="store_true",
                            help="also evaluate the training log's held-out part, the one to choose settings on")
    evaluation.add_argument("--model", help="the default model's spec (default KBSEARCH_EMBEDDING_MODEL)")
    parser.add_argument("--output", type=Path, help="path without suffix for .json and .md "
                        "(default var/relevance-measure/<set>-<split>-<time>)")
    args = parser.parse_args(argv)
    if args.regression_sets is None:
        args.regression_sets = default_regression_sets(args.set)
    if args.max_queries < 0:
        parser.error("--max-queries must be >= 0")
    if args.output is None:
        args.output = ROOT / "var" / "relevance-measure" / f"{args.set.name}-{args.split}-{datetime.now():%Y%m%d-%H%M%S}"
    return args


def default_regression_sets(trained: Path) -> list[Path]:
    """Every shared set but the one trained on."""
    parent = trained.resolve().parent
    return sorted(path.parent for path in parent.glob("*/corpus.jsonl") if path.parent.resolve() != trained.resolve())


def train_arguments(args: argparse.Namespace, snapshot_id: int) -> list[str]:
    """``manage.py train`` arguments for this measurement."""
    arguments = ["--snapshot", str(snapshot_id), "--foreground"]
    for option in ("max_minutes", "max_steps", "epochs", "batch_size", "learning_rate", "scale", "negatives",
                   "update_fraction"):
        value = getattr(args, option)
        if value is not None:
            arguments += ["--" + option.replace("_", "-"), str(value)]
    if args.bf16:
        arguments.append("--bf16")
    if args.lora:
        arguments.append("--lora")
    if not args.gate:
        arguments.append("--no-evaluate")
    return arguments


def next_training_data_options(simulate_output: str) -> list[str]:
    """The options simulate_use prints on its ``next: manage.py training_data ...`` line."""
    for line in simulate_output.splitlines():
        if line.startswith("next: manage.py training_data"):
            return shlex.split(line[len("next: manage.py training_data"):])
    raise RuntimeError("simulate_use printed no 'next: manage.py training_data' line")


def rows_from_reports(*reports: dict) -> list[dict]:
    """One row per set and mode: before, after and delta of each metric (sets that failed: error)."""
    rows = []
    for report in reports:
        for entry in report["sets"]:
            if entry.get("error"):
                rows.append({"set": entry["name"], "kind": entry["kind"], "error": entry["error"]})
                continue
            for mode, scores in entry["modes"].items():
                rows.append({"set": entry["name"], "kind": entry["kind"], "mode": mode, "queries": entry["queries"],
                             "passages": entry["passages"], **{key: scores[key] for key in ("before", "after", "delta")}})
    return rows


def markdown_table(rows: list[dict]) -> str:
    header = ("| set | mode | questions | " + " | ".join(f"{m} before → after (Δ)" for m in METRICS) + " |\n"
              "|---|---|---:|" + "---|" * len(METRICS) + "\n")
    lines = []
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['set']} | – | – | error: {row['error']} |" + " |" * (len(METRICS) - 1))
            continue
        cells = " | ".join(f"{row['before'][m]:.4f} → {row['after'][m]:.4f} ({row['delta'][m]:+.4f})" for m in METRICS)
        lines.append(f"| {row['set']} | {row['mode']} | {row['queries']} | {cells} |")
    return header + "\n".join(lines) + "\n"


class Phases:
    """Wall and CPU seconds (this process and its children) per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict] = {}

    @contextmanager
    def phase(self, name: str):
        wall, cpu = time.monotonic(), _cpu_seconds()
        print(f"== {name} (load {os.getloadavg()[0]:.1f})", flush=True)
        yield
        self.seconds[name] = {"wall": round(time.monotonic() - wall, 1), "cpu": round(_cpu_seconds() - cpu, 1),
                              "load_after": round(os.getloadavg()[0], 2)}
        print(f"== {name}: {self.seconds[name]}", flush=True)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _throwaway_environment(tmp: str, model: str | None) -> None:
    os.environ["KBSEARCH_VAR_DIR"] = tmp
    os.environ.setdefault("KBSEARCH_MODEL_CACHE_DIR", str(ROOT / "var" / "models"))
    os.environ["KBSEARCH_RELEVANCE_MODELS_DIR"] = str(Path(tmp) / "trained")
    os.environ["KBSEARCH_TRAINING_DIR"] = str(Path(tmp) / "training")
    os.environ["KBSEARCH_RELEVANCE_EVAL_DIR"] = str(Path(tmp) / "eval")
    if model:
        os.environ["KBSEARCH_EMBEDDING_MODEL"] = model
    os.environ.setdefault("KBSEARCH_LOG_FORMAT", "text")
    os.environ.setdefault("KBSEARCH_LOG_LEVEL", "WARNING")
    for name in ("DATABASE_URL", "KBSEARCH_INDEX_PATH", "KBSEARCH_INDEX_BACKEND", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "kbsearch.settings"


def _rows_line(summary: dict) -> str:
    heldout = summary.get("heldout") or {}
    return (f"{summary.get('train_rows', 0)} training rows {json.dumps(summary.get('by_origin', {}))}, "
            f"{heldout.get('queries', 0)} held-out queries")


def _keep(args: argparse.Namespace, reports: dict) -> None:
    """The raw reports as soon as they exist (an evaluation is the costly part of a run)."""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".reports.json").write_text(json.dumps(reports, indent=2, ensure_ascii=False), encoding="utf-8")


def measure(args: argparse.Namespace, tmp: str) -> dict:
    _throwaway_environment(tmp, args.model)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from kbsearch.relevance.gate import GateOptions, gate_evaluate
    from kbsearch.relevance.models import TrainingRun
    from kbsearch.relevance.registry import heldout_dir, load_encoder

    phases, commands = Phases(), []
    call_command("migrate", verbosity=0)
    test_dir = Path(tmp) / "test-half"
    simulate = [str(args.set), "--split", args.split, "--rank", args.rank, "--test-set-dir", str(test_dir)]
    if args.limit is not None:
        simulate += ["--limit", str(args.limit)]
    with phases.phase("simulate_use"):
        out = io.StringIO()
        call_command("simulate_use", *simulate, stdout=out)
        print(out.getvalue(), end="")
    commands.append("simulate_use " + shlex.join(simulate))
    build = next_training_data_options(out.getvalue()) + ["--json"]
    with phases.phase("training_data"):
        out = io.StringIO()
        call_command("training_data", *build, stdout=out)
        snapshot = json.loads(out.getvalue())
    commands.append("training_data " + shlex.join(build))
    print(f"snapshot #{snapshot['id']}: {_rows_line(snapshot['summary'])}")
    train = train_arguments(args, snapshot["id"])
    with phases.phase("train"):
        try:
            call_command("train", *train, stdout=sys.stdout)
        except Exception as error:  # the gate refusing (--gate) still leaves a model to measure
            print(f"train: {error}")
    commands.append("train " + shlex.join(train))
    run = TrainingRun.objects.order_by("-pk").first()
    version = getattr(run, "model_version", None)
    if version is None:
        raise RuntimeError(f"training run #{run.pk if run else '?'} left no model ({run.status if run else 'none'})")
    baseline_spec = settings.KBSEARCH_EMBEDDING_MODEL
    baseline, candidate = load_encoder(baseline_spec), load_encoder(version.spec)
    with phases.phase("evaluate test half"):
        test_report = gate_evaluate(baseline=baseline, candidate=candidate, heldout_dir=test_dir, options=GateOptions.from_settings(
            {"regression_sets": [], "modes": list(MODES), "gate_mode": "hybrid", "max_queries": 0}))
    test_report["sets"][0]["name"] = f"{args.set.name} test half ({args.split} split)"
    if args.heldout:
        # Settings are chosen on this part of the training log, never on the test half above.
        with phases.phase("evaluate held-out part"):
            heldout_report = gate_evaluate(baseline=baseline, candidate=candidate, heldout_dir=heldout_dir(version.snapshot),
                                           options=GateOptions.from_settings({"regression_sets": [], "modes": list(MODES),
                                                                              "gate_mode": "hybrid", "max_queries": 0}))
        heldout_report["sets"][0]["name"] = f"{args.set.name} held-out part of the training log"
        test_report["sets"] = heldout_report["sets"] + test_report["sets"]
    _keep(args, {"test": test_report})
    regression_report = {"sets": []}
    if args.regression_sets:
        with phases.phase("evaluate regression sets"):
            regression_report = gate_evaluate(baseline=baseline, candidate=candidate, heldout_dir=None, in_domain=False, options=GateOptions.from_settings(
                {"regression_sets": [str(path) for path in args.regression_sets], "modes": list(MODES),
                 "gate_mode": "hybrid", "max_queries": args.max_queries}))
        _keep(args, {"test": test_report, "regression": regression_report})
    blended = None
    if args.also_update_fraction is not None:
        with phases.phase(f"evaluate the update x {args.also_update_fraction}"):
            blended = _measure_blend(args, tmp, baseline, version, test_reports=(test_report, regression_report))
        _keep(args, {"test": test_report, "regression": regression_report, "blended": blended})
    return {
        "blended": blended,
        "set": str(args.set), "split": args.split, "commands": commands,
        "snapshot": {"id": snapshot["id"], "summary": snapshot["summary"]},
        "training": {"params": run.params, "steps": run.step, "total_steps": run.total_steps, "stop_reason": run.stop_reason,
                     "training_seconds": run.training_seconds, "seconds_per_step": run.seconds_per_step,
                     "loss_history": run.loss_history, "gate": version.gate_summary if args.gate else "skipped"},
        "baseline": baseline_spec, "candidate": version.name,
        "max_queries_regression": args.max_queries, "phases": phases.seconds,
        "rows": rows_from_reports(test_report, regression_report),
        "machine": {"cpus": os.cpu_count(), "load_end": [round(v, 2) for v in os.getloadavg()]},
    }


def _measure_blend(args: argparse.Namespace, tmp: str, baseline, version, *, test_reports: tuple[dict, dict]) -> dict:
    """The trained model pulled back to a share of its update, evaluated on the sets the trained one was."""
    from django.conf import settings

    from embeddings.loading import resolve_model
    from embeddings.update_fraction import blend_saved_models
    from kbsearch.relevance.gate import GateOptions, gate_evaluate
    from kbsearch.relevance.registry import load_encoder

    cache = Path(settings.KBSEARCH_MODEL_CACHE_DIR)
    folder = blend_saved_models(
        original_dir=Path(resolve_model(settings.KBSEARCH_EMBEDDING_MODEL, cache_dir=cache)),
        trained_dir=Path(resolve_model(version.spec, cache_dir=cache)),
        fraction=args.also_update_fraction, output_dir=Path(tmp) / "blended",
    )
    candidate = load_encoder(str(folder))
    sets = []
    for entry in test_reports[0]["sets"] + test_reports[1]["sets"]:
        if entry.get("error"):
            continue
        # The folder the gate read it from: a regression set may have come from a folder of sets.
        report = gate_evaluate(baseline=baseline, candidate=candidate, heldout_dir=Path(entry["path"]), options=GateOptions.from_settings(
            {"regression_sets": [], "modes": list(MODES), "gate_mode": "hybrid",
             "max_queries": 0 if entry["kind"] == "in-domain" else args.max_queries}))
        report["sets"][0]["name"], report["sets"][0]["kind"] = entry["name"], entry["kind"]
        sets.append(report["sets"][0])
    return {"fraction": args.also_update_fraction, "rows": rows_from_reports({"sets": sets})}


def main(argv=None) -> None:
    args = parse_args(argv)
    started, cpu = time.monotonic(), _cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="kbsearch-measure-") as tmp:
        result = measure(args, tmp)
    result["wall_seconds"], result["cpu_seconds"] = round(time.monotonic() - started, 1), round(_cpu_seconds() - cpu, 1)
    result["argv"] = sys.argv[1:] if argv is None else list(argv)
    training = result["training"]
    text = (f"# Relevance loop on {Path(result['set']).name} ({result['split']} split)\n\n"
            f"Training data: {_rows_line(result['snapshot']['summary'])}. "
            f"Training: {training['steps']}/{training['total_steps']} steps ({training['stop_reason']}), "
            f"{training['training_seconds']:.0f} s, {training['seconds_per_step']:.1f} s/step; gate {training['gate']}. "
            f"Regression sets: {result['max_queries_regression'] or 'all'} questions each at most. "
            f"Whole run {result['wall_seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU.\n\n"
            + markdown_table(result["rows"]))
    if result["blended"]:
        text += (f"\nThe same model with {result['blended']['fraction']} of its update kept:\n\n"
                 + markdown_table(result["blended"]["rows"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    args.output.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
