"""The audio U-Net of CLIPSep (the Sound-of-Pixels U-Net, 7 levels by default).

Level k (0 = outermost) halves the resolution on the way down and doubles it on the way
up; every level but the outermost concatenates its input to its up-path output (skip).
Widths for ngf=64 and depth=7: 1 -> 64 -> 128 -> 256 -> 512 -> 512 -> 512 -> 512.

Down path of level k: LeakyReLU(0.2) (not on level 0), Conv 4x4 stride 2 (no bias),
BatchNorm (not on level 0 nor on the innermost level).
Up path of level k: ReLU, bilinear x2 upsampling (align_corners=True), Conv 3x3, then
BatchNorm on every level but the outermost, whose conv has a bias and gives `channels`
output channels.

With `config.film` the query conditions the network (FiLM, feature-wise linear modulation):
the bottleneck (innermost down output) and each inner up level's normalised output are
scaled and shifted per channel, x * (1 + gamma) + beta, with (gamma, beta) a linear function
of the query embedding. The down path does not see the query (`encode` runs once per
window), the up path runs once per query (`decode`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clipsep_rt.config import ModelConfig


def level_widths(config: ModelConfig) -> list[int]:
    """Output width of the down conv of each level: [ngf, 2 ngf, 4 ngf, 8 ngf, 8 ngf, ...]."""
    return [config.ngf * min(2**k, 8) for k in range(config.depth)]


class UNet(nn.Module):
    """(B, 1, F, T) log-magnitude -> (B, channels, F, T) features; F and T divisible by 2**depth."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        widths = level_widths(config)
        self.depth = config.depth
        self.input_norm = nn.BatchNorm2d(1)
        in_widths = [1] + widths[:-1]
        self.down_convs = nn.ModuleList(
            nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False) for cin, cout in zip(in_widths, widths)
        )
        # BatchNorm after the down conv of levels 1 .. depth-2.
        self.down_norms = nn.ModuleList(nn.BatchNorm2d(widths[k]) for k in range(1, config.depth - 1))
        # Up conv of level k reads the level below's output (its skip + up path), except the
        # innermost level, which reads its own down output.
        up_inputs = [2 * w for w in widths[:-1]] + [widths[-1]]
        up_outputs = [config.channels] + in_widths[1:]
        self.up_convs = nn.ModuleList(
            nn.Conv2d(cin, cout, 3, padding=1, bias=(k == 0))
            for k, (cin, cout) in enumerate(zip(up_inputs, up_outputs))
        )
        self.up_norms = nn.ModuleList(nn.BatchNorm2d(up_outputs[k]) for k in range(1, config.depth))
        # FiLM: the bottleneck, then up levels depth-1 .. 1 (their normalised outputs)
        self.film_widths = [widths[-1], *(up_outputs[k] for k in range(config.depth - 1, 0, -1))] if config.film else []
        self.film = nn.Linear(config.query_dim, 2 * sum(self.film_widths)) if config.film else None
        if self.film is not None:  # start as the identity: gamma = beta = 0
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, log_mag: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) -> (B, channels, F, T) of a late-fusion U-Net (no FiLM)."""
        if self.film is not None:
            raise ValueError("this U-Net is FiLM-conditioned: its features depend on the query (use encode/decode)")
        return self.decode(*self.encode(log_mag))

    def encode(self, log_mag: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The down path: (B, 1, F, T) -> the bottleneck and the skips of levels 1 .. depth-1."""
        x = self.down_convs[0](self.input_norm(log_mag))
        skips = []
        for k in range(1, self.depth):
            skips.append(x)
            x = self.down_convs[k](F.leaky_relu(x, 0.2))
            if k < self.depth - 1:
                x = self.down_norms[k - 1](x)
        return x, skips

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor], embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """The up path: bottleneck and skips (batch N) -> (N, channels, F, T); a FiLM U-Net takes
        one (D,) query embedding per item, `embeddings` (N, D)."""
        film = iter(self._film_parameters(embeddings)) if self.film is not None else None
        if film is not None:
            x = _modulate(x, *next(film))
        for k in range(self.depth - 1, -1, -1):
            x = F.interpolate(F.relu(x), scale_factor=2.0, mode="bilinear", align_corners=True)
            x = self.up_convs[k](x)
            if k > 0:
                level = self.up_norms[k - 1](x)
                if film is not None:
                    level = _modulate(level, *next(film))
                x = torch.cat([skips[k - 1], level], dim=1)
        return x

    def _film_parameters(self, embeddings: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if embeddings is None:
            raise ValueError("a FiLM U-Net decodes with the query embeddings")
        parameters = self.film(embeddings)  # (N, 2 * sum(widths))
        out, start = [], 0
        for width in self.film_widths:
            out.append((parameters[:, start : start + width], parameters[:, start + width : start + 2 * width]))
            start += 2 * width
        return out


def _modulate(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """x (N, C, F, T) * (1 + gamma (N, C)) + beta (N, C)."""
    return x * (1 + gamma.to(x.dtype))[:, :, None, None] + beta.to(x.dtype)[:, :, None, None]
