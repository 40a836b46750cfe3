"""``manage.py training_data``: build a training-data snapshot from clicks, feedback and the corpus,
and print its summary (``kbsearch.relevance.training_data.services.training_data_build``)."""
import json
from datetime import datetime, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from kbsearch.relevance.training_data.params import TrainingDataParams
from kbsearch.relevance.training_data.services import training_data_build


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not an ISO date or time: {text!r}") from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(BaseCommand):
    help = "Build training data (pairs from clicks, feedback and the corpus, hard negatives, a held-out set)."

    def add_arguments(self, parser) -> None:
        window = parser.add_argument_group("window of judgements (default: all)")
        window.add_argument("--days", type=float, help="only clicks and votes of the last N days")
        window.add_argument("--since", help="ISO date/time, inclusive")
        window.add_argument("--until", help="ISO date/time, exclusive")
        parser.add_argument("--heldout-fraction", type=float, default=0.2,
                            help="most recent share of in-domain queries held out for evaluation (default 0.2)")
        parser.add_argument("--negatives", type=int, default=3, help="hard negatives per row (default 3)")
        parser.add_argument("--mining-depth", type=int, default=30, help="candidates per leg when mining (default 30)")
        parser.add_argument("--pool-sample", type=int, default=5000,
                            help="extra chunks in the BM25 candidate pool (default 5000)")
        parser.add_argument("--corpus-per-document", type=int, default=3,
                            help="heading pairs per document (default 3; 0: no corpus pairs)")
        parser.add_argument("--corpus-per-query", type=int, default=3,
                            help="heading pairs sharing one heading text (default 3)")
        parser.add_argument("--corpus-total", type=int, default=20000, help="heading pairs in all (default 20000)")
        parser.add_argument("--heldout-distractors", type=int, default=1000,
                            help="other chunks in the held-out corpus (default 1000)")
        parser.add_argument("--exclude-source", action="append", default=[], metavar="KEY",
                            help="leave this source's documents out entirely (repeatable)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--output-dir", type=Path, help="default KBSEARCH_TRAINING_DIR")
        parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")

    def handle(self, *args, **options) -> None:
        if options["days"] is not None and options["since"]:
            raise CommandError("give --days or --since, not both")
        since = _moment(options["since"]) if options["since"] else None
        if options["days"] is not None:
            if options["days"] <= 0:
                raise CommandError("--days must be positive")
            since = timezone.now() - timedelta(days=options["days"])
        try:
            params = TrainingDataParams(
                since=since,
                until=_moment(options["until"]) if options["until"] else None,
                heldout_fraction=options["heldout_fraction"],
                negatives_per_pair=options["negatives"],
                mining_depth=options["mining_depth"],
                pool_sample=options["pool_sample"],
                corpus_per_document=options["corpus_per_document"],
                corpus_per_query=options["corpus_per_query"],
                corpus_total=options["corpus_total"],
                heldout_distractors=options["heldout_distractors"],
                exclude_sources=tuple(options["exclude_source"]),
                seed=options["seed"],
            )
            snapshot = training_data_build(params=params, output_root=options["output_dir"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        if options["json"]:
            self.stdout.write(json.dumps({"id": snapshot.pk, "path": snapshot.path, "sha256": snapshot.sha256,
                                          "summary": snapshot.summary, "params": snapshot.params},
                                         ensure_ascii=False, indent=2))
            return
        self._print_summary(snapshot)

    def _print_summary(self, snapshot) -> None:
        summary = snapshot.summary
        heldout = summary["heldout"]
        write = self.stdout.write
        write(f"snapshot {snapshot.pk}: {snapshot.path}")
        write(f"  train.jsonl: {summary['train_rows']} rows, sha256 {snapshot.sha256}")
        write(f"  heldout/: {heldout['queries']} queries, {heldout['qrels']} judgements, {heldout['corpus']} passages")
        for label in ("by_origin", "by_source", "by_language", "signals", "negatives", "dropped"):
            counts = summary.get(label) or {}
            text = ", ".join(f"{key} {value}" for key, value in sorted(counts.items(), key=lambda kv: -kv[1]))
            write(f"  {label.replace('_', ' ')}: {text or 'none'}")
        for note in summary.get("notes", []):
            write(f"  note: {note}")
