"""A synthetic corpus written straight into the database (no parsing, no chunking), then indexed
from its ``Chunk`` rows: thousands of chunks in seconds for re-embed tests and ``bench/bench_reembed.py``.

Every chunk holds the word ``common`` (so every search finds something) plus words drawn from a
small vocabulary; documents alternate between ``public`` and ``group:hr`` access.
"""
import random

from kbsearch.documents.models import Chunk, Document, DocumentAccess, Source

WORDS = ("vpn", "gateway", "salary", "leave", "expense", "policy", "onboarding", "security", "travel", "printer",
         "password", "laptop", "office", "holiday", "benefits", "contract", "invoice", "badge", "parking", "wiki")
QUERIES = ("vpn gateway", "salary policy", "travel expense", "password reset", "common office")


def bulk_corpus(*, documents: int, chunks_per_document: int, seed: int = 7, key: str = "bulk") -> Source:
    rng = random.Random(seed)
    source = Source.objects.create(key=key, name=key, connector="filesystem", config={})
    rows = Document.objects.bulk_create(
        Document(source=source, external_id=f"doc-{n}", title=f"{rng.choice(WORDS)} handbook {n}",
                 language="en", content_hash=f"{n:064x}")
        for n in range(documents)
    )
    Chunk.objects.bulk_create(
        Chunk(document=document, ordinal=ordinal, token_count=12,
              text="common " + " ".join(rng.choice(WORDS) for _ in range(10)))
        for document in rows for ordinal in range(chunks_per_document)
    )
    DocumentAccess.objects.bulk_create(
        DocumentAccess(document=document, principal="public" if n % 2 == 0 else "group:hr")
        for n, document in enumerate(rows)
    )
    return source
