"""The lean query forward: the same vectors as the model's own forward, and only where it applies."""
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from embeddings import query_forward
from embeddings.encoder import QUERY_PREFIX, Encoder
from embeddings.packed_linear import packing_supported
from embeddings.query_forward import MIN_AGREEMENT, QueryForward

QUERIES = [
    "How do I reset my VPN password?",
    "报销需要在出差结束后三十天内提交吗",
    "パスワードを忘れた",
    "회의실 예약 자동 취소",
    "这个API的authentication流程",
    "x",
    "ＦＵＬＬ　ｗｉｄｔｈ and e\u0301 combining",
]


def _model_forward(encoder: Encoder, texts: list[str]) -> np.ndarray:
    """The encoder's packed model through transformers' own modules, one text at a time."""
    return np.vstack([encoder._embed(encoder._token_ids([text], QUERY_PREFIX)) for text in texts])


def _lean(encoder: Encoder, texts: list[str]) -> np.ndarray:
    return np.vstack([encoder.encode_queries([text]) for text in texts])


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_single_queries_take_the_lean_forward_and_get_the_models_vectors(tiny_model_dir: Path, precision: str):
    encoder = Encoder(str(tiny_model_dir), precision=precision)
    # A CPU that cannot run bfloat16 products in oneDNN has no lean bfloat16 forward (autocast instead).
    assert encoder.lean_queries == packing_supported(getattr(torch, precision))
    if not encoder.lean_queries:
        return  # nothing to compare: single queries take the model's own forward here
    # The longest query the model takes, cut at max_seq_length like every other.
    texts = QUERIES + ["the quarterly OKR review " * 200]
    lean, reference = _lean(encoder, texts), _model_forward(encoder, texts)
    cosines = np.sum(lean * reference, axis=1)
    assert cosines.min() >= (0.999999 if precision == "float32" else MIN_AGREEMENT), cosines
    np.testing.assert_allclose(np.linalg.norm(lean, axis=1), 1.0, rtol=1e-5)


def test_the_lean_forward_is_what_a_single_query_runs_and_batches_keep_the_model(tiny_model_dir: Path, monkeypatch):
    encoder = Encoder(str(tiny_model_dir), precision="float32")
    calls = []
    original = QueryForward.__call__
    monkeypatch.setattr(QueryForward, "__call__", lambda self, ids: calls.append(len(ids)) or original(self, ids))
    encoder.encode_queries(["VPN 连接失败"])
    assert len(calls) == 1
    encoder.encode_queries(["VPN 连接失败", "报销 期限"])
    encoder.encode_passages(["one passage"])
    assert len(calls) == 1


def test_a_lean_forward_that_disagrees_with_the_model_is_not_used(tiny_model_dir: Path, monkeypatch, caplog):
    original = QueryForward.__call__

    def drifting(self, ids):
        vector = original(self, ids)
        return vector + torch.linspace(-1.0, 1.0, vector.shape[0]) * vector.abs().mean()

    monkeypatch.setattr(QueryForward, "__call__", drifting)
    with caplog.at_level(logging.WARNING, logger="embeddings.encoder"):
        encoder = Encoder(str(tiny_model_dir), precision="float32")
    assert not encoder.lean_queries
    assert "disagrees" in caplog.text
    np.testing.assert_allclose(encoder.encode_queries(["报销 期限"]), _model_forward(encoder, ["报销 期限"]))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda st: setattr(st[1], "pooling_mode", "cls"), "pooling"),
        (lambda st: setattr(st[0].auto_model.config, "hidden_act", "gelu_new"), "activation"),
        (lambda st: setattr(st[0].auto_model.config, "position_embedding_type", "relative_key"), "position"),
    ],
)
def test_models_it_does_not_mirror_keep_their_own_forward(tiny_model_dir: Path, change, reason: str, caplog):
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    change(model)
    with caplog.at_level(logging.INFO, logger="embeddings.query_forward"):
        assert QueryForward.build(model, torch.float32) is None
    assert reason in caplog.text


def test_roberta_style_positions_are_counted_from_the_padding_id(tiny_model_dir: Path, tmp_path: Path):
    """The hub's multilingual-e5 is an XLM-RoBERTa model: position ids start at padding id + 1."""
    model_dir = tmp_path / "xlmr"
    shutil.copytree(tiny_model_dir, model_dir)
    config_file = model_dir / "config.json"
    config = json.loads(config_file.read_text())
    config.update(architectures=["XLMRobertaModel"], model_type="xlm-roberta")
    config_file.write_text(json.dumps(config))
    encoder = Encoder(str(model_dir), precision="float32")
    assert type(encoder._model[0].auto_model).__name__ == "XLMRobertaModel"
    assert encoder.lean_queries and encoder._query_forward.position_offset == config["pad_token_id"] + 1
    texts = QUERIES[:5]
    cosines = np.sum(_lean(encoder, texts) * _model_forward(encoder, texts), axis=1)
    assert cosines.min() >= 0.999999, cosines


def test_a_query_longer_than_the_positions_is_refused_not_wrapped(tiny_model_dir: Path):
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    forward = QueryForward.build(model, torch.float32)
    positions = forward.position_embeddings.shape[0]
    with torch.inference_mode():
        assert forward([5 + i % 100 for i in range(positions)]).shape == (model.get_embedding_dimension(),)
        with pytest.raises(ValueError, match="positions"):
            forward([5 + i % 100 for i in range(positions + 1)])


def test_only_supported_dtypes_are_built(tiny_model_dir: Path):
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    assert query_forward._unsupported(model, torch.float16) == "dtype torch.float16"
