"""Building a training-data snapshot: ``training_data_build`` (``manage.py training_data``).

It gathers judged pairs from use (``use_pairs``) and heading pairs from the corpus
(``corpus_pairs``), gives each its passage (``passages``) and hard negatives (``negatives``),
holds the most recent in-domain queries out, and writes one folder under
``KBSEARCH_TRAINING_DIR``:

``train.jsonl``, one JSON object per line, texts WITHOUT the e5 ``query: ``/``passage: `` prefixes::

    {"query": str, "positive": str, "negatives": [str, ...],
     "origin": "click" | "feedback" | "corpus", "weight": float, "language": str,
     "source": str (source key), "document_id": int, "chunk_id": int,
     "query_time": ISO 8601 str (the latest search judged) | null (corpus rows)}

``heldout/`` in BEIR layout for ``kbsearch.evaluation`` (``load_beir``, ``Evaluator``): the use
pairs of the most recent ``heldout_fraction`` of in-domain queries, none of whose queries has any
row in ``train.jsonl``. ``queries.jsonl`` (``_id``, ``text``), ``qrels.tsv`` (``query-id``,
``corpus-id``, ``score``) and ``corpus.jsonl`` (``_id`` ``c<chunk id>``, ``title`` = the chunk's
context line, ``text`` = its body, ``lang``): the positives, their negatives and a fixed sample of
other chunks, so the evaluator re-creates each chunk as it is served.

``snapshot.json`` repeats the summary, the parameters and the hash. The ``TrainingDataSnapshot`` row
points at the folder; the folder appears complete or not at all (written aside, then renamed).
"""
import hashlib
import json
import logging
import secrets
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from access.principals import PUBLIC
from kbsearch.documents.models import Document, Source
from kbsearch.index.base import BaseIndexBackend, IndexBackendError
from kbsearch.index.registry import get_index_backend
from kbsearch.relevance.models import TrainingDataSnapshot
from kbsearch.relevance.training_data.corpus_pairs import corpus_pairs_collect
from kbsearch.relevance.training_data.negatives import MiningRequest, NegativeMiner, passage_sample
from kbsearch.relevance.training_data.params import TrainingDataParams
from kbsearch.relevance.training_data.passages import Passage, PassageStore, QueryVectors, best_passages
from kbsearch.relevance.training_data.use_pairs import use_judgements_collect

logger = logging.getLogger(__name__)

DROP_NO_PASSAGE = "document has no passages"
DROP_CORPUS_DUPLICATE = "corpus pair duplicates a use pair"
LEFT_OUT_HELDOUT = "row of a held-out query left out of training"


@dataclass(frozen=True)
class _Row:
    query_key: str
    query: str
    positive: Passage
    positive_text: str
    origin: str
    weight: float
    query_time: str | None
    audience: frozenset[str]
    explicit: tuple[Passage, ...] = ()


def _serving_encoder(index: BaseIndexBackend, encoder, notes: list[str]):
    """The serving generation's model (``encoder_for``), or None with a note when it cannot be had."""
    if encoder is not None:
        return encoder
    from embeddings.loading import encoder_for

    try:
        return encoder_for(index.serving_metadata())
    except (IndexBackendError, OSError, ValueError) as error:
        notes.append(f"no serving model ({error}): first chunks as positives, no vector negatives")
        return None


def _heldout_keys(rows: list[_Row], fraction: float) -> set[str]:
    """The most recent ``fraction`` of distinct in-domain queries (by their latest search)."""
    latest: dict[str, str] = {}
    for row in rows:
        latest[row.query_key] = max(latest.get(row.query_key, ""), row.query_time or "")
    ordered = sorted(latest, key=lambda key: (latest[key], key))
    count = int(len(ordered) * fraction + 0.5)
    return set(ordered[len(ordered) - count :]) if count else set()


