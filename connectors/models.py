"""A record of each sync run, for admins and for resuming."""
from django.db import models

from kbsearch.documents.models import Source


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        PARTIAL = "partial"  # finished, but some documents failed
        FAILED = "failed"  # the source failed as a whole; nothing was pruned
        CANCELLED = "cancelled"  # stopped on request; what it committed stays, the next run resumes

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="sync_runs")
    mode = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    # The last checkpoint this run committed (cursor connectors), for admins and resumption.
    checkpoint = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.source.key} {self.mode} {self.status}"
