"""``manage.py evaluate <dir> --mode bm25|vector|hybrid [--alpha A]``: relevance on BEIR-layout sets.

``<dir>`` is one set (holding corpus.jsonl) or a folder of sets, each evaluated in turn. Progress
bars (chunking, embedding, ranking) show on a terminal unless ``--no-progress`` or ``--verbosity 0``.
"""
import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kbsearch.evaluation.beir import EvaluationSetError, load_beir
from kbsearch.evaluation.runner import SPLITS, Evaluator
from kbsearch.index.ranking import MODES
from kbsearch.progress import StagedProgress, add_progress_argument


class Command(BaseCommand):
    help = "Evaluate ranking on BEIR-layout sets: nDCG@10, MRR@10, Recall@10 and Recall@100."

    def add_arguments(self, parser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--mode", choices=MODES, action="append", help="repeatable; default hybrid")
        parser.add_argument("--alpha", type=float, default=None, help="vector weight for hybrid")
        parser.add_argument("--split", choices=SPLITS, default="all")
        parser.add_argument(
            "--plain-fusion", action="store_true", help="hybrid without the BM25 language gate (for comparison)"
        )
        parser.add_argument("--output", type=Path, help="JSON file for the results")
        parser.add_argument("--work-dir", type=Path, default=None, help="where indexes and caches go")
        add_progress_argument(parser)

    def handle(self, *args, **options) -> None:
        from embeddings.loading import get_encoder

        directory: Path = options["directory"]
        if (directory / "corpus.jsonl").is_file():
            set_dirs = [directory]
        else:
            set_dirs = sorted(path.parent for path in directory.glob("*/corpus.jsonl"))
        if not set_dirs:
            raise CommandError(f"{directory} holds no BEIR set (no corpus.jsonl)")
        alpha = settings.KBSEARCH_HYBRID_ALPHA if options["alpha"] is None else options["alpha"]
        if not 0.0 <= alpha <= 1.0:
            raise CommandError("--alpha must be between 0 and 1")
        modes = options["mode"] or ["hybrid"]
        work_dir = options["work_dir"] or settings.VAR_DIR / "eval"
        encoder = get_encoder()
        results = []
        with StagedProgress(options, unit=" items", stream=self.stderr) as progress:
            for set_dir in set_dirs:
                results.extend(self._evaluate_set(set_dir, encoder, modes, alpha, options, work_dir, progress))
        output = options["output"] or work_dir / "results" / f"evaluate-{'-'.join(modes)}-{options['split']}.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2, ensure_ascii=False))
        self.stdout.write(f"wrote {output}")

    def _evaluate_set(self, set_dir: Path, encoder, modes, alpha, options, work_dir, progress) -> list[dict]:
        try:
            beir = load_beir(set_dir)
        except EvaluationSetError as error:
            raise CommandError(str(error)) from None
        evaluator = Evaluator(beir, encoder=encoder, work_dir=work_dir, on_progress=progress)
        results = []
        for mode in modes:
            result = evaluator.evaluate(
                mode=mode, alpha=alpha, split=options["split"], language_gate=not options["plain_fusion"]
            )
            progress.close()  # the finished bar keeps its line; the result goes below it
            results.append(result.as_dict())
            m = result.metrics
            label = f"{mode}" + (f" a={alpha:g}" if mode == "hybrid" else "")
            if mode == "hybrid" and options["plain_fusion"]:
                label += " plain"
            self.stdout.write(
                f"{beir.name:<14} {label:<14} nDCG@10 {m['ndcg@10']:.4f}  MRR@10 {m['mrr@10']:.4f}  "
                f"R@10 {m['recall@10']:.4f}  R@100 {m['recall@100']:.4f}  ({m['queries']} queries, "
                f"{options['split']})"
            )
        return results
