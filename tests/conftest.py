"""Shared fixtures: a tiny offline model for every test, and a throwaway index per test.

The knowledge-base, user and client fixtures shared by the API, page and report tests live in
``tests/knowledge_base.py``; each directory's conftest declares only its files and users.
"""
import secrets
import tempfile

import pytest

from embeddings.encoder import Encoder
from embeddings.tiny import build_tiny_model_dir

pytest_plugins = ["tests.knowledge_base", "tests.fakes.graph_testing"]


def pytest_configure(config):
    """Production settings, minus what needs a deployment: a secret and TLS.

    The settings are production's (DEBUG off unless KBSEARCH_DEBUG=1, secure cookies, HSTS). The
    suite needs no secret in the environment: it gets a random key for the run. Its requests are
    plain HTTP from the test client and the live server, so the HTTPS redirect is switched off;
    tests/settings checks the production values themselves in fresh processes.
    """
    from django.conf import settings

    settings.SECRET_KEY = f"kbsearch-tests-{secrets.token_urlsafe(50)}"
    settings.SECURE_SSL_REDIRECT = False
    # Hashed static names need collectstatic, which a deployment runs (tests/settings checks it);
    # the suite renders pages without it, and WhiteNoise gets an empty folder rather than none.
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    settings.STATIC_ROOT = tempfile.mkdtemp(prefix="kbsearch-static-")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def second_model_dir(tmp_path_factory):
    """Another tiny model (other weights, 48 dimensions instead of 32): the "new model" of tests of
    model changes. Addressed by its path, as an operator would give it."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("second-model"), seed=4242, hidden_size=48)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir) -> Encoder:
    return Encoder(str(tiny_model_dir))


@pytest.fixture(autouse=True)
def _tiny_model_by_default(settings, tiny_model_dir):
    """No test loads the real model unless it asks for it (tests/embeddings does, on purpose).

    float32 unless a test asks for another precision: ``auto`` would give bfloat16 on some CPUs and
    float32 on others, and the tests must not depend on the machine running them."""
    settings.KBSEARCH_EMBEDDING_MODEL = str(tiny_model_dir)
    settings.KBSEARCH_EMBED_PRECISION = "float32"


@pytest.fixture
def fresh_encoders():
    """No encoder or cached query vector from an earlier test (tests that switch models or
    precisions), and none left behind for the next."""
    from embeddings.loading import clear_encoder_cache

    clear_encoder_cache()
    yield
    clear_encoder_cache()


@pytest.fixture
def index_backend(settings, tmp_path):
    from kbsearch.index.registry import get_index_backend, reset_index_backend

    settings.KBSEARCH_INDEX = {
        "BACKEND": "kbsearch.index.embedded.EmbeddedIndexBackend",
        "OPTIONS": {"path": str(tmp_path / "index" / "embedded.sqlite3")},
    }
    reset_index_backend()
    yield get_index_backend()
    reset_index_backend()
