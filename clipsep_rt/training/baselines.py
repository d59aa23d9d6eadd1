"""Baselines of the CLIPSep paper and a per-item query forward for training.

- `source_logits`: mix-and-separate gives every item its own queries (one per source);
  this runs the U-Net once and applies (B, S) head vectors, matching `QueryHeads.logits`.
- `LabelSepSeparator`: the CLIPSep separator with the CLIP query replaced by a learned
  nn.Embedding per class label (num_classes, query_dim).
- `PITSeparator`: the same U-Net with no query: two fixed learned query vectors give two
  outputs, trained with `losses.pit_loss` and evaluated with oracle selection.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from clipsep_rt.config import ModelConfig
from clipsep_rt.model.film import film_logits
from clipsep_rt.model.separator import CLIPSepSeparator, MaskLogits

BASELINE_CONFIG = ModelConfig(noise_heads=0)  # LabelSep and PIT default: no noise heads


def source_logits(
    separator: CLIPSepSeparator, log_mag: torch.Tensor, embeddings: torch.Tensor, noise_heads: bool = True
) -> MaskLogits:
    """Per-item queries: (B, 1, F, T) input, (B, S, D) embeddings -> MaskLogits with
    query (B, S, F, T) and noise (B, S, H, F, T) (H = 0 unless asked for and configured).

    Equal to `separator(log_mag[b:b+1], embeddings[b])` item by item, with one U-Net pass.
    """
    if separator.config.film:
        return film_logits(separator, log_mag, embeddings, noise_heads)
    features = separator.features(log_mag)  # (B, C, F, T)
    query_vectors, noise_vectors = separator.heads.item_vectors(embeddings, features.dtype)
    bias = separator.heads.bias.to(features.dtype)
    query = torch.einsum("bcft,bsc->bsft", features, query_vectors) + bias
    if noise_heads and separator.config.noise_heads:
        noise = torch.einsum("bcft,bshc->bshft", features, noise_vectors) + bias
    else:
        noise = features.new_zeros(*embeddings.shape[:2], 0, *features.shape[-2:])
    return MaskLogits(query, noise)


class LabelSepSeparator(nn.Module):
    """LabelSep: CLIPSep separator queried by a learned embedding per class label."""

    def __init__(self, num_classes: int, config: ModelConfig = BASELINE_CONFIG):
        super().__init__()
        self.separator = CLIPSepSeparator(config)
        self.labels = nn.Embedding(num_classes, config.query_dim)

    def forward(self, log_mag: torch.Tensor, labels: torch.Tensor, noise_heads: bool = True) -> MaskLogits:
        """(B, 1, F, T) input, labels (Q,) long shared by the batch -> query (B, Q, F, T),
        or labels (B, S) long, one per item and source -> query (B, S, F, T)."""
        if labels.dim() == 2:
            return source_logits(self.separator, log_mag, self.labels(labels), noise_heads)
        return self.separator(log_mag, self.labels(labels), noise_heads)


class PITSeparator(nn.Module):
    """Query-free U-Net with `outputs` (2) masks from fixed learned query vectors."""

    def __init__(self, config: ModelConfig = BASELINE_CONFIG, outputs: int = 2):
        super().__init__()
        self.separator = CLIPSepSeparator(replace(config, noise_heads=0))
        self.queries = nn.Parameter(torch.randn(outputs, config.query_dim) / math.sqrt(config.query_dim))

    def forward(self, log_mag: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) -> (B, outputs, F, T) mask logits."""
        return self.separator(log_mag, self.queries, noise_heads=False).query
