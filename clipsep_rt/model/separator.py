"""CLIPSep / CLIPSep-NIT separator: U-Net features + query-conditioned mask heads."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from clipsep_rt.config import ModelConfig
from clipsep_rt.model.heads import QueryHeads
from clipsep_rt.model.unet import UNet


class MaskLogits(NamedTuple):
    query: torch.Tensor  # (B, Q, F, T) one mask per query
    noise: torch.Tensor  # (B, Q, noise_heads, F, T) CLIPSep-NIT noise heads, per query


class CLIPSepSeparator(nn.Module):
    """Log-frequency magnitude windows + query embeddings -> mask logits on the log grid.

    The U-Net never sees the query: `features` runs once per window, and each query only
    adds one inner product (`QueryHeads.logits`). A FiLM model (`config.film`, a training
    experiment) conditions the U-Net's decoder on the query too (`model.film`).
    """

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        self.unet = UNet(config)
        self.heads = QueryHeads(config)

    def features(self, log_mag: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) warped log magnitude -> (B, channels, F, T)."""
        return self.unet(log_mag)

    def forward(self, log_mag: torch.Tensor, embeddings: torch.Tensor, noise_heads: bool = True) -> MaskLogits:
        """(B, 1, F, T), (Q, D) -> MaskLogits; noise logits are empty unless asked for."""
        if self.config.film:
            from clipsep_rt.model.film import film_logits

            return film_logits(self, log_mag, embeddings.expand(log_mag.shape[0], *embeddings.shape), noise_heads)
        features = self.features(log_mag)
        query = self.heads.logits(features, self.heads.query_vectors(embeddings))
        batch, _, freq, time = features.shape
        if noise_heads and self.config.noise_heads:
            noise_vectors = self.heads.noise_vectors(embeddings)  # (Q, H, C)
            noise = self.heads.logits(features, noise_vectors.flatten(0, 1))
            noise = noise.reshape(batch, *noise_vectors.shape[:2], freq, time)
        else:
            noise = features.new_zeros(batch, embeddings.shape[0], 0, freq, time)
        return MaskLogits(query, noise)
