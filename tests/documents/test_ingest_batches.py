"""Ingest in batches (``kbsearch.documents.ingest_batches``): one transaction and one index write per
batch, embedding on a background thread, and the same rows as storing one document at a time.

Batches grow from ``FIRST_BATCH_CHUNKS`` chunks; the corpora here (a chunk per document) span
three of them.
"""
import threading

import pytest
from django.db import DatabaseError

from kbsearch.documents import ingest_batches
from kbsearch.documents.models import Chunk, Document, DocumentAccess, PendingIndexChange, Source
from kbsearch.documents.services import documents_ingest
from kbsearch.index.base import BatchResult, ItemFailure
from kbsearch.ingest.inputs import DocumentInput
from kbsearch.ingest.parsers import Block
from tests.documents.index_state import index_matches_database

pytestmark = pytest.mark.django_db
FIRST_TWO = sum(size for size, _ in zip(ingest_batches.batch_targets(), range(2)))
DOCUMENTS = FIRST_TWO + 5  # one chunk each: three batches


def item(number: int, *, text: str = "", principals=("public",), external_id: str = "") -> DocumentInput:
    return DocumentInput(
        external_id=external_id or f"page-{number}",
        title=f"Page {number}",
        blocks=[Block("paragraph", text or f"Page {number} says the cafeteria opens at {number % 12 + 1}am.")],
        principals=list(principals),
    )


def source(key: str) -> Source:
    return Source.objects.create(key=key, name=key, connector="filesystem")


def rows(source_key: str) -> dict[str, tuple]:
    """Everything stored per document, by external id (ids and times aside)."""
    found = {}
    for document in Document.objects.filter(source__key=source_key).prefetch_related("chunks", "access"):
        found[document.external_id] = (
            document.title, document.language, document.body, document.content_hash, document.version,
            [(chunk.ordinal, chunk.text, chunk.heading_path, chunk.token_count) for chunk in document.chunks.all()],
            sorted(access.principal for access in document.access.all()),
        )
    return found


def first_and_second_pass() -> tuple[list[DocumentInput], list[DocumentInput]]:
    first = [item(n, principals=("public", "group:staff") if n % 3 else ("public",)) for n in range(DOCUMENTS)]
    second = [
        item(n, text=f"Page {n} was rewritten: the cafeteria moved to building {n % 4}.") if n % 2
        else item(n, principals=("group:hr",) if n % 4 == 0 else ("public",))
        for n in range(DOCUMENTS)
    ]
    return first, second


def test_batched_writes_store_what_one_transaction_per_document_stores(tiny_encoder, index_backend, monkeypatch):
    first, second = first_and_second_pass()
    together = source("together")
    reports = [documents_ingest(source=together, items=items, encoder=tiny_encoder) for items in (first, second)]

    def refused(batch, source):
        raise DatabaseError("refused as a whole")

    monkeypatch.setattr(ingest_batches, "_store_together", refused)  # so stored one document at a time
    alone = source("alone")
    for items in (first, second):
        documents_ingest(source=alone, items=items, encoder=tiny_encoder)

    assert rows("together") == rows("alone")
    assert (reports[0].created, reports[1].updated, reports[1].access_updated, reports[1].unchanged) == (
        DOCUMENTS, DOCUMENTS // 2, len([n for n in range(0, DOCUMENTS, 2) if n % 3 or n % 4 == 0]),
        len([n for n in range(0, DOCUMENTS, 2) if not (n % 3 or n % 4 == 0)]),
    )
    versions = set(Document.objects.filter(source=together).values_list("external_id", "version"))
    assert versions == {(f"page-{n}", 2 if n % 2 else 1) for n in range(DOCUMENTS)}
    assert reports[1].chunks_indexed == Chunk.objects.filter(document__source=together, document__version=2).count()
    assert index_matches_database(index_backend)
    assert not PendingIndexChange.objects.exists()


def test_a_document_the_database_refuses_fails_alone(tiny_encoder, index_backend):
    too_long = "x" * 1100  # Document.external_id holds 1024 characters
    items = [item(n) for n in range(10)] + [item(10, external_id=too_long)] + [item(n) for n in range(11, 20)]

    report = documents_ingest(source=source("share"), items=items, encoder=tiny_encoder)

    assert report.created == 19 and report.retryable_errors == 1
    assert [(external_id, reason.split(":")[0]) for external_id, reason in report.errors] == [
        (too_long, "storing failed")
    ]
    assert Document.objects.count() == 19 and not Document.objects.filter(external_id=too_long).exists()
    assert index_matches_database(index_backend)
    assert not PendingIndexChange.objects.exists()


class RefusingIndex:
    """The test index, refusing the chunks of one document as a backend refuses a bad vector."""

    def __init__(self, index, refused_external_id: str) -> None:
        self.inner, self.refused = index, refused_external_id

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def upsert_chunks(self, chunks):
        refused_id = Document.objects.get(external_id=self.refused).pk
        kept = [chunk for chunk in chunks if chunk.document_id != refused_id]
        result = self.inner.upsert_chunks(kept)
        failures = tuple(ItemFailure(chunk.chunk_id, chunk.document_id, "vector has NaN", retryable=False)
                         for chunk in chunks if chunk.document_id == refused_id)
        return BatchResult(written=result.written, failures=result.failures + failures)


def test_a_document_the_index_refuses_keeps_its_outbox_record_alone(tiny_encoder, index_backend):
    index = RefusingIndex(index_backend, "page-7")

    report = documents_ingest(source=source("share"), items=[item(n) for n in range(20)], encoder=tiny_encoder, index=index)

    refused = Document.objects.get(external_id="page-7")
    assert report.created == 20 and report.chunks_indexed == 19 and report.retryable_errors == 0
    assert report.errors == [("page-7", "indexing failed for 1 chunk(s): vector has NaN")]
    assert list(PendingIndexChange.objects.values_list("document_id", flat=True)) == [refused.pk]
    assert index_backend.indexed_documents([refused.pk]) == {}
    assert len(index_backend.document_ids()) == 19


class ThreadNotingEncoder:
    """The tiny encoder, noting which thread embeds each batch and failing on the batch numbered ``fail_at``."""

    def __init__(self, encoder, fail_at: int | None = None) -> None:
        self.inner, self.fail_at = encoder, fail_at
        self.dimension, self.index_metadata, self.count_tokens = encoder.dimension, encoder.index_metadata, encoder.count_tokens
        self.threads: list[str] = []

    def encode_passages(self, texts):
        self.threads.append(threading.current_thread().name)
        if len(self.threads) == self.fail_at:
            raise RuntimeError("the model ran out of memory")
        return self.inner.encode_passages(texts)


def test_embedding_runs_beside_the_caller_and_a_failure_keeps_the_batches_before_it(tiny_encoder, index_backend):
    encoder = ThreadNotingEncoder(tiny_encoder, fail_at=3)

    with pytest.raises(RuntimeError, match="out of memory"):
        documents_ingest(source=source("share"), items=[item(n) for n in range(DOCUMENTS)], encoder=encoder)

    assert len(encoder.threads) == 3
    assert threading.current_thread().name not in encoder.threads
    # The two batches embedded before the failure are stored and indexed, in order; nothing after.
    stored = sorted(int(external_id.split("-")[1]) for external_id in Document.objects.values_list("external_id", flat=True))
    assert stored == list(range(FIRST_TWO))
    assert index_matches_database(index_backend)
    assert not PendingIndexChange.objects.exists()
    assert DocumentAccess.objects.count() == len(stored)
