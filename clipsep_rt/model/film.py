"""Mask logits of a FiLM-conditioned separator (`ModelConfig.film`): one decoder pass per query.

The down path runs once per window; its bottleneck and skips are repeated for each of the
item's S queries and decoded with that query's FiLM parameters, then the usual late-fusion
heads apply to each query's own features. Shapes: B items, S queries per item, C channels.
"""

from __future__ import annotations

import torch

from clipsep_rt.model.separator import CLIPSepSeparator, MaskLogits


def film_logits(separator: CLIPSepSeparator, log_mag: torch.Tensor, embeddings: torch.Tensor, noise_heads: bool = True) -> MaskLogits:
    """(B, 1, F, T) input, (B, S, D) embeddings -> MaskLogits: query (B, S, F, T), noise (B, S, H, F, T)."""
    batch, sources = embeddings.shape[:2]
    bottleneck, skips = separator.unet.encode(log_mag)
    flat = embeddings.reshape(batch * sources, -1)
    features = separator.unet.decode(
        bottleneck.repeat_interleave(sources, dim=0), [s.repeat_interleave(sources, dim=0) for s in skips], flat
    ).reshape(batch, sources, -1, *log_mag.shape[-2:])  # (B, S, C, F, T)
    query_vectors, noise_vectors = separator.heads.item_vectors(embeddings, features.dtype)
    bias = separator.heads.bias.to(features.dtype)
    query = torch.einsum("bscft,bsc->bsft", features, query_vectors) + bias
    if noise_heads and separator.config.noise_heads:
        noise = torch.einsum("bscft,bshc->bshft", features, noise_vectors) + bias
    else:
        noise = features.new_zeros(batch, sources, 0, *features.shape[-2:])
    return MaskLogits(query, noise)