def _use_rows(judgements, store: PassageStore, vectors: QueryVectors, dropped: Counter) -> list[_Row]:
    down = [judged for group in judgements.negatives.values() for judged in group]
    best = best_passages(
        wanted=[(judged.query, judged.document_id) for judged in [*judgements.positives, *down]],
        store=store, vectors=vectors,
    )
    explicit: dict[str, list[Passage]] = {}
    for judged in down:
        passage = best.get((judged.query, judged.document_id))
        if passage is not None:
            explicit.setdefault(judged.query_key, []).append(passage)
    rows = []
    for judged in judgements.positives:
        passage = best.get((judged.query, judged.document_id))
        if passage is None:
            dropped[DROP_NO_PASSAGE] += 1
            continue
        rows.append(_Row(
            judged.query_key, judged.query, passage, passage.text, judged.origin, judged.weight,
            judged.searched_at.isoformat(), frozenset(judged.audience), tuple(explicit.get(judged.query_key, ())),
        ))
    rows.sort(key=lambda row: (row.query_time, row.query_key, row.positive.document_id))
    return rows


def training_data_build(
    *,
    params: TrainingDataParams | None = None,
    encoder=None,
    index: BaseIndexBackend | None = None,
    output_root: Path | None = None,
) -> TrainingDataSnapshot:
    """Build, write and record one snapshot of training data (see the module docstring).

    ``encoder`` and ``index`` default to the serving generation's model and the configured index;
    ``output_root`` to ``KBSEARCH_TRAINING_DIR``. Raises ValueError for bad parameters.
    """
    params = params or TrainingDataParams()
    index = index or get_index_backend()
    notes: list[str] = ["time on a result is not recorded: dwell is estimated from the user's next action"]
    encoder = _serving_encoder(index, encoder, notes)
    store, vectors, dropped = PassageStore(), QueryVectors(encoder), Counter()
    excluded = set(Document.objects.filter(source__key__in=params.exclude_sources).values_list("pk", flat=True))

    judgements = use_judgements_collect(params=params, excluded_documents=excluded)
    dropped.update(judgements.dropped)
    use_rows = _use_rows(judgements, store, vectors, dropped)
    logger.info("training data: %d use pairs from %s", len(use_rows), dict(judgements.signals))

    corpus, corpus_dropped = corpus_pairs_collect(params=params, store=store)
    dropped.update(corpus_dropped)
    use_items = {(row.query_key, row.positive.document_id) for row in use_rows}
    audiences = store.audiences(pair.passage.document_id for pair in corpus)
    corpus_rows = []
    for pair in corpus:
        if (pair.query_key, pair.passage.document_id) in use_items:
            dropped[DROP_CORPUS_DUPLICATE] += 1
            continue
        corpus_rows.append(_Row(
            pair.query_key, pair.query, pair.passage, pair.passage.body, "corpus", params.corpus_weight, None,
            audiences[pair.passage.document_id] | {PUBLIC},  # whoever sees it sees public documents too
        ))

    heldout_keys = _heldout_keys(use_rows, params.heldout_fraction)
    heldout = [row for row in use_rows if row.query_key in heldout_keys]
    train = [row for row in [*use_rows, *corpus_rows] if row.query_key not in heldout_keys]
    left_out = sum(1 for row in corpus_rows if row.query_key in heldout_keys)
    if left_out:
        dropped[LEFT_OUT_HELDOUT] += left_out

    pool = [row.positive for row in [*use_rows, *corpus_rows]] + [p for row in use_rows for p in row.explicit]
    pool += passage_sample(store=store, params=params, count=params.pool_sample, salt="pool")
    allowed = None
    if params.exclude_sources:
        allowed = frozenset(Source.objects.exclude(key__in=params.exclude_sources).values_list("key", flat=True))
    miner = NegativeMiner(store=store, pool=pool, endorsed=judgements.endorsed, vectors=vectors, index=index,
                          params=params, allowed_source_keys=allowed)
    requests = [MiningRequest(row.query_key, row.query, row.positive, row.audience, row.explicit)
                for row in [*heldout, *train]]
    logger.info("training data: mining negatives for %d rows over a pool of %d", len(requests), len(miner.pool))
    negatives = miner.mine(requests)
    heldout_mined = list(zip(heldout, negatives[: len(heldout)], strict=True))
    train_mined = list(zip(train, negatives[len(heldout) :], strict=True))
    notes.extend(miner.notes)

    distractors = passage_sample(store=store, params=params, count=params.heldout_distractors, salt="heldout")
    root = Path(output_root or settings.KBSEARCH_TRAINING_DIR)
    name = f"{timezone.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    folder = root / name
    partial = root / f".{name}.partial"
    (partial / "heldout").mkdir(parents=True)
    try:
        sha256 = _write_train(partial / "train.jsonl", train_mined)
        heldout_counts = _write_heldout(partial / "heldout", heldout_mined, distractors)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    summary = {
        "train_rows": len(train),
        "heldout": heldout_counts,
        "by_origin": dict(Counter(row.origin for row in train)),
        "by_source": dict(Counter(row.positive.source_key for row in train)),
        "by_language": dict(Counter(row.positive.language for row in train)),
        "heldout_by_origin": dict(Counter(row.origin for row in heldout)),
        "signals": dict(judgements.signals),
        "kept": {"use_pairs": len(use_rows), "corpus_pairs": len(corpus_rows),
                 "thumbs_down_queries": len(judgements.negatives)},
        "dropped": dict(dropped),
        "negatives": dict(miner.counts),
        "model": _model_of(encoder),
        "notes": notes,
    }
    stored_params = params.as_json()
    (partial / "snapshot.json").write_text(
        json.dumps({"sha256": sha256, "summary": summary, "params": stored_params}, ensure_ascii=False, indent=2),
        encoding="utf-8",
    )
    partial.rename(folder)
    logger.info("training data: %d rows, %d held-out queries in %s", len(train), heldout_counts["queries"], folder)
    return TrainingDataSnapshot.objects.create(path=str(folder), sha256=sha256, summary=summary, params=stored_params)


