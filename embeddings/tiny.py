"""A tiny, deterministic, offline sentence-transformers model for tests.

Same shape of pipeline as the real e5 model (Unigram tokenizer with Metaspace and `<s> $A </s>`,
BERT encoder, mean pooling, L2 normalisation) but ~100k parameters, built in about a second from a
small built-in multilingual text. Its embeddings carry no meaning; tests of other packages use it to
exercise indexing and search code paths without the 470 MB model.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tokenizers import normalizers
from transformers import BertConfig, BertModel

from embeddings.st_build import (
    BOS,
    E5_PROMPTS,
    EOS,
    MASK,
    METASPACE,
    PAD,
    UNK,
    build_unigram_tokenizer,
    write_sentence_transformer_dir,
)

TINY_SEED = 20240601
TINY_HIDDEN_SIZE = 32
TINY_MAX_POSITIONS = 512

# Word and character inventory for the vocabulary; small but covering each script we serve.
_SAMPLE_TEXT = """
query: passage: How do I reset my password? The VPN client needs the new certificate.
Employees can request annual leave through the HR portal. Expense reports are approved by managers.
Search the knowledge base for onboarding guides, security policies and travel rules.
如何重置密码？请在人事系统中申请年假。报销流程需要经理审批。公司知识库包含安全政策和入职指南。
パスワードをリセットする方法を教えてください。有給休暇は人事ポータルから申請できます。経費精算は上司が承認します。
비밀번호를 재설정하는 방법은 무엇입니까? 연차 휴가는 인사 포털에서 신청할 수 있습니다. 경비 보고서는 관리자가 승인합니다.
Das Passwort kann im Portal zurückgesetzt werden. Пароль можно сбросить на портале.
"""
_ALWAYS_PRESENT = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    ".,:;!?'\"()[]{}<>-_/\\@#$%&*+=~`|^"
    "，。、？！：；「」『』（）・ー"
)


def tiny_vocabulary() -> list[tuple[str, float]]:
    """Deterministic Unigram vocabulary: specials, then pieces scored by log relative frequency."""
    counts: Counter[str] = Counter()
    text = unicodedata.normalize("NFKC", _SAMPLE_TEXT)
    for word in text.split():
        counts[METASPACE + word] += 1
        counts.update(word)
        # Scripts without spaces get character pairs so they form multi-character pieces too.
        counts.update(word[i : i + 2] for i in range(len(word) - 1) if not word[i : i + 2].isascii())
    counts.update(_ALWAYS_PRESENT)
    counts[METASPACE] += len(text.split())
    total = sum(counts.values())
    pieces = sorted(counts, key=lambda piece: (-counts[piece], piece))
    scored = [(piece, math.log(counts[piece] / total)) for piece in pieces]
    # XLM-R's special ids (<s>=0, <pad>=1, </s>=2, <unk>=3), <mask> last.
    return [(BOS, 0.0), (PAD, 0.0), (EOS, 0.0), (UNK, 0.0)] + scored + [(MASK, 0.0)]


def tiny_config(vocab_size: int, hidden_size: int = TINY_HIDDEN_SIZE) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=TINY_MAX_POSITIONS,
        type_vocab_size=2,
        pad_token_id=1,
    )


def tiny_state_dict(config: BertConfig, seed: int = TINY_SEED) -> dict[str, torch.Tensor]:
    """Seeded weights drawn with numpy, independent of torch's global RNG and init code."""
    rng = np.random.default_rng(seed)
    with torch.device("meta"):
        shapes = {name: tuple(t.shape) for name, t in BertModel(config, add_pooling_layer=False).state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if "LayerNorm.weight" in name:
            values = np.ones(shape, dtype=np.float32)
        elif name.endswith("bias") or "LayerNorm" in name:
            values = np.zeros(shape, dtype=np.float32)
        else:
            values = rng.normal(0.0, config.initializer_range * 5, size=shape).astype(np.float32)
        state[name] = torch.from_numpy(values)
    return state


def build_tiny_model_dir(target_dir: Path, *, seed: int = TINY_SEED, hidden_size: int = TINY_HIDDEN_SIZE) -> Path:
    """Build the tiny model into `target_dir` (replacing it if present) and return the path.

    Another ``seed`` or ``hidden_size`` gives a second model (other weights, or another dimension)
    for tests of model changes."""
    vocabulary = tiny_vocabulary()
    unk_id = [piece for piece, _ in vocabulary].index(UNK)
    tokenizer = build_unigram_tokenizer(vocabulary, normalizers.NFKC(), unk_id=unk_id, max_length=TINY_MAX_POSITIONS)
    config = tiny_config(len(vocabulary), hidden_size)
    return write_sentence_transformer_dir(
        Path(target_dir),
        config=config,
        state_dict=tiny_state_dict(config, seed),
        tokenizer=tokenizer,
        max_seq_length=TINY_MAX_POSITIONS,
        prompts={"query": E5_PROMPTS["query"], "document": E5_PROMPTS["passage"]},
        build_info={"model": "kbsearch-tiny", "seed": seed, "hidden_size": hidden_size},
    )
