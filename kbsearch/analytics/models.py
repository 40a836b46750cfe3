"""What searching leaves behind: the query log, thumbs up/down feedback and result clicks.

These rows are the raw material for analytics (top and zero-result queries in the admin) and for
training the ranking model later, so they keep what a training set needs: the query as searched,
the ranked document ids, and for every judgement the rank the document was shown at. Users and
documents may be deleted; a log row then loses its user (the query is still worth counting), while
feedback and clicks on a deleted document go with it, since they can no longer be joined to text.
"""
from django.conf import settings
from django.db import models


class QueryLog(models.Model):
    """One search as run: who, what, with which filters, what came back and how fast."""

    class Channel(models.TextChoices):
        API = "api", "API"
        WEB = "web", "Search page"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    query = models.TextField(help_text="The query after cleaning (control characters and extra spaces removed).")
    # Case-folded and whitespace-collapsed, so "VPN" and "vpn " count as one query in the reports.
    query_normalized = models.TextField()
    filters = models.JSONField(default=dict, blank=True)
    mode = models.CharField(max_length=16)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    limit = models.PositiveIntegerField()
    offset = models.PositiveIntegerField()
    # [{"document": id, "rank": n, "score": s}, ...] in rank order, exactly the page shown.
    results = models.JSONField(default=list, blank=True)
    result_count = models.PositiveIntegerField()
    total = models.PositiveIntegerField(help_text="Documents the user may see that matched (the ranked pool).")
    # Hybrid search always finds semantic neighbours, so "nothing found" mostly shows up here as
    # no keyword (BM25) match at all rather than as total == 0.
    lexical_total = models.PositiveIntegerField(
        null=True, blank=True, help_text="Of those, documents that matched a query word, not only by meaning."
    )
    latency_ms = models.FloatField(help_text="Search time including query encoding.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "query log entry"
        verbose_name_plural = "query log"

    def __str__(self) -> str:
        return f"{self.query[:60]} ({self.total})"


class TopQuery(QueryLog):
    """Admin report: the most frequent queries (a proxy so it gets its own admin page)."""

    class Meta:
        proxy = True
        verbose_name = "top query"
        verbose_name_plural = "top queries"


class ZeroResultQuery(QueryLog):
    """Admin report: queries that found nothing the user could see."""

    class Meta:
        proxy = True
        verbose_name = "zero-result query"
        verbose_name_plural = "zero-result queries"


class RelevanceDashboard(QueryLog):
    """Admin page: searches, zero results, click-through, MRR and thumbs over time (charts)."""

    class Meta:
        proxy = True
        verbose_name = "relevance dashboard"
        verbose_name_plural = "relevance dashboard"


class QueryNeedingAttention(QueryLog):
    """Admin page: queries with no results, the most thumbs down, or few clicks."""

    class Meta:
        proxy = True
        verbose_name = "query needing attention"
        verbose_name_plural = "queries needing attention"


class Feedback(models.Model):
    """A thumbs up or down on a (query, document) pair."""

    class Value(models.IntegerChoices):
        UP = 1
        DOWN = -1

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey("documents.Document", on_delete=models.CASCADE, related_name="+")
    query = models.TextField()
    query_log = models.ForeignKey(QueryLog, null=True, blank=True, on_delete=models.SET_NULL, related_name="feedback")
    rank = models.PositiveIntegerField(null=True, blank=True)
    value = models.SmallIntegerField(choices=Value.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "feedback"
        indexes = [models.Index(fields=["user", "document"])]

    def __str__(self) -> str:
        return f"{'+' if self.value > 0 else '-'} {self.document_id} for {self.query[:40]}"


class Click(models.Model):
    """A result that was opened, and the rank it was shown at."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey("documents.Document", on_delete=models.CASCADE, related_name="+")
    query = models.TextField()
    query_log = models.ForeignKey(QueryLog, null=True, blank=True, on_delete=models.SET_NULL, related_name="clicks")
    rank = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "document"])]

    def __str__(self) -> str:
        return f"{self.document_id} at {self.rank} for {self.query[:40]}"
