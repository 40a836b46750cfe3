"""``manage.py simulate_use <BEIR set>``: load the set's corpus as a source readable by everyone and
turn half of its questions into logged searches and clicks (``kbsearch.relevance.simulation``),
then write the other half as a BEIR set to evaluate on. Prints the ``training_data`` command to run
next."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kbsearch.evaluation.beir import EvaluationSetError, load_beir
from kbsearch.relevance.simulation import (
    SPLITS,
    SimulationError,
    questions_split,
    simulation_clicks_record,
    simulation_corpus_load,
    simulation_test_set_write,
    simulation_user,
)


class Command(BaseCommand):
    help = "Simulate use of a BEIR set: its corpus as documents, half its questions as searches and clicks."

    def add_arguments(self, parser) -> None:
        parser.add_argument("directory", type=Path, help="a BEIR set (corpus.jsonl, queries.jsonl, qrels.tsv)")
        parser.add_argument("--split", choices=SPLITS, default="question",
                            help="halve by question id (default) or by passage id (test passages never trained on)")
        parser.add_argument("--rank", default="search",
                            help="'search' (default): click where the current search shows the gold passage; "
                                 "or a fixed rank N")
        parser.add_argument("--depth", type=int, default=10, help="results looked at for the click (default 10)")
        parser.add_argument("--source-key", help="default sim-<set name>")
        parser.add_argument("--limit", type=int, help="only the first N click questions (a quick run)")
        parser.add_argument("--test-set-dir", type=Path, help="where the test half is written "
                            "(default KBSEARCH_VAR_DIR/simulation/<set>-<split>-test)")

    def handle(self, *args, **options) -> None:
        try:
            beir = load_beir(options["directory"])
        except EvaluationSetError as error:
            raise CommandError(str(error)) from None
        if options["rank"] == "search":
            rank = None
        elif options["rank"].isdigit() and int(options["rank"]) >= 1:
            rank = int(options["rank"])
        else:
            raise CommandError("--rank must be 'search' or a rank of 1 or more")
        key = options["source_key"] or f"sim-{beir.name}".lower().replace("_", "-")[:60]
        try:
            clicks, test, test_passages = questions_split(beir, by=options["split"])
            if options["limit"] is not None:
                clicks = clicks[: max(options["limit"], 0)]
            documents = simulation_corpus_load(beir=beir, source_key=key, test_passages=test_passages)
            self.stdout.write(f"{len(documents)} passages loaded as documents of {key}"
                              + (f" and {key}-test" if test_passages else ""))
            report = simulation_clicks_record(
                beir=beir, question_ids=clicks, documents=documents, user=simulation_user(source_key=key),
                rank=rank, depth=options["depth"],
            )
        except SimulationError as error:
            raise CommandError(str(error)) from None
        folder = options["test_set_dir"] or settings.VAR_DIR / "simulation" / f"{beir.name}-{options['split']}-test"
        simulation_test_set_write(beir=beir, question_ids=test, folder=folder)
        ranks = ", ".join(f"{rank_}: {count}" for rank_, count in sorted(report.ranks.items()))
        self.stdout.write(
            f"{report.questions} click questions: {report.clicks} clicks (ranks {ranks or 'none'}), "
            f"{report.not_found} without the gold passage in the first {options['depth']} results"
        )
        self.stdout.write(f"test half: {len(test)} questions in {folder}")
        exclude = f" --exclude-source {key}-test" if test_passages else ""
        self.stdout.write(f"next: manage.py training_data{exclude}")
