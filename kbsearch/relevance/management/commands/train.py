"""``manage.py train``: fine-tune the serving model on a training-data snapshot, then gate it.

  train [--snapshot ID] [budget and training options] [--foreground]
  train --cancel RUN

Without ``--snapshot`` a new snapshot is built first (``training_data_build`` with its default
parameters; ``manage.py training_data`` builds one with options). The run is queued on the
Celery ``train`` queue (run inline without a broker); ``--foreground`` runs it here and prints the
step and loss as it goes. The result is a model version (``manage.py model list``), evaluated by the
gate unless ``--no-evaluate``.

Exit codes, for scripts: 0 done (or queued), 1 failed or bad input, 3 the gate refused the model,
5 another training run is queued or running.
"""

from django.core.management.base import BaseCommand, CommandError

from kbsearch.relevance.models import TrainingDataSnapshot, TrainingRun
from kbsearch.relevance.training_data.services import training_data_build
from kbsearch.relevance.training_runs import (
    TrainingBusy,
    training_run_cancel,
    training_run_execute,
    training_run_start,
)

EXIT_REFUSED = 3
EXIT_BUSY = 5


class Command(BaseCommand):
    help = "Fine-tune the embedding model on training data and run the evaluation gate."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--snapshot", type=int, help="Training-data snapshot id (default: build a new one).")
        parser.add_argument("--base", help="Model spec to train from (default: the serving model).")
        budget = parser.add_argument_group("budget")
        budget.add_argument("--max-minutes", type=float, help="Stop training after this many minutes.")
        budget.add_argument("--max-steps", type=int, help="Stop training after this many steps.")
        budget.add_argument("--epochs", type=float, help="Passes over the pairs (default 1).")
        training = parser.add_argument_group("training")
        training.add_argument("--batch-size", type=int)
        training.add_argument("--learning-rate", type=float)
        training.add_argument("--negatives", type=int, help="Hard negatives per pair (0: in-batch only).")
        training.add_argument("--scale", type=float,
                              help="1 / temperature of the contrastive loss (default 100, e5's own).")
        training.add_argument("--loss", choices=("cached_mnrl", "mnrl"),
                              help="cached_mnrl (default: big batches in little memory) or plain mnrl.")
        training.add_argument("--mini-batch-size", type=int, help="Embedding batch of the cached loss.")
        training.add_argument("--lora", action="store_true", help="Train LoRA adapters (needs peft), merged when saved.")
        training.add_argument("--update-fraction", type=float,
                              help="Keep this share of the update: original + f x (trained - original) (default 0.5).")
        training.add_argument("--no-weights", action="store_true", help="Ignore the pairs' weights.")
        training.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPUs with bf16 units).")
        training.add_argument("--seed", type=int)
        gate = parser.add_argument_group("evaluation gate")
        gate.add_argument("--no-evaluate", action="store_true", help="Train only; evaluate later (model evaluate).")
        gate.add_argument("--regression-set", action="append", dest="regression_sets", metavar="PATH",
                          help="A BEIR set or folder of sets (repeatable; default KBSEARCH_RELEVANCE_REGRESSION_SETS).")
        gate.add_argument("--no-regression-sets", action="store_true", help="Gate on the in-domain set only.")
        gate.add_argument("--mode", action="append", dest="modes", help="Ranking mode to evaluate (repeatable).")
        gate.add_argument("--gate-mode", help="The mode the rule is applied to (default hybrid).")
        gate.add_argument("--max-queries", type=int, help="Questions per set at most (0: all).")
        parser.add_argument("--foreground", action="store_true", help="Run here, printing step and loss.")
        parser.add_argument("--cancel", type=int, metavar="RUN", help="Cancel a queued or running training run.")

    def handle(self, *args, **options) -> None:
        if options["cancel"] is not None:
            return self._cancel(options["cancel"])
        snapshot = self._snapshot(options["snapshot"])
        try:
            run = training_run_start(
                snapshot=snapshot, params=_params(options), base_spec=options["base"],
                gate_options=_gate_options(options), evaluate=not options["no_evaluate"],
                enqueue=not options["foreground"],
            )
        except TrainingBusy as error:
            raise CommandError(str(error), returncode=EXIT_BUSY) from error
        except ValueError as error:
            raise CommandError(str(error)) from error
        if not options["foreground"]:
            run.refresh_from_db()
            self.stdout.write(f"training run #{run.pk} on snapshot #{snapshot.pk} is {run.status}")
            if run.status in TrainingRun.ACTIVE:
                return None
        else:
            run = training_run_execute(run_id=run.pk, echo=self._echo)
        return self._report(run)

    def _snapshot(self, snapshot_id: int | None) -> TrainingDataSnapshot:
        if snapshot_id is not None:
            snapshot = TrainingDataSnapshot.objects.filter(pk=snapshot_id).first()
            if snapshot is None:
                raise CommandError(f"no training-data snapshot #{snapshot_id}")
            return snapshot
        snapshot = _builder()()
        self.stdout.write(f"built training-data snapshot #{snapshot.pk}")
        return snapshot

    def _echo(self, step: int, total: int, loss: float | None) -> None:
        if loss is not None:
            self.stdout.write(f"step {step}/{total} loss {loss:.4f}")

    def _report(self, run: TrainingRun) -> None:
        run.refresh_from_db()
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"training run #{run.pk} {run.status}{': ' + run.error if run.error else ''}")
        per_step = f", {run.seconds_per_step:.2f} s/step" if run.seconds_per_step else ""
        self.stdout.write(f"training run #{run.pk}: {run.step}/{run.total_steps} steps ({run.stop_reason}) in "
                          f"{run.training_seconds or 0:.0f} s{per_step}")
        version = getattr(run, "model_version", None)
        if version is None:
            return
        self.stdout.write(f"model version {version.name}: {version.spec}")
        if run.error:
            raise CommandError(run.error)
        if run.evaluate:
            self.stdout.write(f"gate {version.gate_summary}")
            if not version.gate_passed:
                raise CommandError(f"the gate refused {version.name}", returncode=EXIT_REFUSED)

    def _cancel(self, run_id: int) -> None:
        run = TrainingRun.objects.filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"no training run #{run_id}")
        if run.status not in TrainingRun.ACTIVE:
            raise CommandError(f"training run #{run_id} is {run.status}: nothing to cancel")
        run = training_run_cancel(run=run)
        self.stdout.write(f"training run #{run.pk}: " + ("cancelled" if run.status == TrainingRun.Status.CANCELLED
                                                          else "cancel requested (stops after its current step)"))


def _params(options: dict) -> dict:
    params = {
        "epochs": options["epochs"], "max_steps": options["max_steps"], "batch_size": options["batch_size"],
        "learning_rate": options["learning_rate"], "negatives_per_pair": options["negatives"],
        "mini_batch_size": options["mini_batch_size"], "seed": options["seed"], "loss": options["loss"],
        "scale": options["scale"], "update_fraction": options["update_fraction"],
        "max_seconds": None if options["max_minutes"] is None else options["max_minutes"] * 60,
    }
    params = {key: value for key, value in params.items() if value is not None}
    if options["lora"]:
        params["lora"] = True
    if options["no_weights"]:
        params["use_weights"] = False
    if options["bf16"]:
        params["bf16"] = True
    return params


def _gate_options(options: dict) -> dict:
    chosen = {"modes": options["modes"], "gate_mode": options["gate_mode"], "max_queries": options["max_queries"]}
    if options["no_regression_sets"]:
        chosen["regression_sets"] = []
    elif options["regression_sets"]:
        chosen["regression_sets"] = options["regression_sets"]
    return {key: value for key, value in chosen.items() if value is not None}


def _builder():
    """The training-data builder (a seam, so tests can hand in a prepared snapshot)."""
    return training_data_build
