"""Ingest throughput with the default model: chunks/s end to end and the share of time outside it.

Documents are passages of ../shared/eval/mixed-kb (English, Chinese, Japanese), ingested through
``documents_ingest`` into a throwaway database and embedded index, exactly as a connector's would be.
The encoder is wrapped to time its calls, so "outside the model" is everything else: parsing,
chunking, token counting, analysis, database and index writes.

    .venv/bin/python bench/bench_ingest.py [--documents 600]
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class TimedEncoder:
    def __init__(self, encoder) -> None:
        self.inner = encoder
        self.dimension = encoder.dimension
        self.index_metadata = encoder.index_metadata
        self.count_tokens = encoder.count_tokens
        self.seconds = 0.0
        self.chunks = 0
        self.tokens = 0

    def encode_passages(self, texts):
        started = time.perf_counter()
        vectors = self.inner.encode_passages(texts)
        self.seconds += time.perf_counter() - started
        self.chunks += len(texts)
        return vectors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=600)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "eval" / "mixed-kb" / "corpus.jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KBSEARCH_VAR_DIR"] = tmp
        os.environ.pop("DATABASE_URL", None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
        os.environ["KBSEARCH_MODEL_CACHE_DIR"] = str(ROOT / "var" / "models")
        import django

        django.setup()
        from django.core.management import call_command

        from embeddings.loading import get_encoder
        from kbsearch.documents.models import Chunk, Source
        from kbsearch.documents.services import documents_ingest
        from kbsearch.ingest.inputs import DocumentInput
        from kbsearch.ingest.parsers import blocks_from_text

        call_command("migrate", verbosity=0)
        encoder = TimedEncoder(get_encoder())
        rows = [json.loads(line) for line in args.corpus.open(encoding="utf-8")][: args.documents]
        source = Source.objects.create(key="bench", name="bench", connector="filesystem")
        items = (
            DocumentInput(external_id=row["_id"], title=row.get("title", ""), blocks=blocks_from_text(row["text"]),
                          principals=["public"], language=row.get("lang"))
            for row in rows
        )
        started = time.perf_counter()
        report = documents_ingest(source=source, items=items, encoder=encoder)
        total = time.perf_counter() - started
        tokens = [c.token_count for c in Chunk.objects.all()]
        print(f"{len(rows)} documents -> {report.chunks_indexed} chunks "
              f"(mean {sum(tokens) / len(tokens):.0f} content tokens) in {total:.1f} s")
        print(f"end to end: {report.chunks_indexed / total:.1f} chunks/s; "
              f"model: {encoder.chunks / encoder.seconds:.1f} chunks/s; "
              f"outside the model: {100 * (total - encoder.seconds) / total:.1f}% of the time")
        if report.errors:
            print("errors:", report.errors[:5])


if __name__ == "__main__":
    main()
