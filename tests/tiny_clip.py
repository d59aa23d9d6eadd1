"""A small random open_clip CLIP built in the test (no weights, no download) and its tokenizer."""

from __future__ import annotations

import torch


def tiny_clip(embed_dim: int = 16, text_layers: int = 1, seed: int = 0):
    """(model in eval mode, tokenizer); the ViT-B-32 tokenizer's vocabulary ships with open_clip."""
    import open_clip  # the clip extra is part of the test install: a broken import must fail

    torch.manual_seed(seed)
    model = open_clip.CLIP(
        embed_dim=embed_dim,
        vision_cfg=open_clip.CLIPVisionCfg(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
        text_cfg=open_clip.CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=text_layers),
    ).eval()
    return model, open_clip.get_tokenizer("ViT-B-32")
