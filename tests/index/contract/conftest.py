"""The index contract suite's fixtures: every test runs on every backend that can run here.

The embedded backend always; Weaviate when ``KBSEARCH_WEAVIATE_URL`` names a server (then each
test gets collections of its own name, dropped afterwards). Without the URL the Weaviate
parameter is not generated at all, so nothing is skipped: the suite is simply the embedded one.

``storage`` opens backends on one storage: a second object stands in for another process (a web
worker, the sync worker) and for a restart. ``backend`` is the first one, with the index created.
"""
import os
import uuid

import pytest

from kbsearch.index.base import BaseIndexBackend
from tests.index.entries import meta

WEAVIATE_URL = os.environ.get("KBSEARCH_WEAVIATE_URL", "").strip()
BACKENDS = ["embedded"] + (["weaviate"] if WEAVIATE_URL else [])


class Storage:
    """One index's storage; ``open`` gives a new backend object on it (closed at teardown)."""

    def __init__(self, kind: str, tmp_path) -> None:
        self.kind = kind
        self.opened: list[BaseIndexBackend] = []
        if kind == "embedded":
            self.options = {"path": str(tmp_path / "index" / "embedded.sqlite3")}
        else:
            # One name per test, so tests never see each other's collections.
            self.options = {"url": WEAVIATE_URL, "collection": f"Contract{uuid.uuid4().hex[:12]}"}

    def open(self) -> BaseIndexBackend:
        if self.kind == "embedded":
            from kbsearch.index.embedded import EmbeddedIndexBackend

            backend = EmbeddedIndexBackend(**self.options)
        else:
            from kbsearch.index.weaviate import WeaviateIndexBackend

            backend = WeaviateIndexBackend(**self.options)
        self.opened.append(backend)
        return backend

    def destroy(self) -> None:
        """Close every backend; on a server, drop what the test created."""
        if self.kind != "embedded" and self.opened:
            self.opened[0].destroy()  # the serving one, the alias and the change log too
        for backend in self.opened:
            backend.close()


@pytest.fixture(params=BACKENDS)
def storage(request, tmp_path):
    storage = Storage(request.param, tmp_path)
    yield storage
    storage.destroy()


@pytest.fixture
def backend(storage):
    backend = storage.open()
    backend.ensure_index(metadata=meta())
    return backend