def _model_of(encoder) -> dict | None:
    metadata = getattr(encoder, "index_metadata", None)
    return None if metadata is None else {"model_id": metadata.model_id, "model_version": metadata.model_version}


def _write_train(path: Path, rows: list[tuple[_Row, list[Passage]]]) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for row, negatives in rows:
            line = json.dumps({
                "query": row.query,
                "positive": row.positive_text,
                "negatives": [passage.text for passage in negatives],
                "origin": row.origin,
                "weight": row.weight,
                "language": row.positive.language,
                "source": row.positive.source_key,
                "document_id": row.positive.document_id,
                "chunk_id": row.positive.chunk_id,
                "query_time": row.query_time,
            }, ensure_ascii=False).encode("utf-8") + b"\n"
            handle.write(line)
            digest.update(line)
    return digest.hexdigest()


def _corpus_entry(passage: Passage) -> dict:
    if not passage.body.strip():  # a heading without text: the heading is the passage
        return {"_id": f"c{passage.chunk_id}", "title": "", "text": passage.context, "lang": passage.language}
    return {"_id": f"c{passage.chunk_id}", "title": passage.context, "text": passage.body, "lang": passage.language}


def _write_heldout(folder: Path, rows: list[tuple[_Row, list[Passage]]], distractors: list[Passage]) -> dict:
    query_ids: dict[str, str] = {}
    queries, qrels, corpus = [], [], {}
    for row, negatives in rows:
        if row.query_key not in query_ids:
            query_ids[row.query_key] = f"q{len(query_ids) + 1}"
            queries.append({"_id": query_ids[row.query_key], "text": row.query})
        qrels.append((query_ids[row.query_key], f"c{row.positive.chunk_id}"))
        for passage in [row.positive, *negatives]:
            corpus.setdefault(passage.chunk_id, passage)
    for passage in distractors:
        corpus.setdefault(passage.chunk_id, passage)
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(query, ensure_ascii=False) + "\n" for query in queries)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(_corpus_entry(p), ensure_ascii=False) + "\n" for p in corpus.values())
    with (folder / "qrels.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        handle.writelines(f"{query_id}\t{corpus_id}\t1\n" for query_id, corpus_id in dict.fromkeys(qrels))
    return {"queries": len(queries), "qrels": len(dict.fromkeys(qrels)), "corpus": len(corpus)}
