"""Losses of CLIPSep, CLIPSep-NIT and the PIT baseline (Dong et al., ICLR 2023).

Weighting convention (the released code's `BCELoss`, i.e. `F.binary_cross_entropy(pred,
target, weight=weight)`): the per-bin loss is multiplied by the weight and averaged over
bins, mean(w * l), not normalised by sum(w). Losses are computed per (item, source) so
permutation-invariant variants can choose per item; sources are averaged, then items.

Shapes: B items, S sources (2), H noise heads (2), F log-frequency bins, T frames.
`targets` are (B, S, F, T) binary masks and `weight` is (B, F, T) (see `targets`).

`negative_query_loss` is not from the paper: the query mask of a class absent from the
mixture is scored against silence, so a query for a sound that is not there selects nothing.
"""

from __future__ import annotations

from itertools import permutations
from typing import NamedTuple

import torch
from torch.nn import functional as F

PROB_EPS = 1e-7  # probabilities are clamped to [eps, 1 - eps] before the log of the BCE
DEFAULT_GAMMA = 0.25
DEFAULT_REG_WEIGHT = 0.1


def _per_bin_mean(loss: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, S, F, T) per-bin loss, (B, F, T) weight -> (B, S) mean(w * l) over bins."""
    return (loss * weight.unsqueeze(1)).mean(dim=(-2, -1))


def weighted_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, S, F, T) logits and targets, (B, F, T) weight -> (B, S) weighted BCE per source."""
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return _per_bin_mean(loss, weight)


def weighted_bce(probs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, S, F, T) probabilities and targets, (B, F, T) weight -> (B, S) weighted BCE.

    Probabilities are clamped to [1e-7, 1 - 1e-7], so saturated masks give finite losses.
    """
    p = probs.clamp(PROB_EPS, 1.0 - PROB_EPS)
    loss = -(targets * torch.log(p) + (1.0 - targets) * torch.log1p(-p))
    return _per_bin_mean(loss, weight)


def clipsep_loss(query_logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CLIPSep: weighted BCE between sigmoid(query logits of source i) and mask i.

    query_logits: (B, S, F, T), the query of source i in slot i (see `baselines.source_logits`).
    Returns a scalar: mean over items and sources.
    """
    return weighted_bce_with_logits(query_logits, targets, weight).mean()


def noise_assignments(num_sources: int = 2, num_heads: int = 2) -> list[tuple[int, ...]]:
    """Assignments of noise heads to sources: entry a[i] is the head used by source i.

    For 2 sources and 2 heads: [(0, 1), (1, 0)]; index 0 is the identity, 1 the swap.
    """
    if num_heads < num_sources:
        raise ValueError(f"need at least as many noise heads ({num_heads}) as sources ({num_sources})")
    return list(permutations(range(num_heads), num_sources))


def noise_regulariser(noise_probs: torch.Tensor, gamma: float = DEFAULT_GAMMA) -> torch.Tensor:
    """relu(mean(noise masks) - gamma): zero while the mean activation is below gamma.

    noise_probs: noise-mask probabilities of any shape (e.g. (B, S, H, F, T)) -> scalar.
    """
    return F.relu(noise_probs.mean() - gamma)


def negative_query_loss(logits: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, F, T) query-mask logits of an absent class, (B, F, T) weight -> scalar weighted BCE
    against an all-zero mask (the same weighting as the separation loss)."""
    loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (loss * weight).mean()


class NITLoss(NamedTuple):
    loss: torch.Tensor  # scalar: separation loss + reg_weight * regulariser
    assignment: torch.Tensor  # (B,) long: index into noise_assignments(S, H) chosen per item
    noise_activation: torch.Tensor  # scalar: mean noise-mask probability (detached)


def nit_loss(
    query_logits: torch.Tensor,
    noise_logits: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    gamma: float = DEFAULT_GAMMA,
    reg_weight: float = DEFAULT_REG_WEIGHT,
) -> NITLoss:
    """CLIPSep-NIT noise-invariant training loss.

    query_logits: (B, S, F, T), q_i for source i; noise_logits: (B, S, H, F, T), the H
    noise heads n_i1..n_iH of the query of source i; targets (B, S, F, T); weight (B, F, T).

    For each assignment a of noise heads to sources (`noise_assignments`; for two sources,
    source 1 <- head 1 and source 2 <- head 2, or swapped), the predicted mask of source i
    is clamp(sigmoid(q_i) + sigmoid(n_{i, a[i]}), 0, 1), the paper's combination of the
    query mask with one noise mask. Choice made here: the combination is done on
    probabilities (not logits) and scored with a BCE on probabilities clamped to
    [1e-7, 1 - 1e-7] (`weighted_bce`). The weighted BCE is averaged over sources, the
    assignment with the lower loss is kept per item (permutation-invariant), and items
    are averaged.

    The regulariser relu(mean(all noise masks) - gamma) (gamma = 0.25 by default) keeps the
    noise heads from explaining everything. Its weight `reg_weight` defaults to 0.1: a
    choice made here, not a value taken from the released code.
    """
    sources = query_logits.shape[1]
    heads = noise_logits.shape[2]
    query_probs = torch.sigmoid(query_logits)
    noise_probs = torch.sigmoid(noise_logits)
    source_index = torch.arange(sources, device=query_logits.device)
    per_assignment = []
    for assignment in noise_assignments(sources, heads):
        head_index = torch.tensor(assignment, device=query_logits.device)
        assigned = noise_probs[:, source_index, head_index]  # (B, S, F, T)
        combined = (query_probs + assigned).clamp(0.0, 1.0)
        per_assignment.append(weighted_bce(combined, targets, weight).mean(dim=1))  # (B,)
    losses = torch.stack(per_assignment, dim=1)  # (B, A)
    best, chosen = losses.min(dim=1)
    regulariser = noise_regulariser(noise_probs, gamma)
    loss = best.mean() + reg_weight * regulariser
    return NITLoss(loss, chosen, noise_probs.mean().detach())


class PITLoss(NamedTuple):
    loss: torch.Tensor  # scalar
    assignment: torch.Tensor  # (B,) long: index into permutations(range(S)) chosen per item


def pit_loss(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> PITLoss:
    """Permutation-invariant weighted BCE of the query-free PIT baseline.

    logits: (B, K, F, T) the K (= S = 2) outputs; targets (B, S, F, T); weight (B, F, T).
    For each permutation p, output p[i] is scored against source i (weighted BCE with
    logits, averaged over sources); the lowest is kept per item, then items are averaged.
    Assignment 0 is the identity, 1 the swap (for two sources).
    """
    sources = targets.shape[1]
    per_perm = [
        weighted_bce_with_logits(logits[:, list(perm)], targets, weight).mean(dim=1)
        for perm in permutations(range(logits.shape[1]), sources)
    ]
    best, chosen = torch.stack(per_perm, dim=1).min(dim=1)
    return PITLoss(best.mean(), chosen)
