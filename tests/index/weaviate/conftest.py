"""Fixtures for the Weaviate backend's unit tests: a backend over the in-memory fake client."""
import pytest

from kbsearch.index.base import IndexMetadata
from kbsearch.index.weaviate import WeaviateIndexBackend
from tests.index.entries import DIM
from tests.index.weaviate.fake_client import FakeWeaviate

METADATA = IndexMetadata(model_id="e5-small", model_version="v1", dimension=DIM, analyzer_version=2)


@pytest.fixture
def server():
    return FakeWeaviate()


@pytest.fixture
def backend(server):
    index = WeaviateIndexBackend(collection="KbTest", client=server, sleep=lambda seconds: None)
    index.ensure_index(metadata=METADATA)
    return index
