"""Model directories are written atomically and load offline with plain sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from embeddings import st_build
from embeddings.tiny import build_tiny_model_dir


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_failed_build_leaves_no_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while saving")

    monkeypatch.setattr(st_build, "_assemble_sentence_transformer", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_tiny_model_dir(tmp_path / "model")
    assert not (tmp_path / "model").exists()
    assert _leftovers(tmp_path) == []


def test_failed_rebuild_keeps_the_previous_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = build_tiny_model_dir(tmp_path / "model")
    before = (target / "model.safetensors").read_bytes()
    monkeypatch.setattr(st_build, "_assemble_sentence_transformer", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        build_tiny_model_dir(target)
    assert (target / "model.safetensors").read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_rebuild_replaces_existing_directory(tmp_path: Path):
    target = build_tiny_model_dir(tmp_path / "model")
    (target / "stray-file").write_text("left from an older build")
    build_tiny_model_dir(target)
    assert not (target / "stray-file").exists()
    assert _leftovers(tmp_path) == []


def test_directory_loads_with_plain_sentence_transformers(tiny_model_dir: Path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu", local_files_only=True)
    assert model.max_seq_length == 512
    assert (tiny_model_dir / "model.safetensors").is_file()
    assert not list(tiny_model_dir.glob("*.bin"))
    vectors = model.encode_query(["annual leave", "年假"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # The saved prompts make encode_query/encode_document apply e5's prefixes.
    np.testing.assert_allclose(vectors[0], model.encode("query: annual leave"), atol=1e-5)
    with safe_open(str(tiny_model_dir / "model.safetensors"), "pt") as handle:
        weights = set(handle.keys())
    assert not any(name.startswith("pooler.") for name in weights)


def test_vocabulary_without_special_tokens_is_rejected():
    from tokenizers import normalizers

    with pytest.raises(st_build.ModelBuildError, match="special"):
        st_build.build_unigram_tokenizer([("<unk>", 0.0), ("a", -1.0)], normalizers.NFKC(), unk_id=0, max_length=8)
