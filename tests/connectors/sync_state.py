"""Helpers for the crash and lifecycle tests: a small file share, and the exact state of a source.

``source_state`` reads what the database holds for a source and what the index really holds for it
(``indexed_documents``), keyed by external id so two sources synced from the same folder compare
equal exactly when they hold the same documents, chunks, access lists and vectors.
"""
import os
import time
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string

from kbsearch.documents.models import Chunk, Document, DocumentAccess
from kbsearch.index.base import SearchFilters

SHARE = {
    "_access.yaml": "principals: [public]\n",
    "welcome.md": "# Welcome\n\nThe cafeteria opens at 8am. 食堂は8時に開きます。\n",
    "guide.md": "# Guide\n\n## Parking\n\nPark behind building C.\n\n## Badges\n\nBadges are issued on day one.\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.md": "# Salary bands\n\nBand 3 pays between 60k and 80k. 薪资等级说明。\n",
    "eng/_access.yaml": "principals: [group:engineering]\n",
    "eng/deploy.txt": "Deploy runbook\n\nRun the deployment pipeline. 배포 절차를 따르세요.\n",
}
# Every principal the share can grant, for searches that must see everything the index holds.
ALL_PRINCIPALS = frozenset({"public", "group:hr", "group:engineering", "user:mallory"})


def write(path: Path, text: str) -> None:
    """Write a file stamped a little in the future, so the next poll sees it whatever the clock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    stamp = time.time() + 2
    os.utime(path, (stamp, stamp))


def make_share(root: Path) -> Path:
    for name, text in SHARE.items():
        write(root / name, text)
    return root


def other_index(path: Path):
    """A second index of the configured backend at ``path``: the clean baseline's."""
    config = settings.KBSEARCH_INDEX
    options = {**config.get("OPTIONS", {}), "path": str(path)}
    return import_string(config["BACKEND"])(**options)


def source_state(source, index, encoder) -> dict:
    """Database and index state of ``source``, by external id; asserts the index matches the database."""
    documents = {document.pk: document for document in Document.objects.filter(source=source)}
    chunks: dict[int, list[Chunk]] = {}
    for chunk in Chunk.objects.filter(document__source=source).order_by("document_id", "ordinal"):
        chunks.setdefault(chunk.document_id, []).append(chunk)
    access: dict[int, frozenset[str]] = {pk: frozenset() for pk in documents}
    for document_id, principal in DocumentAccess.objects.filter(document__source=source).values_list(
        "document_id", "principal"
    ):
        access[document_id] = access[document_id] | {principal}
    held = index.indexed_documents(list(documents))
    database, in_index = {}, {}
    for pk, document in documents.items():
        database[document.external_id] = (
            document.title,
            document.body,
            document.language,
            document.content_hash,
            tuple((chunk.text, tuple(chunk.heading_path), chunk.token_count) for chunk in chunks.get(pk, [])),
            access[pk],
        )
        entry = held.get(pk)
        in_index[document.external_id] = (
            None if entry is None else entry.chunk_ids == {chunk.pk for chunk in chunks.get(pk, [])},
            None if entry is None else entry.principals,
        )
    # Chunk positions and vector scores of everything searchable, so equal states mean equal vectors.
    where = {chunk.pk: (documents[chunk.document_id].external_id, chunk.ordinal) for c in chunks.values() for chunk in c}
    query = encoder.encode_queries(["cafeteria salary deploy parking badges"])[0]
    hits = index.vector_search(vector=query, filters=SearchFilters(principals=ALL_PRINCIPALS), limit=100)
    return {
        "database": database,
        "index": in_index,
        "index_documents": index.document_ids() == set(documents),
        "vectors": sorted((*where.get(hit.chunk_id, ("?", -1)), round(hit.score, 5)) for hit in hits),
    }
