"""The released CLIPSep-NIT checkpoint layout (`CLIPPITSepV4` saved from DataParallel).

Key names are nested Sound-of-Pixels U-Net blocks:
    module.sound_net.unet_block.model.{...}   level 0 (outermost)
    module.sound_net.unet_block.model.1.model.{...}            level 1
    module.sound_net.unet_block.model.1.model.3.model.{...}    level 2, and so on,
and the heads are `frame_net` (query projection), `pit_nets.{i}` (noise heads) and
`synth_net.{scale,bias}`. Depth and width are inferred from the shapes.
"""

from __future__ import annotations

import re

import torch

from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError

_PREFIX = "module."
_UNET = "sound_net.unet_block."

# Position of each layer inside a level's nn.Sequential, by level kind.
_OUTERMOST = {"down_conv": 0, "up_conv": 4}
_MIDDLE = {"down_conv": 1, "down_norm": 2, "up_conv": 6, "up_norm": 7}
_INNERMOST = {"down_conv": 1, "up_conv": 4, "up_norm": 5}
_BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _level_prefix(level: int) -> str:
    if level == 0:
        return _UNET + "model."
    return _UNET + "model.1." + "model.3." * (level - 1) + "model."


def strip_data_parallel(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` prefix that torch.nn.DataParallel adds, where present."""
    if all(key.startswith(_PREFIX) for key in state):
        return {key[len(_PREFIX):]: value for key, value in state.items()}
    return dict(state)


def infer_config(state: dict[str, torch.Tensor]) -> ModelConfig:
    """ModelConfig from an official state dict (without the `module.` prefix)."""
    try:
        first_conv = state[_level_prefix(0) + "0.weight"]  # (ngf, 1, 4, 4)
        frame_net = state["frame_net.weight"]  # (channels, query_dim)
    except KeyError as missing:
        raise ClipsepError(f"not a CLIPSep checkpoint: key {missing} is missing") from None
    down_convs = [key for key in state if key.startswith(_UNET) and re.search(r"model\.1\.weight$", key)]
    depth = 1 + len(down_convs)  # level 0's down conv is model.0
    noise_heads = len({key.split(".")[1] for key in state if key.startswith("pit_nets.")})
    return ModelConfig(
        depth=depth,
        ngf=first_conv.shape[0],
        channels=frame_net.shape[0],
        query_dim=frame_net.shape[1],
        noise_heads=noise_heads,
    )


def official_key_map(config: ModelConfig) -> dict[str, str]:
    """Map from this package's parameter names to the official (unprefixed) names."""
    mapping: dict[str, str] = {}
    for field in _BN_FIELDS:
        mapping[f"unet.input_norm.{field}"] = f"sound_net.bn0.{field}"
    for level in range(config.depth):
        positions = _OUTERMOST if level == 0 else _INNERMOST if level == config.depth - 1 else _MIDDLE
        prefix = _level_prefix(level)
        mapping[f"unet.down_convs.{level}.weight"] = f"{prefix}{positions['down_conv']}.weight"
        mapping[f"unet.up_convs.{level}.weight"] = f"{prefix}{positions['up_conv']}.weight"
        if level == 0:
            mapping["unet.up_convs.0.bias"] = f"{prefix}{positions['up_conv']}.bias"
        for norm in ("down_norm", "up_norm"):
            if norm in positions:
                ours = f"unet.{norm}s.{level - 1}"
                for field in _BN_FIELDS:
                    mapping[f"{ours}.{field}"] = f"{prefix}{positions[norm]}.{field}"
    mapping["heads.query_projection.weight"] = "frame_net.weight"
    mapping["heads.query_projection.bias"] = "frame_net.bias"
    for head in range(config.noise_heads):
        for field in ("weight", "bias"):
            mapping[f"heads.noise_projections.{head}.{field}"] = f"pit_nets.{head}.{field}"
    mapping["heads.scale"] = "synth_net.scale"
    mapping["heads.bias"] = "synth_net.bias"
    return mapping


def from_official_state(state: dict[str, torch.Tensor]) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Official (possibly `module.`-prefixed) state dict -> (config, this package's state dict)."""
    state = strip_data_parallel(state)
    config = infer_config(state)
    mapping = official_key_map(config)
    missing = [theirs for theirs in mapping.values() if theirs not in state]
    if missing:
        raise ClipsepError(f"checkpoint does not have the CLIPSep-NIT layout: missing key {missing[0]!r}")
    unused = sorted(set(state) - set(mapping.values()))
    if unused:
        raise ClipsepError(f"checkpoint does not have the CLIPSep-NIT layout: unexpected key {unused[0]!r}")
    return config, {ours: state[theirs] for ours, theirs in mapping.items()}
