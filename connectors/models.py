"""A record of each sync run, for admins and for resuming."""
from django.db import models

from kbsearch.documents.models import Source


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        PARTIAL = "partial"  # finished, but some documents failed
        FAILED = "failed"  # the source failed as a whole; nothing was pruned

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="sync_runs")
    mode = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.source.key} {self.mode} {self.status}"
