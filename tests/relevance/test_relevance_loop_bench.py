"""bench/relevance_loop.py: its argument handling and how it aggregates the gate's reports (the run
itself is a measurement, see docs/relevance.md)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("relevance_loop_bench", ROOT / "bench" / "relevance_loop.py")
loop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loop)


def _beir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        (folder / name).write_text("")
    return folder


def test_regression_sets_default_to_every_other_set(tmp_path):
    trained = _beir(tmp_path / "jsquad")
    others = [_beir(tmp_path / "xquad"), _beir(tmp_path / "cmrc")]
    (tmp_path / "notes").mkdir()
    args = loop.parse_args(["--set", str(trained), "--output", str(tmp_path / "out")])
    assert args.regression_sets == sorted(others)
    assert args.split == "question" and args.max_queries == 0


def test_budget_options_pass_through_and_the_gate_is_skipped_by_default(tmp_path):
    args = loop.parse_args(["--set", str(tmp_path), "--max-minutes", "12", "--batch-size", "32", "--bf16",
                            "--max-steps", "40", "--scale", "100", "--negatives", "3", "--regression-set", str(tmp_path / "x")])
    arguments = loop.train_arguments(args, 7)
    assert arguments[:3] == ["--snapshot", "7", "--foreground"]
    assert ["--max-minutes", "12.0"] == arguments[arguments.index("--max-minutes"):][:2]
    assert ["--max-steps", "40"] == arguments[arguments.index("--max-steps"):][:2]
    assert ["--batch-size", "32"] == arguments[arguments.index("--batch-size"):][:2]
    assert ["--scale", "100.0"] == arguments[arguments.index("--scale"):][:2]
    assert ["--negatives", "3"] == arguments[arguments.index("--negatives"):][:2]
    assert "--bf16" in arguments and "--no-evaluate" in arguments and "--epochs" not in arguments
    gated = loop.train_arguments(loop.parse_args(["--set", str(tmp_path), "--gate", "--regression-set", "x"]), 7)
    assert "--no-evaluate" not in gated
    assert "--lora" not in arguments and "--update-fraction" not in arguments


def test_lora_and_the_update_fraction_pass_through_and_a_blend_is_only_measured(tmp_path):
    args = loop.parse_args(["--set", str(tmp_path), "--lora", "--update-fraction", "0.5", "--heldout",
                            "--also-update-fraction", "0.3", "--regression-set", str(tmp_path / "x")])
    arguments = loop.train_arguments(args, 7)
    assert "--lora" in arguments and ["--update-fraction", "0.5"] == arguments[arguments.index("--update-fraction"):][:2]
    # The blend is made from the trained model afterwards; training itself is not told about it.
    assert "0.3" not in arguments and (args.also_update_fraction, args.heldout) == (0.3, True)


def test_training_data_options_come_from_what_simulate_use_printed():
    printed = "1 passages loaded\ntest half: 3 questions in /x\nnext: manage.py training_data --exclude-source sim-a-test\n"
    assert loop.next_training_data_options(printed) == ["--exclude-source", "sim-a-test"]
    assert loop.next_training_data_options("next: manage.py training_data\n") == []


def test_reports_become_rows_and_a_table():
    scores = {"before": {"ndcg@10": 0.9, "mrr@10": 0.8, "recall@10": 0.95},
              "after": {"ndcg@10": 0.93, "mrr@10": 0.85, "recall@10": 0.95},
              "delta": {"ndcg@10": 0.03, "mrr@10": 0.05, "recall@10": 0.0}}
    test = {"sets": [{"name": "jsquad test half", "kind": "in-domain", "queries": 10, "passages": 5,
                      "modes": {"vector": scores, "hybrid": scores}}]}
    regression = {"sets": [{"name": "broken", "kind": "regression", "error": "no corpus.jsonl"}]}
    rows = loop.rows_from_reports(test, regression)
    assert [(row["set"], row.get("mode")) for row in rows] == [
        ("jsquad test half", "vector"), ("jsquad test half", "hybrid"), ("broken", None)]
    table = loop.markdown_table(rows)
    assert "| jsquad test half | vector | 10 | 0.9000 → 0.9300 (+0.0300) |" in table
    assert "error: no corpus.jsonl" in table
