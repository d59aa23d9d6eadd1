"""The audio U-Net of CLIPSep (the Sound-of-Pixels U-Net, 7 levels by default).

Level k (0 = outermost) halves the resolution on the way down and doubles it on the way
up; every level but the outermost concatenates its input to its up-path output (skip).
Widths for ngf=64 and depth=7: 1 -> 64 -> 128 -> 256 -> 512 -> 512 -> 512 -> 512.

Down path of level k: LeakyReLU(0.2) (not on level 0), Conv 4x4 stride 2 (no bias),
BatchNorm (not on level 0 nor on the innermost level).
Up path of level k: ReLU, bilinear x2 upsampling (align_corners=True), Conv 3x3, then
BatchNorm on every level but the outermost, whose conv has a bias and gives `channels`
output channels.
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

    def forward(self, log_mag: torch.Tensor) -> torch.Tensor:
        x = self.down_convs[0](self.input_norm(log_mag))
        skips = []
        for k in range(1, self.depth):
            skips.append(x)
            x = self.down_convs[k](F.leaky_relu(x, 0.2))
            if k < self.depth - 1:
                x = self.down_norms[k - 1](x)
        for k in range(self.depth - 1, -1, -1):
            x = F.interpolate(F.relu(x), scale_factor=2.0, mode="bilinear", align_corners=True)
            x = self.up_convs[k](x)
            if k > 0:
                x = torch.cat([skips[k - 1], self.up_norms[k - 1](x)], dim=1)
        return x
