"""Fine-tuning an e5 encoder on (query, passage) pairs with sentence-transformers' trainer.

Plain Python, no Django: the relevance loop's Celery task calls ``train_model`` with the pairs of a
training-data snapshot (``train.jsonl``, read by ``read_pairs``), and a bench or a notebook can call
it the same way. The result is a sentence-transformers folder that ``embeddings.loading`` loads by
its path, like any other model spec.

What the training does, and why:
  * The loss is in-batch contrastive (InfoNCE, as MultipleNegativesRankingLoss): every other
    passage of the batch is a negative, and each pair's hard negatives (passages that looked right
    but were not) are extra columns. ``cached=True`` uses the GradCache variant, which embeds in
    mini-batches, so a batch of 128 fits a CPU's memory and still gives 127 in-batch negatives; it is
    the default, as the plain loss's activations for 32 pairs of 256-token passages outgrew 15 GB.
  * e5 was trained with ``query: `` and ``passage: `` prefixes; the collator adds them per column, as
    the encoder does when serving, so training and serving see the same text.
  * Rows carry a weight (a click at rank 1 says less than one at rank 6); the loss is the
    weighted mean of the per-row losses within a batch, so weights act as real sample weights.
  * Batches never hold the same text twice (a duplicate positive would be its own false negative).
  * A step budget and a time budget bound the run; ``should_cancel`` is asked after every step.
    Stopping at the time budget keeps what was learned (the evaluation gate decides whether it is
    good enough); a cancelled run saves nothing.
  * The token embedding table stays frozen by default: it is most of a multilingual model's weights
    and memory (with AdamW's state), and the pairs mention few of its 250k tokens.
  * LoRA adapters (``lora=LoraParams()``, ``embeddings.lora``, needs ``peft``) train a few percent
    of the weights, for e5-base and larger on CPU; they are merged into the weights before saving,
    so the output loads like any full model.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import PrinterCallback, TrainerCallback, set_seed

from embeddings.encoder import PASSAGE_PREFIX, QUERY_PREFIX, configure_torch_threads, model_kwargs_for
from embeddings.lora import LoraParams, add_lora, merge_lora
from embeddings.st_build import make_readable, staging_dir
from embeddings.training_losses import weighted_loss
from embeddings.update_fraction import UpdateFraction

TRAINING_INFO_FILE = "kbsearch_training.json"
LOSSES = ("mnrl", "cached_mnrl")

ProgressCallback = Callable[[int, int, float | None], None]


class TrainingDataError(ValueError):
    """The training pairs cannot be used as given (the message names the file and line)."""


class TrainingCancelled(Exception):
    """``should_cancel`` said stop; nothing was saved."""


@dataclass(frozen=True)
class TrainingPair:
    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    weight: float = 1.0
    document_id: int | str | None = None


@dataclass(frozen=True)
class TrainingParams:
    """How to train; every field has a CPU-friendly default."""

    epochs: float = 1.0
    max_steps: int | None = None  # the step budget (None: as many as the epochs take)
    max_seconds: float | None = None  # the time budget, checked after each step
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    negatives_per_pair: int = 1  # hard-negative columns (0: in-batch negatives only)
    # "cached_mnrl" embeds in mini-batches: a batch of 32 pairs with a hard negative each (96 texts)
    # peaked at 3.4 GB with e5-small, against more than 15 GB (killed) for plain "mnrl".
    loss: str = "cached_mnrl"
    mini_batch_size: int = 16  # the cached loss's embedding batch
    # 1 / temperature of the softmax over similarities. e5 was trained at 100 (temperature 0.01):
    # its cosines sit close together, and sentence-transformers' usual 20 pulled them apart, which
    # cost held-out nDCG on jsquad-valid (docs/relevance.md, "Measured").
    scale: float = 100.0
    max_seq_length: int = 256  # tokens per text while training (passages are 256-token chunks)
    use_weights: bool = True
    # The token embedding table is most of a multilingual model (250k rows: 96M of e5-small's 118M
    # weights); frozen, its gradients and optimizer state (1.1 GB) are never computed or kept, and
    # tokens the pairs never mention keep their meaning.
    freeze_token_embeddings: bool = True
    # Matrix products in bfloat16 under autocast (CPUs with bf16 units); weights stay float32.
    bf16: bool = False
    seed: int = 42
    lora: LoraParams | None = None
    # The share of the update kept: original + fraction x (trained - original), after training
    # (embeddings/update_fraction.py). Half, fixed beforehand and not swept: on jsquad-valid it
    # kept nearly all of the held-out gain and cut the losses on untrained languages from up to
    # 0.027 to under 0.004 nDCG@10 (docs/relevance.md, run 5). 1 keeps the trained weights as they are.
    update_fraction: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if not self.epochs > 0:
            problems.append("epochs must be > 0")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("max_steps must be >= 1")
        if self.max_seconds is not None and not self.max_seconds > 0:
            problems.append("max_seconds must be > 0")
        if self.batch_size < 2:
            problems.append("batch_size must be >= 2 (in-batch negatives need company)")
        if not 0 < self.learning_rate < 1:
            problems.append("learning_rate must be between 0 and 1")
        if not 0 <= self.warmup_ratio < 1:
            problems.append("warmup_ratio must be in [0, 1)")
        if self.negatives_per_pair < 0:
            problems.append("negatives_per_pair must be >= 0")
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {LOSSES}")
        if self.mini_batch_size < 1:
            problems.append("mini_batch_size must be >= 1")
        if not self.scale > 0:
            problems.append("scale must be > 0")
        if self.max_seq_length < 8:
            problems.append("max_seq_length must be >= 8")
        if not 0 < self.update_fraction <= 1:
            problems.append("update_fraction must be in (0, 1]")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> TrainingParams:
        """Params from JSON-like values (a run's stored params); unknown keys are an error."""
        values = dict(values)
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown training parameters: {unknown}")
        lora = values.pop("lora", None)
        if isinstance(lora, dict):
            lora = LoraParams(**lora)
        elif lora is True:
            lora = LoraParams()
        elif lora is False:
            lora = None
        return cls(**values, lora=lora)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainingResult:
    output_dir: Path
    steps: int
    total_steps: int
    seconds: float
    stop_reason: str  # "completed", "step budget" or "time budget"
    losses: list[tuple[int, float]] = field(default_factory=list)
    pairs: int = 0
    negatives_per_pair: int = 0
    seconds_per_step: float = 0.0  # the training loop alone (no loading or saving)


def read_pairs(path: Path) -> list[TrainingPair]:
    """The pairs of a ``train.jsonl`` (one JSON object per line: query, positive, negatives, weight,
    and optional provenance such as document_id); a malformed line fails the whole file."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"missing training file {path}")
    pairs = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                pairs.append(_pair_from_line(line, f"{path}:{number}"))
    if not pairs:
        raise TrainingDataError(f"{path} holds no training pairs")
    return pairs


def _pair_from_line(line: str, where: str) -> TrainingPair:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise TrainingDataError(f"{where}: not JSON: {error}") from None
    if not isinstance(row, dict):
        raise TrainingDataError(f"{where}: expected a JSON object")
    texts = {name: row.get(name) for name in ("query", "positive")}
    for name, value in texts.items():
        if not isinstance(value, str) or not value.strip():
            raise TrainingDataError(f"{where}: {name!r} must be a non-empty string")
    negatives = row.get("negatives") or []
    if not isinstance(negatives, list) or not all(isinstance(text, str) and text.strip() for text in negatives):
        raise TrainingDataError(f"{where}: 'negatives' must be a list of non-empty strings")
    weight = row.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise TrainingDataError(f"{where}: 'weight' must be a positive number, got {weight!r}")
    return TrainingPair(
        query=texts["query"], positive=texts["positive"], weight=float(weight), document_id=row.get("document_id"),
        # A negative equal to the positive would teach the model to push the answer away.
        negatives=tuple(text for text in dict.fromkeys(negatives) if text != texts["positive"]),
    )


def train_model(
    *,
    base_model: str | Path,
    pairs: Sequence[TrainingPair],
    output_dir: Path,
    params: TrainingParams | None = None,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    provenance: dict | None = None,
) -> TrainingResult:
    """Fine-tune the model at ``base_model`` (a sentence-transformers folder) on ``pairs`` and save
    it to ``output_dir`` (written aside, then renamed into place).

    ``on_progress(step, total_steps, loss)`` is called after every step (loss None between logged
    steps); ``should_cancel()`` after every step, and ``TrainingCancelled`` is raised when it says
    so. ``provenance`` is stored beside the weights (``kbsearch_training.json``).
    """
    params = params or TrainingParams()
    if len(pairs) < 2:
        raise TrainingDataError(f"training needs at least 2 pairs, got {len(pairs)}")
    from sentence_transformers import SentenceTransformer

    configure_torch_threads()
    started = time.monotonic()
    if should_cancel is not None and should_cancel():
        raise TrainingCancelled
    model = SentenceTransformer(str(base_model), device="cpu", model_kwargs=model_kwargs_for(str(base_model)))
    serving_length = model.max_seq_length
    model.max_seq_length = min(params.max_seq_length, serving_length or params.max_seq_length)
    if params.lora is not None or params.freeze_token_embeddings:
        # LoRA freezes every base weight anyway; frozen here first, the table is not remembered below.
        model.transformers_model.get_input_embeddings().weight.requires_grad_(False)
    update = UpdateFraction.remember(model, params.update_fraction)
    if params.lora is not None:
        set_seed(params.seed)  # the adapters start random: seeded, a run can be repeated
        add_lora(model, params.lora)
    rows, negatives = _dataset_rows(pairs, params)
    batches_per_epoch = math.ceil(len(pairs) / params.batch_size)
    total_steps = max(1, math.ceil(params.epochs * batches_per_epoch))
    if params.max_steps is not None:
        total_steps = min(total_steps, params.max_steps)
    control = _BudgetCallback(
        total_steps=total_steps, started=started, max_seconds=params.max_seconds,
        should_cancel=should_cancel, on_progress=on_progress,
    )
    scratch = Path(tempfile.mkdtemp(prefix="kbsearch-train-"))
    try:
        trainer = _trainer(model, rows, negatives, params, total_steps, control, scratch)
        trainer.train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if control.cancelled:
        raise TrainingCancelled
    if params.lora is not None:
        merge_lora(model)
    update.apply(model)
    model.max_seq_length = serving_length
    seconds = time.monotonic() - started
    steps = control.steps
    stop_reason = control.stop_reason or ("step budget" if total_steps == params.max_steps else "completed")
    info = {
        "base_model": str(base_model), "params": params.as_dict(), "pairs": len(pairs),
        "negatives_per_pair": negatives, "steps": steps, "total_steps": total_steps,
        "seconds": round(seconds, 3), "seconds_per_step": round(control.seconds_per_step, 4),
        "stop_reason": stop_reason, **(provenance or {}),
    }
    _save(model, Path(output_dir), info)
    return TrainingResult(
        output_dir=Path(output_dir), steps=steps, total_steps=total_steps, seconds=seconds,
        stop_reason=stop_reason, losses=control.losses, pairs=len(pairs), negatives_per_pair=negatives,
        seconds_per_step=control.seconds_per_step,
    )


def _dataset_rows(pairs: Sequence[TrainingPair], params: TrainingParams) -> tuple[dict[str, list], int]:
    """Columns for the trainer: query, positive, negative_1..n, label (the weight).

    Every row needs the same number of negative columns. A pair with fewer hard negatives than
    ``negatives_per_pair`` is topped up with other pairs' positives from other documents (a random
    negative: weaker, but never the pair's own document); the count is lowered only when some pair
    cannot be topped up at all (a tiny set drawn from one document).
    """
    wanted = min(params.negatives_per_pair, max(len(pair.negatives) for pair in pairs))
    rng = random.Random(params.seed)
    pool = list(dict.fromkeys((pair.positive, pair.document_id) for pair in pairs))
    filled = []
    for pair in pairs:
        negatives = list(pair.negatives[:wanted])
        if len(negatives) < wanted:
            taken = {pair.positive, *negatives}
            others = [text for text, document in pool
                      if text not in taken and (document is None or document != pair.document_id)]
            rng.shuffle(others)
            negatives += others[: wanted - len(negatives)]
        filled.append(negatives)
    wanted = min(wanted, min(len(negatives) for negatives in filled))
    mean_weight = sum(pair.weight for pair in pairs) / len(pairs)
    rows: dict[str, list] = {
        "query": [pair.query for pair in pairs],
        "positive": [pair.positive for pair in pairs],
    }
    for column in range(wanted):
        rows[f"negative_{column + 1}"] = [negatives[column] for negatives in filled]
    # Scaled to a mean of 1, so the learning rate means the same with or without weights.
    rows["label"] = [pair.weight / mean_weight if params.use_weights else 1.0 for pair in pairs]
    return rows, wanted


def _trainer(model, rows: dict[str, list], negatives: int, params: TrainingParams, total_steps: int, control,
             scratch: Path):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.training_args import BatchSamplers

    prompts = {"query": QUERY_PREFIX, "positive": PASSAGE_PREFIX}
    prompts.update({f"negative_{column + 1}": PASSAGE_PREFIX for column in range(negatives)})
    arguments = SentenceTransformerTrainingArguments(
        output_dir=str(scratch),
        max_steps=total_steps,
        per_device_train_batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        warmup_steps=int(params.warmup_ratio * total_steps),
        weight_decay=params.weight_decay,
        lr_scheduler_type="linear",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        prompts=prompts,
        # A loss point per step up to 200 steps, then about 200 points over the run.
        logging_steps=max(1, total_steps // 200),
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        bf16=params.bf16,
        dataloader_pin_memory=False,
        seed=params.seed,
        data_seed=params.seed,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=arguments,
        train_dataset=Dataset.from_dict(rows),
        loss=weighted_loss(model, cached=params.loss == "cached_mnrl", scale=params.scale,
                           mini_batch_size=params.mini_batch_size),
        callbacks=[control],
    )
    # Progress goes to ``on_progress``, not to stdout (a worker's log would get a line per step).
    trainer.remove_callback(PrinterCallback)
    return trainer


class _BudgetCallback(TrainerCallback):
    """Stops at the time budget or on cancellation, and reports every step."""

    def __init__(self, *, total_steps, started, max_seconds, should_cancel, on_progress) -> None:
        self.total_steps = total_steps
        self.deadline = None if max_seconds is None else started + max_seconds
        self.should_cancel = should_cancel
        self.on_progress = on_progress
        self.steps = 0
        self.losses: list[tuple[int, float]] = []
        self.stop_reason = ""
        self.cancelled = False
        self._loop_started = None
        self._last_step_at = None

    @property
    def seconds_per_step(self) -> float:
        if not self.steps or self._loop_started is None:
            return 0.0
        return (self._last_step_at - self._loop_started) / self.steps

    def on_train_begin(self, args, state, control, **kwargs):
        self._loop_started = time.monotonic()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self.steps = state.global_step
        self._last_step_at = time.monotonic()
        if self.on_progress is not None:
            self.on_progress(self.steps, self.total_steps, None)
        if self.should_cancel is not None and self.should_cancel():
            self.cancelled = True
            control.should_training_stop = True
        elif self.deadline is not None and time.monotonic() >= self.deadline and self.steps < self.total_steps:
            self.stop_reason = "time budget"
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            loss = float(logs["loss"])
            self.losses.append((state.global_step, loss))
            if self.on_progress is not None:
                self.on_progress(state.global_step, self.total_steps, loss)
        return control


def _save(model, output_dir: Path, info: dict) -> None:
    with staging_dir(output_dir) as staging:
        model.save(str(staging), create_model_card=False)
        (staging / TRAINING_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        make_readable(staging)
