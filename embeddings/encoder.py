"""Batch text encoder for e5-style models (`query: ` / `passage: ` prompts) on CPU.

Wraps a sentence-transformers model but runs its own batching loop: texts are tokenized once,
sorted by token count (sentence-transformers sorts by character count, a poor proxy when Chinese,
Japanese, Korean and English text are mixed), padded per batch only to the batch's longest text and
pushed through the model's modules under `torch.inference_mode`.

`index_metadata` says which model made the vectors, so the index can refuse to mix two models
(`kbsearch.index.base.IndexMetadata`). Its `model_version` is a fingerprint of the loaded weights
and tokenizer rather than of files, so it works the same for a local directory and a hub id; its
`precision` is the arithmetic the vectors come from (`embeddings.precision`: float32, bfloat16, or
`auto`, resolved once at load). The linear layers are prepacked for oneDNN in that precision
(`embeddings.packed_linear`). A single query takes a lean forward pass where the model allows one
(`embeddings.query_forward`, checked against the model's own at load). Query vectors can be cached
per process (`embeddings.query_cache`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from embeddings.packed_linear import pack_linear_layers, unpack_linear_layers
from embeddings.precision import BFLOAT16, PROBE_TEXTS, PrecisionChoice, check_precision_setting, precision_choose
from embeddings.query_cache import QueryVectorCache
from embeddings.query_forward import MIN_AGREEMENT, QueryForward
from kbsearch.index.base import IndexMetadata
from kbsearch.text.analysis import ANALYZER_VERSION

logger = logging.getLogger(__name__)

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
_SPECIAL_TOKENS_PER_TEXT = 2  # <s> ... </s>
# Values read from each end of every weight tensor for the fingerprint: fine-tuning moves every
# weight, so a few of each tensor tell two versions apart without hashing 470 MB.
_FINGERPRINT_VALUES = 256

_threads_configured_in: int | None = None  # the process id that set the thread count
_threads_lock = threading.Lock()


def configure_torch_threads(threads: int | None = None) -> int:
    """Set this process's intra-op thread count; returns the count in force.

    ``threads`` given: that many (gunicorn gives each web worker its share of the cores, so two
    workers do not run four threads on two cores). Otherwise once per process: the operator's
    OMP_NUM_THREADS if set (PyTorch read it), else one thread per usable CPU.
    """
    global _threads_configured_in
    with _threads_lock:
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        elif _threads_configured_in != os.getpid() and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
        _threads_configured_in = os.getpid()
        return torch.get_num_threads()


@contextmanager
def torch_single_threaded() -> Iterator[None]:
    """Run PyTorch on one thread inside the block (then restore the configured count).

    For a process that forks afterwards (gunicorn's master loading the model before its workers
    fork): a fork after a multi-threaded OpenMP region leaves the child's OpenMP pool hanging at its
    first parallel product, while single-threaded work never starts that pool.
    """
    configure_torch_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Encoder:
    """Embeds queries and passages as float32, L2-normalised rows of shape (n, dimension).

    ``precision``: ``float32``, ``bfloat16`` or ``auto`` (``embeddings.precision``), resolved once
    here; ``precision`` then holds what is used and ``precision_choice`` why. ``query_cache``: a
    ``QueryVectorCache`` that ``encode_queries`` reads and fills (None: no caching).
    """

    def __init__(
        self,
        model_path_or_id: str,
        *,
        model_id: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        max_seq_length: int = 512,
        precision: str = "float32",
        query_cache: QueryVectorCache | None = None,
    ) -> None:
        check_precision_setting(precision)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_seq_length < _SPECIAL_TOKENS_PER_TEXT + 1:
            raise ValueError(f"max_seq_length must be >= 3, got {max_seq_length}")
        from sentence_transformers import SentenceTransformer

        configure_torch_threads()
        self.model_name = str(model_path_or_id)
        # What the index records as the model: the spec as configured (``get_encoder`` passes it),
        # so moving the model cache does not look like another model.
        self.model_id = model_id or self.model_name
        self.batch_size = batch_size
        self._device = torch.device(device)
        self._model = SentenceTransformer(
            self.model_name, device=device, model_kwargs=model_kwargs_for(self.model_name)
        )
        self._model.eval()
        self._tokenizer = self._model.tokenizer
        if self._tokenizer is None or not getattr(self._tokenizer, "is_fast", False):
            raise ValueError(f"model {self.model_name!r} has no fast (Rust) tokenizer")
        # A private copy for counting: the wrapper switches truncation on its backend per call.
        self._counting_tokenizer = _copy_without_truncation(self._tokenizer.backend_tokenizer)
        self.max_seq_length = min(max_seq_length, _model_length_limit(self._model))
        self._model.max_seq_length = self.max_seq_length
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise ValueError(f"model {self.model_name!r} does not report an embedding dimension")
        self.dimension = int(dimension)
        self._pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        self._wants_token_types = "token_type_ids" in self._tokenizer.model_input_names
        # One forward at a time: parallel forwards would only fight over the same cores.
        self._forward_lock = threading.Lock()
        # Of the weights as loaded (float32), before packing replaces the linear layers.
        self.model_version = self._fingerprint()
        self._autocast_dtype: torch.dtype | None = None
        self.precision_choice: PrecisionChoice = precision_choose(precision, probe_cosine=self._probe_bfloat16_cosine)
        self.precision = self.precision_choice.precision
        compute_dtype = torch.bfloat16 if self.precision == BFLOAT16 else torch.float32
        # Built from the plain linear layers, before packing replaces them; checked after.
        self._query_forward = QueryForward.build(self._model, compute_dtype)
        self._packed_layers = len(self._use_precision(self.precision))
        self._query_forward = self._checked_query_forward(self._query_forward)
        # bfloat16 without the CPU's support is correct but slow: an operator should notice.
        emulated = self.precision == BFLOAT16 and not self.precision_choice.native_bf16
        logger.log(
            logging.WARNING if emulated else logging.INFO,
            "encoder %s computes in %s (%d linear layers prepacked for oneDNN)",
            self.model_id, self.precision_choice.describe(), self._packed_layers,
        )
        self._query_cache = query_cache
        self._cache_identity = (self.model_id, self.model_version, self.precision)

    @cached_property
    def index_metadata(self) -> IndexMetadata:
        """What an index built with this encoder records."""
        return IndexMetadata(
            model_id=self.model_id,
            model_version=self.model_version,
            dimension=self.dimension,
            analyzer_version=ANALYZER_VERSION,
            precision=self.precision,
        )

    def _use_precision(self, precision: str) -> list:
        """Pack the linear layers for ``precision``; returns what ``unpack_linear_layers`` undoes.

        Where oneDNN cannot run bfloat16 here, the plain layers run under autocast instead (the
        same arithmetic for the products, slower: each weight is cast on every call)."""
        dtype = torch.bfloat16 if precision == BFLOAT16 else torch.float32
        replaced = pack_linear_layers(self._model, dtype)
        self._autocast_dtype = dtype if dtype is torch.bfloat16 and not replaced else None
        return replaced

    def _probe_bfloat16_cosine(self) -> float:
        """Lowest cosine between this model's float32 and bfloat16 vectors of the probe texts."""
        batches = [self._token_ids(PROBE_TEXTS, prefix) for prefix in (QUERY_PREFIX, PASSAGE_PREFIX)]
        reference = [self._embed(token_ids) for token_ids in batches]
        replaced = self._use_precision(BFLOAT16)
        try:
            candidate = [self._embed(token_ids) for token_ids in batches]
        finally:
            unpack_linear_layers(replaced)
            self._autocast_dtype = None
        return float(min(np.min(np.sum(ref * cand, axis=1)) for ref, cand in zip(reference, candidate)))

    def _checked_query_forward(self, query_forward: QueryForward | None) -> QueryForward | None:
        """``query_forward`` if it agrees with the model's own forward on every probe query."""
        if query_forward is None:
            return None
        queries = self._token_ids(PROBE_TEXTS, QUERY_PREFIX)
        reference = self._embed(queries)
        lean = self._embed_one_by_one(queries, query_forward)
        agreement = float(np.min(np.sum(reference * lean, axis=1)))
        if agreement < MIN_AGREEMENT:
            logger.warning("the lean query forward disagrees with the model's (cosine %.6f): not used", agreement)
            return None
        logger.info("queries take the lean forward (cosine %.6f to the model's own)", agreement)
        return query_forward

    def _embed_queries(self, token_ids: list[list[int]]) -> np.ndarray:
        """A single query through the lean forward where there is one; batches as passages go."""
        if self._query_forward is not None and len(token_ids) == 1:
            return self._embed_one_by_one(token_ids, self._query_forward)
        return self._embed(token_ids)

    def _embed_one_by_one(self, token_ids: list[list[int]], query_forward: QueryForward) -> np.ndarray:
        embeddings = np.empty((len(token_ids), self.dimension), dtype=np.float32)
        with self._forward_lock, torch.inference_mode():
            for row, ids in enumerate(token_ids):
                embeddings[row] = query_forward(ids).numpy()
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        embeddings /= np.maximum(norms, 1e-12)
        return embeddings

    def _fingerprint(self) -> str:
        """A short hash of what decides the vectors: every weight tensor's name, shape and values at
        both ends, the tokenizer, and the sequence length (longer texts are cut there)."""
        digest = hashlib.sha256()
        digest.update(f"max_seq_length={self.max_seq_length}\n".encode())
        # The private copy: the wrapper's own backend carries the truncation of its last call.
        digest.update(self._counting_tokenizer.to_str().encode("utf-8"))
        with torch.inference_mode():
            for name, tensor in sorted(self._model.state_dict().items()):
                flat = tensor.detach().reshape(-1)
                ends = torch.cat([flat[:_FINGERPRINT_VALUES], flat[-_FINGERPRINT_VALUES:]])
                digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
                digest.update(ends.to(device="cpu", dtype=torch.float32).numpy().tobytes())
        return digest.hexdigest()[:16]

    @property
    def lean_queries(self) -> bool:
        """Whether single queries take ``embeddings.query_forward`` (else the model's own forward)."""
        return self._query_forward is not None

    @property
    def max_passage_tokens(self) -> int:
        """Most text tokens (as counted by `count_tokens`) a passage may have without truncation."""
        prefix_tokens = self.count_tokens(PASSAGE_PREFIX.strip())
        return self.max_seq_length - _SPECIAL_TOKENS_PER_TEXT - prefix_tokens

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors, from the query cache where it holds them (same model, precision, tokens)."""
        token_ids = self._token_ids(self._checked(texts), QUERY_PREFIX)
        if self._query_cache is None or self._query_cache.max_entries == 0:
            return self._embed_queries(token_ids)
        keys = [(self._cache_identity, tuple(ids)) for ids in token_ids]
        embeddings = np.empty((len(keys), self.dimension), dtype=np.float32)
        missing = []
        for row, key in enumerate(keys):
            cached = self._query_cache.get(key)
            if cached is None:
                missing.append(row)
            else:
                embeddings[row] = cached
        if missing:
            embeddings[missing] = self._embed_queries([token_ids[row] for row in missing])
            for row in missing:
                self._query_cache.put(keys[row], embeddings[row])
        return embeddings

    def encode_queries_as_searched(self, texts: Sequence[str]) -> np.ndarray:
        """Each query alone, as a search encodes it (the lean forward where there is one), uncached:
        what evaluation measures, so its figures are those of the search path."""
        token_ids = self._token_ids(self._checked(texts), QUERY_PREFIX)
        if self._query_forward is None:
            return self._embed(token_ids)
        return self._embed_one_by_one(token_ids, self._query_forward)

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, PASSAGE_PREFIX)

    def count_tokens(self, text: str) -> int:
        """Model tokens of `text` alone: no prompt prefix, no special tokens, no truncation."""
        _check_text(text, "text")
        # The Rust tokenizer directly: no truncation, and no "longer than max length" warnings
        # for the long texts a chunker measures.
        return len(self._counting_tokenizer.encode(text, add_special_tokens=False).ids)

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        return self._embed(self._token_ids(self._checked(texts), prefix))

    @staticmethod
    def _checked(texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise TypeError("expected a list of strings, got a single str")
        texts = list(texts)
        for position, text in enumerate(texts):
            _check_text(text, f"texts[{position}]")
        return texts

    def _token_ids(self, texts: Sequence[str], prefix: str) -> list[list[int]]:
        if not texts:
            return []
        return self._tokenizer(
            [prefix + text for text in texts],
            truncation=True,
            max_length=self.max_seq_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]

    def _embed(self, token_ids: list[list[int]]) -> np.ndarray:
        """Vectors of tokenized texts, in batches of similar lengths."""
        embeddings = np.empty((len(token_ids), self.dimension), dtype=np.float32)
        if not token_ids:
            return embeddings
        # Longest first, so each batch pads to a length close to all of its members.
        order = np.argsort([-len(ids) for ids in token_ids], kind="stable")
        autocast = torch.autocast(
            self._device.type, dtype=self._autocast_dtype, enabled=self._autocast_dtype is not None
        )
        with self._forward_lock, torch.inference_mode(), autocast:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                features = self._batch_features([token_ids[row] for row in rows])
                output = self._model(features)["sentence_embedding"]
                embeddings[rows] = output.to(dtype=torch.float32, device="cpu").numpy()
        # Hub models without a Normalize module still get unit vectors.
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        embeddings /= np.maximum(norms, 1e-12)
        return embeddings

    def _batch_features(self, batch: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        features = {
            "input_ids": torch.from_numpy(input_ids).to(self._device),
            "attention_mask": torch.from_numpy(attention_mask).to(self._device),
        }
        if self._wants_token_types:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        return features


def _check_text(text: object, label: str) -> None:
    """Reject what the Rust tokenizer would fail on with an obscure message."""
    if not isinstance(text, str):
        raise TypeError(f"{label} is {type(text).__name__}, not str")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{label} contains an unpaired surrogate at character {error.start}; "
            "decode the source with errors='replace' before embedding"
        ) from None


def _copy_without_truncation(backend):
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    copy.encode_special_tokens = backend.encode_special_tokens
    return copy


def _model_length_limit(model) -> int:
    """The shorter of the tokenizer's and the position table's limits."""
    limits = [model.max_seq_length or 0, getattr(model.tokenizer, "model_max_length", 0) or 0]
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if positions:
        limits.append(int(positions))
    usable = [limit for limit in limits if 0 < limit < 1_000_000]
    return min(usable) if usable else 512


def model_kwargs_for(model_path_or_id: str) -> dict:
    """Skip BERT's pooler when a local checkpoint has none (our converted and tiny models).

    Mean pooling never reads it; without this transformers would build a random one and warn.
    """
    weights = Path(model_path_or_id) / "model.safetensors"
    if not weights.is_file():
        return {}
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        names = list(handle.keys())
    has_pooler = any(name.startswith("pooler.") for name in names)
    is_bert = any(name.startswith("embeddings.word_embeddings") for name in names)
    return {"add_pooling_layer": False} if is_bert and not has_pooler else {}
