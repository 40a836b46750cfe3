"""Sample-weighted in-batch contrastive losses for ``embeddings.training``.

sentence-transformers' MultipleNegativesRankingLoss and its cached (GradCache) variant average the
per-row losses equally and ignore the labels the collator hands them. Here the label column holds
each pair's weight, and the batch loss is the weighted mean of the rows' losses: a row of weight 2
pulls as hard as two copies of it would, without the duplicate becoming its own in-batch negative.

Only the forward direction is used (each query against every passage of the batch: positives,
hard negatives, other rows' passages), which is the library's default and what e5 was trained with.
"""
from __future__ import annotations

import torch
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from torch import Tensor


def weighted_info_nce(scores: Tensor, weights: Tensor | None, first_row: int = 0) -> Tensor:
    """Weighted cross-entropy of each row against its own positive (column ``first_row + row``).

    ``scores`` are the scaled similarities of some queries (rows) to every passage of the batch,
    positives first in batch order. With ``weights`` None every row counts the same.
    """
    rows = torch.arange(scores.size(0), device=scores.device)
    per_row = torch.logsumexp(scores, dim=1) - scores[rows, rows + first_row]
    if weights is None:
        return per_row.mean()
    return (per_row * weights).sum() / weights.sum()


def _weights(labels: Tensor | None, device) -> Tensor | None:
    if labels is None:
        return None
    return labels.to(device=device, dtype=torch.float32)


class WeightedMultipleNegativesRankingLoss(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss with the label column as per-row weights."""

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        queries, passages = embeddings[0], torch.cat(embeddings[1:], dim=0)
        scores = self.similarity_fct(queries, passages) * self.scale
        return weighted_info_nce(scores, _weights(labels, queries.device))


class WeightedCachedMultipleNegativesRankingLoss(CachedMultipleNegativesRankingLoss):
    """The GradCache variant with per-row weights: rows are scored in mini-batches, and each
    mini-batch contributes its share of the weighted mean (so the gradients equal the uncached ones)."""

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        queries = torch.cat(reps[0])
        passages = torch.cat([torch.cat(column) for column in reps[1:]], dim=0)
        weights = _weights(labels, queries.device)
        if weights is None:
            weights = torch.ones(len(queries), device=queries.device)
        total = weights.sum()
        parts = []
        for begin in range(0, len(queries), self.mini_batch_size):
            end = min(begin + self.mini_batch_size, len(queries))
            scores = self.similarity_fct(queries[begin:end], passages) * self.scale
            # The weighted mean of this slice, rescaled to its share of the whole batch's weight.
            part = weighted_info_nce(scores, weights[begin:end], first_row=begin) * (weights[begin:end].sum() / total)
            if with_backward:
                part.backward()
                part = part.detach()
            parts.append(part)
        return sum(parts)


def weighted_loss(model, *, cached: bool, scale: float, mini_batch_size: int):
    if cached:
        return WeightedCachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=mini_batch_size)
    return WeightedMultipleNegativesRankingLoss(model, scale=scale)
