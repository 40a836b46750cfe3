"""Reading a snapshot's rows back, a page at a time, for the training-data browser.

The rows are personal (queries) and possibly restricted (passages): callers check the
``relevance.view_training_data`` permission first (the admin page does). Files are streamed, so a
page costs one pass over the file and little memory whatever its size.
"""
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kbsearch.relevance.models import TrainingDataSnapshot

PARTS = ("train", "heldout")


class SnapshotUnreadable(Exception):
    """The snapshot's files are missing or damaged."""


@dataclass(frozen=True)
class RowsPage:
    rows: list[dict]
    matching: int  # rows matching the search, all pages
    page: int
    pages: int


def _jsonl(path: Path) -> Iterator[dict]:
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        raise SnapshotUnreadable(f"{path}:{number} is not JSON") from None
    except OSError as error:
        raise SnapshotUnreadable(f"cannot read {path}: {error.strerror or error}") from None


def _heldout_rows(folder: Path) -> Iterator[dict]:
    """Held-out queries as rows: the query and its relevant passages (no negatives are listed)."""
    texts = {row["_id"]: (row.get("title") or "") + "\n" + (row.get("text") or "") for row in _jsonl(folder / "corpus.jsonl")}
    relevant: dict[str, list[str]] = {}
    try:
        with (folder / "qrels.tsv").open(encoding="utf-8", newline="") as handle:
            for record in csv.reader(handle, delimiter="\t"):
                if len(record) >= 2 and record[0] != "query-id":
                    relevant.setdefault(record[0], []).append(record[1])
    except OSError as error:
        raise SnapshotUnreadable(f"cannot read {folder / 'qrels.tsv'}: {error.strerror or error}") from None
    for query in _jsonl(folder / "queries.jsonl"):
        passages = [texts.get(corpus_id, "").strip() for corpus_id in relevant.get(query["_id"], [])]
        yield {"query": query.get("text", ""), "positive": "\n---\n".join(passages), "negatives": [],
               "origin": "held out", "weight": None}


def training_data_rows(
    *, snapshot: TrainingDataSnapshot, part: str = "train", search: str = "", page: int = 1, per_page: int = 50
) -> RowsPage:
    """One page of a snapshot's rows whose query contains ``search`` (case-insensitive)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}")
    folder = Path(snapshot.path)
    rows = _jsonl(folder / "train.jsonl") if part == "train" else _heldout_rows(folder / "heldout")
    needle = search.casefold().strip()
    page = max(page, 1)
    start = (page - 1) * per_page
    shown, matching = [], 0
    for row in rows:
        if needle and needle not in str(row.get("query", "")).casefold():
            continue
        if start <= matching < start + per_page:
            shown.append(row)
        matching += 1
    return RowsPage(shown, matching, page, max(1, -(-matching // per_page)))
