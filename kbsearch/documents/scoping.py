"""Re-scoping stored access lists when a source gets an identity mapping.

A mapping makes a source's principals its own (``group:engineering`` becomes
``source/<key>/group:engineering``; ``access.mapping``). Documents ingested before it still carry
the company-namespace names, so they are rewritten here, in the database and the index, without
re-embedding: at once when the mapping is created (``identity_scope_changed``, if the source's lock
can be had within a few seconds), and in any case at the start of the source's next sync, which
checks for leftovers in one query. A rewrite is idempotent: a principal already scoped stays.

Removing a mapping is not undone here: scoped names cannot be told apart from ones the connector
scoped itself, so they stay (visible to nobody) until a full sync restates them.
"""
import logging

from access.principals import PUBLIC, SOURCE_SCOPE
from access.selectors import identity_mapping_exists
from kbsearch.documents.locks import SourceBusy, source_lock
from kbsearch.documents.models import Document, DocumentAccess, Source
from kbsearch.documents.services import document_set_access
from kbsearch.index.base import BaseIndexBackend
from kbsearch.index.registry import get_index_backend

logger = logging.getLogger(__name__)
_BATCH_DOCUMENTS = 500
# How long creating a mapping waits for a running sync of the source before leaving the rewrite to
# the next sync (which does it first thing).
_LOCK_WAIT_SECONDS = 5.0


def source_access_rescope(*, source: Source, index: BaseIndexBackend | None = None) -> int:
    """Scope the company-namespace principals of ``source``'s documents if it has a mapping; returns documents rewritten.

    The caller holds the source's lock.
    """
    if not identity_mapping_exists(source_key=source.key):
        return 0
    index = index or get_index_backend()
    rewritten = 0
    while True:
        # Each pass rewrites what it reads, so the next one sees only what is left.
        stale = list(
            DocumentAccess.objects.filter(document__source=source)
            .exclude(principal=PUBLIC)
            .exclude(principal__startswith=f"{SOURCE_SCOPE}/")
            .values_list("document_id", flat=True)
            .distinct()[:_BATCH_DOCUMENTS]
        )
        if not stale:
            return rewritten
        for document in Document.objects.filter(pk__in=stale).prefetch_related("access"):
            document.source = source
            principals = [row.principal for row in document.access.all()]
            document_set_access(document=document, principals=principals, index=index, mapped=True)
            rewritten += 1


def source_access_rescope_on_mapping(sender, *, source_key: str, **_kwargs) -> None:
    """Receiver of ``access.mapping.identity_scope_changed``: rewrite the source's documents now if it can."""
    source = Source.objects.filter(key=source_key).first()
    if source is None:
        return  # mapped before it was added: its first sync stores scoped names
    try:
        with source_lock(source, wait_seconds=_LOCK_WAIT_SECONDS):
            count = source_access_rescope(source=source)
    except SourceBusy:
        logger.warning("source %s is busy; its access lists are re-scoped by its next sync", source_key)
        return
    logger.info("re-scoped the access lists of %d documents of source %s", count, source_key)
