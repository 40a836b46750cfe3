"""Keeping a fraction of a fine-tuning update: weights = original + fraction x (trained - original).

Fine-tuning on one company's questions moves every layer, and languages or kinds of text the pairs
never show can lose as much as the domain gains (docs/relevance.md: one epoch on Japanese
questions cost Chinese retrieval two points). Interpolating the trained weights with the original
ones ("WiSE-FT", Wortsman et al., 2022) is the cheapest known remedy: the trained model's gain
tends to fall off slower than its losses as the fraction shrinks, and it costs no extra training.

The original is remembered before training as a copy of the weights that can change, so the
frozen token-embedding table (most of a multilingual model's bytes) is never copied. LoRA runs
are remembered before their adapters are added and blended after they are merged, when the
parameter names are the original ones again.
"""
from __future__ import annotations

from pathlib import Path

import torch


class UpdateFraction:
    """Weights before training, to pull the trained ones back toward with ``apply``."""

    def __init__(self, original: dict[str, torch.Tensor], fraction: float) -> None:
        self.fraction = _checked(fraction)
        self.original = original

    @classmethod
    def remember(cls, module: torch.nn.Module, fraction: float) -> UpdateFraction:
        """Copy ``module``'s weights that training can change (none when the whole update is kept)."""
        if _checked(fraction) == 1:
            return cls({}, fraction)
        frozen = {id(parameter) for parameter in _frozen_parameters(module)}
        return cls({name: parameter.detach().clone() for name, parameter in module.named_parameters()
                    if id(parameter) not in frozen}, fraction)

    def apply(self, module: torch.nn.Module) -> int:
        """Blend ``module``'s weights in place; returns how many tensors changed."""
        if self.fraction == 1:
            return 0
        current = dict(module.named_parameters())
        missing = sorted(set(self.original) - set(current))
        if missing:
            # A renamed parameter would silently keep the whole update; better to refuse.
            raise RuntimeError(f"the trained model lacks parameters it had before training: {missing[:3]}")
        changed = 0
        with torch.no_grad():
            for name, original in self.original.items():
                trained = current[name]
                if not torch.equal(trained, original):
                    trained.copy_(original + self.fraction * (trained - original))
                    changed += 1
        return changed


def _checked(fraction: float) -> float:
    if not 0 < fraction <= 1:
        raise ValueError(f"the update fraction must be in (0, 1], got {fraction}")
    return fraction


def _frozen_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters training will not change: those already frozen when training starts."""
    return [parameter for parameter in module.parameters() if not parameter.requires_grad]


def blend_saved_models(*, original_dir: Path, trained_dir: Path, fraction: float, output_dir: Path) -> Path:
    """Save ``original + fraction x (trained - original)`` of two saved models of one architecture.

    For measuring several fractions of one training run without training again.
    """
    from sentence_transformers import SentenceTransformer

    from embeddings.encoder import model_kwargs_for

    original = SentenceTransformer(str(original_dir), device="cpu", model_kwargs=model_kwargs_for(str(original_dir)))
    trained = SentenceTransformer(str(trained_dir), device="cpu", model_kwargs=model_kwargs_for(str(trained_dir)))
    before = dict(original.named_parameters())
    if set(before) != {name for name, _ in trained.named_parameters()}:
        raise ValueError(f"{trained_dir} and {original_dir} do not have the same weights")
    blend = UpdateFraction({name: tensor.detach() for name, tensor in before.items()}, fraction)
    blend.apply(trained)
    trained.save(str(output_dir), create_model_card=False)
    return Path(output_dir)
