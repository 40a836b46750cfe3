"""A lean forward pass for one query: a BERT-family encoder with mean pooling in ~90 operations.

A search encodes one short query at a time. Through transformers' ``BertModel`` and
sentence-transformers' module chain that is ~300 Python module calls and ~200 tensor operations
for 10-30 tokens, and on a CPU most of a query's time went to that overhead rather than to the
arithmetic (docs/benchmarks.md, "Query encoding"). ``QueryForward`` runs the same mathematics
directly on the model's weights for one unpadded sequence, so nothing needs masking:

- query, key and value are one product (their weights concatenated), prepacked for oneDNN;
- the feed-forward's GELU is fused into its first product (oneDNN post-op);
- LayerNorm and the residual stream stay float32, as under autocast; in bfloat16 the attention reads
  the bfloat16 products (its kernel accumulates in float32).

It is built only for what it implements (``QueryForward.build`` returns None otherwise: another
architecture, pooling, activation or position scheme) and is checked against the model's own
forward on the probe texts when the encoder loads; a model it disagrees with keeps the ordinary
path. Batches (passages, evaluation) keep the ordinary path, where padding makes one product per
layer pay off.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from embeddings.packed_linear import packing_supported

logger = logging.getLogger(__name__)

# Architectures whose layers this module mirrors, with their first position id: RoBERTa-style
# models (the hub's multilingual-e5) count positions from the padding id + 1, BERT from 0.
_POSITION_OFFSET = {"BertModel": lambda config: 0, "XLMRobertaModel": lambda config: config.pad_token_id + 1}
_PACKING_ROWS_HINT = 32
# The lowest cosine to the model's own forward (same precision) accepted on the probe texts: the
# two differ only in rounding (GELU's output rounded to bfloat16 once instead of after float32).
MIN_AGREEMENT = 0.99995


class _Layer:
    __slots__ = ("qkv", "qkv_bias", "out", "out_bias", "norm1", "up", "up_bias", "down", "down_bias", "norm2")


class QueryForward:
    """Mean-pooled (not normalised) float32 vector of one token-id sequence."""

    def __init__(self, transformer: nn.Module, dtype: torch.dtype) -> None:
        config = transformer.config
        self.dtype = dtype
        self.heads = config.num_attention_heads
        self.hidden = config.hidden_size
        self.head_size = self.hidden // self.heads
        self.eps = config.layer_norm_eps
        embeddings = transformer.embeddings
        self.position_offset = _POSITION_OFFSET[type(transformer).__name__](config)
        # Shared with the model (no copy): the 250k-row table is most of its memory.
        self.word_embeddings = embeddings.word_embeddings.weight.detach()
        self.position_embeddings = embeddings.position_embeddings.weight.detach()
        self.token_type_zero = embeddings.token_type_embeddings.weight.detach()[0]
        self.embedding_norm = _norm(embeddings.LayerNorm)
        self.layers = [self._pack_layer(layer) for layer in transformer.encoder.layer]

    @classmethod
    def build(cls, st_model: nn.Module, dtype: torch.dtype) -> QueryForward | None:
        """The lean forward for ``st_model`` (a SentenceTransformer), or None where it does not apply."""
        reason = _unsupported(st_model, dtype)
        if reason:
            logger.info("queries take the model's own forward: %s", reason)
            return None
        return cls(st_model[0].auto_model, dtype)

    def _pack_layer(self, layer: nn.Module) -> _Layer:
        attention = layer.attention
        packed = _Layer()
        projections = (attention.self.query, attention.self.key, attention.self.value)
        packed.qkv = self._pack(torch.cat([p.weight.detach() for p in projections]))
        packed.qkv_bias = torch.cat([p.bias.detach() for p in projections]).to(self.dtype)
        packed.out, packed.out_bias = self._pack_linear(attention.output.dense)
        packed.norm1 = _norm(attention.output.LayerNorm)
        packed.up, packed.up_bias = self._pack_linear(layer.intermediate.dense)
        packed.down, packed.down_bias = self._pack_linear(layer.output.dense)
        packed.norm2 = _norm(layer.output.LayerNorm)
        return packed

    def _pack(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._reorder_linear_weight(weight.to(self.dtype).contiguous(), _PACKING_ROWS_HINT)

    def _pack_linear(self, linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        return self._pack(linear.weight.detach()), linear.bias.detach().to(self.dtype).contiguous()

    def __call__(self, token_ids: Sequence[int]) -> torch.Tensor:
        if len(token_ids) + self.position_offset > self.position_embeddings.shape[0]:
            raise ValueError(f"{len(token_ids)} tokens exceed the model's positions")
        ids = torch.tensor(token_ids, dtype=torch.long)
        length = ids.shape[0]
        start = self.position_offset
        hidden = self.word_embeddings[ids] + self.position_embeddings[start : start + length] + self.token_type_zero
        hidden = F.layer_norm(hidden, (self.hidden,), *self.embedding_norm, self.eps)
        linear = torch.ops.mkldnn._linear_pointwise
        scale = 1.0 / math.sqrt(self.head_size)
        for layer in self.layers:
            qkv = linear(hidden.to(self.dtype), layer.qkv, layer.qkv_bias, "none", [], "")
            # (1, heads, tokens, head size) each: the 4-d layout SDPA's fused CPU kernel takes. It
            # accumulates in float32 whatever it reads, so attention runs on the product's dtype.
            query, key, value = qkv.view(1, length, 3, self.heads, self.head_size).permute(2, 0, 3, 1, 4)
            context = F.scaled_dot_product_attention(query, key, value, scale=scale)
            context = context.transpose(1, 2).reshape(length, self.hidden)
            attended = linear(context, layer.out, layer.out_bias, "none", [], "")
            hidden = F.layer_norm(attended.float() + hidden, (self.hidden,), *layer.norm1, self.eps)
            # GELU (erf) fused into the product; its output feeds the next product as is.
            activated = linear(hidden.to(self.dtype), layer.up, layer.up_bias, "gelu", [], "none")
            projected = linear(activated, layer.down, layer.down_bias, "none", [], "")
            hidden = F.layer_norm(projected.float() + hidden, (self.hidden,), *layer.norm2, self.eps)
        return hidden.mean(dim=0)


def _norm(layer_norm: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor]:
    return layer_norm.weight.detach(), layer_norm.bias.detach()


def _unsupported(st_model: nn.Module, dtype: torch.dtype) -> str | None:
    """Why the lean forward cannot stand in for ``st_model``'s, or None when it can."""
    modules = list(st_model)
    names = [type(module).__name__ for module in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"module chain {names}"
    transformer = getattr(modules[0], "auto_model", None)
    if type(transformer).__name__ not in _POSITION_OFFSET:
        return f"architecture {type(transformer).__name__}"
    config = transformer.config
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return f"position embeddings {config.position_embedding_type}"
    if config.hidden_act != "gelu" or getattr(config, "is_decoder", False):
        return f"activation {config.hidden_act}"
    if getattr(modules[1], "pooling_mode", None) != "mean" or not getattr(modules[1], "include_prompt", True):
        return "pooling other than the mean of every token"
    if dtype not in (torch.float32, torch.bfloat16):
        return f"dtype {dtype}"
    if not packing_supported(dtype):
        return f"oneDNN cannot run {dtype} products here"
    return None
