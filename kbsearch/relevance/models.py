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
