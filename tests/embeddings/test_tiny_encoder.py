"""Encoder behaviour on the tiny offline model (shapes, prompts, ordering, token counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings.encoder import PASSAGE_PREFIX, Encoder
from embeddings.tiny import build_tiny_model_dir

MIXED_TEXTS = [
    "How do I reset my password?",
    "如何重置密码？请在人事系统中申请年假。",
    "パスワードをリセットする方法を教えてください。",
    "비밀번호를 재설정하는 방법은 무엇입니까?",
    "short",
    "Employees can request annual leave through the HR portal. " * 5,
]


def test_embeddings_are_float32_unit_rows(tiny_encoder: Encoder):
    for encode in (tiny_encoder.encode_queries, tiny_encoder.encode_passages):
        vectors = encode(MIXED_TEXTS)
        assert vectors.dtype == np.float32
        assert vectors.shape == (len(MIXED_TEXTS), tiny_encoder.dimension)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_zero_rows(tiny_encoder: Encoder):
    for encode in (tiny_encoder.encode_queries, tiny_encoder.encode_passages):
        vectors = encode([])
        assert vectors.shape == (0, tiny_encoder.dimension) and vectors.dtype == np.float32


def test_query_and_passage_prompts_differ(tiny_encoder: Encoder):
    queries = tiny_encoder.encode_queries(MIXED_TEXTS)
    passages = tiny_encoder.encode_passages(MIXED_TEXTS)
    assert np.all(np.sum(queries * passages, axis=1) < 0.99999)


def test_prefix_is_the_only_difference_between_query_and_passage(tiny_encoder: Encoder):
    # A "passage" that already says "query: " must embed exactly like the query.
    as_query = tiny_encoder.encode_queries(["annual leave"])
    spelled_out = tiny_encoder.encode_passages(["annual leave"])
    assert not np.allclose(as_query, spelled_out)
    model = tiny_encoder._model
    direct = model.encode(["query: annual leave"], normalize_embeddings=True)
    np.testing.assert_allclose(as_query, direct, atol=1e-5)


def test_batch_results_keep_input_order_and_match_single_texts(tiny_encoder: Encoder):
    batched = tiny_encoder.encode_passages(MIXED_TEXTS)
    singles = np.vstack([tiny_encoder.encode_passages([text]) for text in MIXED_TEXTS])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_small_batches_give_the_same_result(tiny_model_dir: Path, tiny_encoder: Encoder):
    small = Encoder(str(tiny_model_dir), batch_size=2)
    np.testing.assert_allclose(small.encode_queries(MIXED_TEXTS), tiny_encoder.encode_queries(MIXED_TEXTS), atol=1e-5)


def test_build_is_deterministic(tmp_path: Path, tiny_encoder: Encoder):
    again = Encoder(str(build_tiny_model_dir(tmp_path / "again")))
    np.testing.assert_array_equal(again.encode_passages(MIXED_TEXTS), tiny_encoder.encode_passages(MIXED_TEXTS))
    first = Path(tiny_encoder.model_name) / "model.safetensors"
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == first.read_bytes()


def test_cjk_text_is_not_all_unknown(tiny_encoder: Encoder):
    tokenizer = tiny_encoder._tokenizer
    for text in MIXED_TEXTS[1:4]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        known = [i for i in ids if i != tokenizer.unk_token_id]
        assert len(known) >= len(ids) // 2, tokenizer.convert_ids_to_tokens(ids)
    distinct = tiny_encoder.encode_passages(MIXED_TEXTS[1:4])
    assert np.all(np.triu(distinct @ distinct.T, 1) < 0.9999)


def test_count_tokens_excludes_prefix_and_special_tokens(tiny_encoder: Encoder):
    tokenizer = tiny_encoder._tokenizer
    assert tiny_encoder.count_tokens("") == 0
    for text in MIXED_TEXTS:
        count = tiny_encoder.count_tokens(text)
        assert count == len(tokenizer(text, add_special_tokens=False)["input_ids"]) > 0
        with_prompt = len(tokenizer(PASSAGE_PREFIX + text)["input_ids"])
        assert with_prompt == count + tiny_encoder.count_tokens(PASSAGE_PREFIX.strip()) + 2
    assert tiny_encoder.count_tokens("password password") > tiny_encoder.count_tokens("password")


def test_count_tokens_is_not_truncated_by_encoding(tiny_encoder: Encoder):
    long_text = "Expense reports are approved by managers. " * 200
    before = tiny_encoder.count_tokens(long_text)
    assert before > tiny_encoder.max_seq_length
    tiny_encoder.encode_passages([long_text])  # truncates to max_seq_length internally
    assert tiny_encoder.count_tokens(long_text) == before


def test_max_passage_tokens_fills_the_window_exactly(tiny_encoder: Encoder):
    budget = tiny_encoder.max_passage_tokens
    word = next(w for w in ["the", "can", "leave", "reset"] if tiny_encoder.count_tokens(w) == 1)
    text = " ".join([word] * budget)
    assert tiny_encoder.count_tokens(text) == budget
    ids = tiny_encoder._tokenizer(PASSAGE_PREFIX + text)["input_ids"]
    assert len(ids) == tiny_encoder.max_seq_length


def test_max_seq_length_is_clamped_and_truncates(tiny_model_dir: Path):
    assert Encoder(str(tiny_model_dir), max_seq_length=100_000).max_seq_length == 512
    short = Encoder(str(tiny_model_dir), max_seq_length=8)
    base = "password reset " * 3
    # Text beyond the window cannot change the embedding.
    np.testing.assert_allclose(
        short.encode_passages([base]), short.encode_passages([base + "annual leave " * 50]), atol=1e-6
    )


def test_bfloat16_precision_gives_close_float32_unit_vectors(tiny_model_dir: Path, tiny_encoder: Encoder):
    fast = Encoder(str(tiny_model_dir), precision="bfloat16")
    vectors = fast.encode_passages(MIXED_TEXTS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.all(np.sum(vectors * tiny_encoder.encode_passages(MIXED_TEXTS), axis=1) > 0.99)


def test_bad_input_raises_clear_errors(tiny_model_dir: Path, tiny_encoder: Encoder):
    with pytest.raises(TypeError):
        tiny_encoder.encode_queries("not a list")
    with pytest.raises(TypeError):
        tiny_encoder.encode_passages(["ok", None])
    with pytest.raises(TypeError):
        tiny_encoder.count_tokens(b"bytes")
    with pytest.raises(ValueError, match="surrogate"):
        tiny_encoder.encode_queries(["fine", "broken \ud800 text"])
    with pytest.raises(ValueError, match="surrogate"):
        tiny_encoder.count_tokens("broken \udcff")
    with pytest.raises(ValueError):
        Encoder(str(tiny_model_dir), batch_size=0)
    with pytest.raises(ValueError, match="precision"):
        Encoder(str(tiny_model_dir), precision="float8")


def test_index_metadata_names_the_model_and_fingerprints_its_weights(tmp_path: Path, tiny_model_dir: Path,
                                                                    tiny_encoder: Encoder):
    from safetensors.torch import load_file, save_file

    from kbsearch.text.analysis import ANALYZER_VERSION

    metadata = tiny_encoder.index_metadata
    assert (metadata.model_id, metadata.dimension, metadata.analyzer_version) == (
        str(tiny_model_dir), tiny_encoder.dimension, ANALYZER_VERSION
    )
    assert len(metadata.model_version) == 16
    # Another load of the same weights, or a copy elsewhere, is the same version.
    copy = build_tiny_model_dir(tmp_path / "copy")
    assert Encoder(str(copy)).index_metadata.model_version == metadata.model_version
    assert Encoder(str(copy), model_id="tiny").index_metadata.model_id == "tiny"
    # One weight nudged, as fine-tuning would: another version.
    weights = load_file(str(copy / "model.safetensors"))
    name = sorted(name for name in weights if name.endswith("attention.self.query.weight"))[0]
    weights[name][0, 0] += 0.5
    save_file(weights, str(copy / "model.safetensors"))
    assert Encoder(str(copy)).index_metadata.model_version != metadata.model_version
