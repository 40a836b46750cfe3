"""Running an evaluation: index a BEIR corpus the way ingest does, then rank every query the way the
API does (``kbsearch.index.ranking``), and score the rankings.

Each corpus passage becomes one document readable by ``public``; passages are chunked with the same
chunker and budget as ingest. The index lives in its own folder per set and model, so evaluations
never touch the product's index.

Splits: ``tune`` is a fixed fifth of the queries (by a hash of the query id), ``test`` the rest. Any
parameter chosen by looking at results is chosen on ``tune`` and reported on ``test``.
"""
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from django.conf import settings

from kbsearch.evaluation.beir import BeirSet
from kbsearch.evaluation.cache import EmbeddingCache
from kbsearch.evaluation.metrics import summarize
from kbsearch.index.base import IndexChunk, SearchFilters
from kbsearch.index.embedded import EmbeddedIndexBackend
from kbsearch.index.ranking import rank_documents
from kbsearch.ingest.chunking import chunk_blocks
from kbsearch.ingest.parsers import blocks_from_text
from kbsearch.text.analysis import ANALYZER_VERSION, chunk_terms
from kbsearch.text.language import detect_language
from kbsearch.text.query import clean_query

SPLITS = ("all", "tune", "test")
Progress = Callable[[str, int, int], None]
_PROMPT_TOKEN_RESERVE = 8


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


def in_split(query_id: str, split: str) -> bool:
    if split == "all":
        return True
    is_tune = int(hashlib.sha1(query_id.encode()).hexdigest(), 16) % 5 == 0
    return is_tune if split == "tune" else not is_tune


@dataclass
class EvaluationResult:
    set_name: str
    mode: str
    alpha: float
    split: str
    language_gate: bool
    metrics: dict
    seconds_indexing: float
    seconds_ranking: float

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class Evaluator:
    """Indexes one set once and evaluates any number of modes on it."""

    def __init__(self, beir: BeirSet, *, encoder, work_dir: Path, on_progress: Progress | None = None) -> None:
        self.beir = beir
        self.encoder = encoder
        # on_progress(stage, done, total): passages chunked and embedded, queries embedded and ranked.
        self.on_progress = on_progress or _no_progress
        metadata = encoder.index_metadata
        # The weights' fingerprint too: a fine-tuned model at the same path must not reuse vectors;
        # and the precision: bfloat16 vectors are not float32 ones.
        model_key = f"{metadata.model_id}:{metadata.model_version}:{metadata.dimension}"
        if metadata.precision != "float32":  # float32 keys as before: cached vectors stay valid
            model_key += f":{metadata.precision}"
        self.cache = EmbeddingCache(work_dir / "embeddings.sqlite3", model_key)
        fingerprint = hashlib.sha1(
            json.dumps(
                [model_key, ANALYZER_VERSION, settings.KBSEARCH_CHUNK_TOKENS, settings.KBSEARCH_CHUNK_OVERLAP_TOKENS,
                 sorted(beir.corpus)]
            ).encode()
        ).hexdigest()[:12]
        self.index_path = work_dir / f"{beir.name}-{fingerprint}" / "index.sqlite3"
        self.document_keys = sorted(beir.corpus)
        self.seconds_indexing = 0.0
        self._query_vectors = None

    def _build_index(self) -> EmbeddedIndexBackend:
        started = time.perf_counter()
        done_marker = self.index_path.with_suffix(".complete")
        if done_marker.exists():
            return EmbeddedIndexBackend(path=str(self.index_path))
        if self.index_path.exists():
            for leftover in self.index_path.parent.glob("index.sqlite3*"):
                leftover.unlink()
        index = EmbeddedIndexBackend(path=str(self.index_path))
        index.ensure_index(metadata=self.encoder.index_metadata)
        records = []
        stage = f"{self.beir.name}: chunk passages"
        for document_id, key in enumerate(self.document_keys, 1):
            passage = self.beir.corpus[key]
            chunks = chunk_blocks(
                blocks_from_text(passage["text"]),
                count_tokens=self.encoder.count_tokens,
                max_tokens=settings.KBSEARCH_CHUNK_TOKENS - _PROMPT_TOKEN_RESERVE,
                overlap_tokens=settings.KBSEARCH_CHUNK_OVERLAP_TOKENS,
                title=passage["title"],
            )
            language = passage.get("lang") or detect_language(passage["text"])
            records.extend((document_id, passage["title"], chunk.text, language) for chunk in chunks)
            self.on_progress(stage, document_id, len(self.document_keys))
        vectors = self.cache.embed(
            "passage", [text for _, _, text, _ in records], self.encoder.encode_passages,
            on_progress=partial(self.on_progress, f"{self.beir.name}: embed passages"),
        )
        batch = []
        for chunk_id, ((document_id, title, text, language), vector) in enumerate(zip(records, vectors), 1):
            batch.append(
                IndexChunk(
                    chunk_id=chunk_id,
                    document_id=document_id,
                    source_key=self.beir.name,
                    language=language,
                    terms=chunk_terms(title=title, text=text),
                    vector=vector,
                    principals=frozenset({"public"}),
                )
            )
            if len(batch) == 500:
                index.upsert_chunks(batch).raise_for_failures()
                batch = []
        index.upsert_chunks(batch).raise_for_failures()
        done_marker.touch()
        self.seconds_indexing = time.perf_counter() - started
        return index

    def evaluate(self, *, mode: str, alpha: float, split: str = "all", language_gate: bool = True) -> EvaluationResult:
        index = self._build_index()
        query_ids = [qid for qid in self.beir.queries if qid in self.beir.qrels and in_split(qid, split)]
        texts = [clean_query(self.beir.queries[qid]) for qid in query_ids]
        vectors = None
        if mode != "bm25":
            # The search path encodes one query at a time, through the lean forward where the
            # encoder has one: measured that way, under its own cache kind.
            lean = getattr(self.encoder, "lean_queries", False)
            vectors = self.cache.embed(
                "query-lean" if lean else "query", texts,
                self.encoder.encode_queries_as_searched if lean else self.encoder.encode_queries,
                on_progress=partial(self.on_progress, f"{self.beir.name}: embed queries"),
            )
        stage = f"{self.beir.name}: rank {mode}"
        filters = SearchFilters(principals=frozenset({"public"}))
        started = time.perf_counter()
        runs = {}
        for position, (query_id, text) in enumerate(zip(query_ids, texts)):
            page = rank_documents(
                index=index,
                query=text,
                query_vector=None if vectors is None else vectors[position],
                filters=filters,
                mode=mode,
                alpha=alpha,
                limit=100,
                language_gate=language_gate,
            )
            runs[query_id] = [self.document_keys[hit.document_id - 1] for hit in page.hits]
            self.on_progress(stage, position + 1, len(query_ids))
        seconds_ranking = time.perf_counter() - started
        index.close()
        return EvaluationResult(
            set_name=self.beir.name,
            mode=mode,
            alpha=alpha,
            split=split,
            language_gate=language_gate,
            metrics=summarize(runs, self.beir.qrels),
            seconds_indexing=self.seconds_indexing,
            seconds_ranking=seconds_ranking,
        )
