"""Reading BEIR-layout evaluation sets, with clear errors for malformed files."""
import csv
import json
from dataclasses import dataclass
from pathlib import Path


class EvaluationSetError(ValueError):
    """A malformed or incomplete evaluation set."""


@dataclass(frozen=True)
class BeirSet:
    name: str
    corpus: dict[str, dict]  # id -> {"title", "text", optional "lang"}
    queries: dict[str, str]
    qrels: dict[str, set[str]]


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise EvaluationSetError(f"missing {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise EvaluationSetError(f"{path}:{number}: not JSON: {error}") from None
            if not isinstance(row, dict) or "_id" not in row:
                raise EvaluationSetError(f"{path}:{number}: expected an object with '_id'")
            rows.append(row)
    return rows


def load_beir(directory: Path) -> BeirSet:
    directory = Path(directory)
    corpus = {
        str(row["_id"]): {"title": row.get("title") or "", "text": row.get("text") or "", "lang": row.get("lang")}
        for row in _read_jsonl(directory / "corpus.jsonl")
    }
    queries = {str(row["_id"]): str(row.get("text") or "") for row in _read_jsonl(directory / "queries.jsonl")}
    qrels_path = directory / "qrels.tsv"
    if not qrels_path.is_file():
        raise EvaluationSetError(f"missing {qrels_path}")
    qrels: dict[str, set[str]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(reader, 1):
            if number == 1 and row and row[0] == "query-id":
                continue
            if len(row) < 3:
                raise EvaluationSetError(f"{qrels_path}:{number}: expected query-id, corpus-id, score")
            if float(row[2]) > 0:
                qrels.setdefault(row[0], set()).add(row[1])
    unknown = {doc for docs in qrels.values() for doc in docs} - set(corpus)
    if unknown:
        raise EvaluationSetError(f"qrels name {len(unknown)} passages missing from the corpus, e.g. {sorted(unknown)[:3]}")
    return BeirSet(directory.name, corpus, queries, qrels)
