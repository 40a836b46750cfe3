"""Linear layers with weights prepacked for oneDNN, in float32 or bfloat16 (CPU inference only).

Nearly all of an e5 encoder's time goes to its linear layers (72 matrix products in e5-small).
PyTorch hands a float32 ``nn.Linear`` to MKL's sgemm, which on the project's AMD EPYC runs at less
than half the speed of oneDNN's kernel for the same product, and a bfloat16 product under autocast
re-casts every float32 weight on every call. Packing each weight once, in the layout and type
oneDNN's kernel reads (the ``mkldnn`` ops PyTorch's own compiler uses), measured on this machine
(bench/bench_encoder.py, docs/benchmarks.md): float32 products 2.2-2.4x faster (same results to
float32 rounding), bfloat16 1.2-1.5x faster than autocast.

``PackedLinear`` returns float32 whatever it computes in, so everything between the products
(LayerNorm, softmax, GELU, residual sums) stays float32, as autocast keeps it.

Packing needs PyTorch built with oneDNN and, for bfloat16, a CPU oneDNN can run bfloat16 on
(AVX-512 or newer); where it cannot, ``pack_linear_layers`` packs nothing and the caller keeps
plain layers (under autocast for bfloat16: correct, slower).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

# The row count oneDNN tunes the packed layout for; any other row count works too.
_PACKING_ROWS_HINT = 32


class PackedLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` prepacked for oneDNN in ``dtype``; float32 out."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype) -> None:
        super().__init__()
        self.compute_dtype = dtype
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach().to(dtype).contiguous()
        self.register_buffer("packed_weight", torch.ops.mkldnn._reorder_linear_weight(weight, _PACKING_ROWS_HINT))
        bias = None if linear.bias is None else linear.bias.detach().to(dtype).contiguous()
        self.register_buffer("bias", bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        rows = inputs.reshape(-1, self.in_features).to(self.compute_dtype)
        output = torch.ops.mkldnn._linear_pointwise(rows, self.packed_weight, self.bias, "none", [], "")
        return output.to(torch.float32).reshape(*inputs.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.compute_dtype}"


def packing_supported(dtype: torch.dtype) -> bool:
    """Whether this PyTorch and CPU can pack and run a ``dtype`` linear layer (tried, not guessed)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        probe = PackedLinear(nn.Linear(8, 8), dtype)
        with torch.inference_mode():
            probe(torch.ones(2, 8))
    except (RuntimeError, AttributeError) as error:  # a CPU without the instructions, or no such op
        logger.info("oneDNN cannot run %s linear layers here (%s): plain layers are used", dtype, error)
        return False
    return True


def pack_linear_layers(model: nn.Module, dtype: torch.dtype) -> list[tuple[nn.Module, str, nn.Linear]]:
    """Replace every ``nn.Linear`` inside ``model`` by a ``PackedLinear`` computing in ``dtype``.

    Returns what was replaced (parent, attribute, original layer), for ``unpack_linear_layers``; an
    empty list when this machine cannot pack (the model is then unchanged).
    """
    if not packing_supported(dtype):
        return []
    replaced = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, PackedLinear(child, dtype))
                replaced.append((parent, name, child))
    return replaced


def unpack_linear_layers(replaced: list[tuple[nn.Module, str, nn.Linear]]) -> None:
    """Put the original layers back (undoes ``pack_linear_layers``)."""
    for parent, name, original in replaced:
        setattr(parent, name, original)
