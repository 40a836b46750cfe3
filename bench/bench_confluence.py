"""Confluence connector throughput against the fake server: items/s for a populated space, and the
HTTP calls of an incremental sync with 10 changes.

A fake Cloud site gets ``--pages`` pages (every 50th with a text attachment, every 10th depth-two
subtree read-restricted to a group) and is synced into a throwaway SQLite database and embedded
index through ``source_sync``, as production does. ``--encoder noop`` excludes embedding (a
constant-vector encoder, so the figure is HTTP, parsing, permissions, chunking and writes);
``--encoder tiny`` embeds with the tiny test model (a real transformer forward pass, small).
Then 8 pages are edited, one added and one deleted, and the next incremental sync's HTTP calls
are counted from the fake's request log.

    .venv/bin/python bench/bench_confluence.py [--pages 10000] [--encoder noop|tiny]
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class NoopEncoder:
    """Embedding excluded: every passage gets the same unit vector."""

    dimension = 32

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode_passages(self, texts):
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        vectors[:, 0] = 1.0
        return vectors

    encode_queries = encode_passages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--encoder", choices=("noop", "tiny"), default="noop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KBSEARCH_VAR_DIR"] = tmp
        os.environ.pop("DATABASE_URL", None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
        from cryptography.fernet import Fernet

        os.environ["KBSEARCH_CREDENTIALS_KEY"] = Fernet.generate_key().decode()
        import django

        django.setup()
        from django.core.management import call_command

        from connectors.services import source_create, source_sync
        from kbsearch.documents.credentials import source_credentials_set
        from kbsearch.index.registry import get_index_backend
        from tests.fakes.confluence import FakeConfluence

        call_command("migrate", verbosity=0)
        if args.encoder == "tiny":
            from embeddings.encoder import Encoder
            from embeddings.tiny import build_tiny_model_dir

            encoder = Encoder(str(build_tiny_model_dir(Path(tmp) / "tiny")))
        else:
            encoder = NoopEncoder()
        index = get_index_backend()
        with FakeConfluence(cloud=True) as fake:
            space = fake.site.add_space("ENG", "Engineering")
            fake.site.grant_space(space, "staff")
            fake.add_user("member", groups=("staff", "eng-confidential"))
            populated = fake.populate(space, args.pages, seed=1)
            source = source_create(key="bench", name="Bench", connector="confluence",
                                   config={"base_url": fake.base_url, "flavour": "cloud", "page_size": 100})
            source_credentials_set(source=source, credentials=fake.credentials())

            started = time.perf_counter()
            run = source_sync(source=source, encoder=encoder, index=index)
            seconds = time.perf_counter() - started
            items = run.counts["added"] + len(run.errors)
            full_calls = len(fake.log)

            fake.site.clock.advance(hours=1)
            for page in populated.pages[200:208]:
                fake.site.edit(page, body=f"<p>{page.title} edited for the benchmark.</p>")
            fake.site.add_page(space, "Benchmark new page", parent=populated.home, body="<p>new</p>")
            fake.site.delete(populated.pages[5000 % len(populated.pages)])
            fake.log.clear()
            incremental = source_sync(source=source, encoder=encoder, index=index)
            print(json.dumps({
                "pages": args.pages, "encoder": args.encoder, "full_sync_items": items,
                "full_sync_seconds": round(seconds, 1), "items_per_second": round(items / seconds, 1),
                "full_sync_http_calls": full_calls, "full_sync_status": run.status,
                "incremental_counts": {k: incremental.counts[k] for k in ("added", "changed", "removed")},
                "incremental_http_calls": len(fake.log),
                "incremental_calls_by_path": sorted({r.path for r in fake.log.records}),
            }, indent=2))


if __name__ == "__main__":
    main()
