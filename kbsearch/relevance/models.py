"""What the relevance loop keeps: snapshots of training data (more models join as the loop grows).

A snapshot is the exact data one training run learns from, frozen on disk (JSONL under
``KBSEARCH_TRAINING_DIR``) with its counts and a hash, so a model version can always say what it was
trained on. The rows hold queries (personal) and passage text (possibly restricted), so reading them
takes the ``view_training_data`` permission, not just staff status.
"""
from django.db import models


class TrainingDataSnapshot(models.Model):
    """One frozen build of training pairs, with the held-out part the evaluation gate uses."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    path = models.CharField(max_length=500, help_text="Folder holding the snapshot's files.")
    sha256 = models.CharField(max_length=64, help_text="Hash of the training rows, as written.")
    # Counts by origin (click, feedback, corpus), source and language; pairs kept and dropped (and why).
    summary = models.JSONField(default=dict, blank=True)
    # What it was built with: time window, held-out fraction, patterns, negatives per pair.
    params = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("view_training_data", "Can read training queries and passages")]

    def __str__(self) -> str:
        return f"training data {self.sha256[:12]} ({self.created_at:%Y-%m-%d %H:%M})"


class TrainingRun(models.Model):
    """One fine-tuning of the embedding model on a snapshot (``manage.py train``, the ``train``
    Celery queue), then the evaluation gate on its result.

    The row is the job's progress and its remote control, as a re-embed's is: the step and loss
    history the admin draws, and ``cancel_requested``, which the training loop reads between steps.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Phase(models.TextChoices):
        WAITING = "", "waiting"
        TRAINING = "training"
        EVALUATING = "evaluating"
        DONE = "done"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    snapshot = models.ForeignKey(TrainingDataSnapshot, on_delete=models.PROTECT, related_name="training_runs")
    # The model trained from, as a spec (the serving model unless the run named another).
    base_spec = models.CharField(max_length=1000)
    # embeddings.training.TrainingParams as a dict (budgets included), and the gate's options.
    params = models.JSONField(default=dict, blank=True)
    gate_options = models.JSONField(default=dict, blank=True)
    evaluate = models.BooleanField(default=True, help_text="Run the evaluation gate after training.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.WAITING, blank=True)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    # [[step, loss], ...], about 200 points at most (the trainer logs every total/200 steps).
    loss_history = models.JSONField(default=list, blank=True)
    stop_reason = models.CharField(max_length=20, blank=True)
    # Wall-clock seconds of the whole training (loading and saving included), and of a step.
    training_seconds = models.FloatField(null=True, blank=True)
    seconds_per_step = models.FloatField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"training run #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return int(100 * self.step / self.total_steps) if self.total_steps else 0


class ModelVersion(models.Model):
    """A model the relevance loop knows: a fine-tuned one (with its run, data and evaluation report)
    or a model found serving (registered so lineage and rollbacks have something to point at).

    ``status`` follows the index, not the other way round (``registry.model_versions_reconcile``):
    the version whose spec and weights built the serving generation is ``promoted``; one that
    served before is ``retired``. A promotion in progress is the ``reembed_run`` building its
    generation.
    """

    class Status(models.TextChoices):
        TRAINED = "trained"
        EVALUATED = "evaluated"
        PROMOTED = "promoted"
        RETIRED = "retired"

    name = models.CharField(max_length=200, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    # What loads it (embeddings.loading): a folder for fine-tuned models. The index records it.
    spec = models.CharField(max_length=1000)
    # The weights' fingerprint (IndexMetadata.model_version) and the vectors' dimension.
    fingerprint = models.CharField(max_length=32, db_index=True)
    dimension = models.PositiveIntegerField(null=True, blank=True)
    training_run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_version"
    )
    snapshot = models.ForeignKey(
        TrainingDataSnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINED, db_index=True)
    # The gate's report: per set and mode, before/after/delta of nDCG@10, MRR@10, Recall@10.
    report = models.JSONField(default=dict, blank=True)
    gate_passed = models.BooleanField(null=True, blank=True, help_text="Empty until evaluated.")
    gate_summary = models.TextField(blank=True)
    reembed_run = models.ForeignKey(
        "documents.ReembedRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The re-embed of this model's promotion.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("promote_modelversion", "Can promote and roll back model versions")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"
