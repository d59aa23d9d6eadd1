"""Query-conditioned mask heads of CLIPSep and CLIPSep-NIT (late fusion by inner product).

A query embedding q (D,) is projected to p = W q + b (channels,). The query head's mask
logit at each bin is  sum_c sigmoid(p)[c] * scale[c] * feat[c, f, t] + bias.
CLIPSep-NIT's noise heads project p again (Linear channels -> channels per head) and use
the same inner product. Heads are therefore just (channels,) vectors: compute them once
per query and apply them to U-Net features with one einsum, whatever the query count.
"""

from __future__ import annotations

import torch
from torch import nn

from clipsep_rt.config import ModelConfig


class QueryHeads(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.query_projection = nn.Linear(config.query_dim, config.channels)
        self.noise_projections = nn.ModuleList(
            nn.Linear(config.channels, config.channels) for _ in range(config.noise_heads)
        )
        self.scale = nn.Parameter(torch.ones(config.channels))
        self.bias = nn.Parameter(torch.zeros(1))

    def query_vectors(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(Q, D) query embeddings -> (Q, channels) scaled head vectors."""
        return torch.sigmoid(self.query_projection(embeddings)) * self.scale

    def noise_vectors(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(Q, D) -> (Q, noise_heads, channels) scaled noise-head vectors (per query)."""
        projected = self.query_projection(embeddings)
        heads = [torch.sigmoid(proj(projected)) * self.scale for proj in self.noise_projections]
        if not heads:
            return projected.new_zeros(embeddings.shape[0], 0, projected.shape[-1])
        return torch.stack(heads, dim=1)

    def item_vectors(self, embeddings: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-item queries (B, S, D) -> query vectors (B, S, C) and noise vectors (B, S, H, C) in `dtype`."""
        batch, sources = embeddings.shape[:2]
        flat = embeddings.reshape(batch * sources, -1)
        query = self.query_vectors(flat).reshape(batch, sources, -1).to(dtype)
        noise = self.noise_vectors(flat)  # (B * S, H, C)
        return query, noise.reshape(batch, sources, *noise.shape[1:]).to(dtype)

    def logits(self, features: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) features, (K, C) head vectors -> (B, K, F, T) mask logits."""
        return torch.einsum("bcft,kc->bkft", features, vectors.to(features.dtype)) + self.bias.to(features.dtype)
