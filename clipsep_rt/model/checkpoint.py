"""Checkpoint I/O: the project's format and the released CLIPSep-NIT layout.

The project's format is one `.safetensors` file: the weights, plus a JSON document in the
safetensors header (key "clipsep_rt") with the model config, the spectral config, the
query encoder the model was trained with (id and embedding size) and provenance.
Anything else is read with `torch.load(weights_only=True)` as the original layout.
Either way the tensors are checked as they load: exactly the model config's, with its
shapes, and finite; a damaged file is one ClipsepError naming it and the tensors at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from clipsep_rt.config import PAPER_QUERY_ENCODER, ModelConfig, SpectralConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output, file_sha256
from clipsep_rt.model.official import from_official_state
from clipsep_rt.model.separator import CLIPSepSeparator

FORMAT_NAME = "clipsep_rt"
FORMAT_VERSION = 1
# The released CLIPSep-NIT model was trained with CLIP ViT-B/32 (OpenAI weights).


@dataclass
class Checkpoint:
    model_config: ModelConfig
    spectral_config: SpectralConfig
    state_dict: dict[str, torch.Tensor]
    query_encoder: str | None  # encoder id, e.g. "open_clip:ViT-B-32/openai"
    provenance: dict = field(default_factory=dict)

    @property
    def query_dim(self) -> int:
        return self.model_config.query_dim

    def metadata(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "model": self.model_config.to_dict(),
            "spectral": self.spectral_config.to_dict(),
            "query_encoder": {"id": self.query_encoder, "embedding_dim": self.query_dim},
            "provenance": self.provenance,
        }

    def build(self, device: str | torch.device = "cpu") -> CLIPSepSeparator:
        """The separator in eval mode, on `device`. Built on the meta device and given copies of
        the checkpoint's tensors: no random initialisation that the weights would overwrite
        (0.17 s of a full-size model's 0.20 s build)."""
        with torch.device("meta"):
            model = CLIPSepSeparator(self.model_config)
        model.load_state_dict({key: value.clone() for key, value in self.state_dict.items()}, strict=True, assign=True)
        return model.eval().to(device)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read either format; raises ClipsepError naming the file when it is neither."""
    path = Path(path)
    if not path.is_file():
        raise ClipsepError(f"checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        return _load_own(path)
    return load_official(path)


def _load_own(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ClipsepError(f"checkpoint {path}: not a readable safetensors file ({error})") from None
    if FORMAT_NAME not in header:
        raise ClipsepError(f"checkpoint {path}: safetensors file without clipsep-rt metadata")
    try:
        meta = json.loads(header[FORMAT_NAME])
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ClipsepError(f"checkpoint {path}: format version {meta['format_version']} is newer than this clipsep-rt")
        model_config = ModelConfig.from_dict(meta["model"])
        spectral_config = SpectralConfig.from_dict(meta["spectral"])
        query_encoder = meta["query_encoder"].get("id")
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # json's errors are ValueErrors
        raise ClipsepError(f"checkpoint {path}: its clipsep-rt metadata is damaged ({type(error).__name__}: {error})") from None
    return Checkpoint(
        model_config=model_config,
        spectral_config=spectral_config,
        state_dict=_checked_state(path, model_config, state),
        query_encoder=query_encoder,
        provenance=meta.get("provenance", {}),
    )


def load_official(path: Path, query_encoder: str = PAPER_QUERY_ENCODER) -> Checkpoint:
    """A checkpoint in the released CLIPSep-NIT layout (a DataParallel state dict)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise ClipsepError(f"checkpoint {path}: cannot be read as a PyTorch checkpoint ({type(error).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ClipsepError(f"checkpoint {path}: not a state dict of tensors")
    try:
        model_config, own_state = from_official_state(state)
    except ClipsepError as error:
        raise ClipsepError(f"checkpoint {path}: {error}") from None
    return Checkpoint(
        model_config=model_config,
        spectral_config=SpectralConfig(),
        state_dict=_checked_state(path, model_config, own_state),
        query_encoder=query_encoder,
        provenance={"converted_from": path.name, "source_sha256": file_sha256(path), "layout": "CLIPSep-NIT (official)"},
    )


def _checked_state(path: Path, config: ModelConfig, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` in float32 when its tensors are exactly the ones `config`'s separator has, with
    their shapes, and all finite; else one ClipsepError naming the file and the tensors at
    fault (a damaged or edited file would otherwise fail in load_state_dict with a traceback,
    or separate into NaN)."""
    with torch.device("meta"):  # the shapes without allocating or initialising weights
        expected = {key: tuple(value.shape) for key, value in CLIPSepSeparator(config).state_dict().items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [f"{key} {_shape(state[key].shape)} (needs {_shape(expected[key])})"
                for key in expected if key in state and tuple(state[key].shape) != expected[key]]
    faults = [f"{kind} {_first_few(keys)}" for kind, keys in (
        ("missing tensors", missing), ("unexpected tensors", unexpected), ("wrong shapes", reshaped)) if keys]
    if faults:
        raise ClipsepError(f"checkpoint {path}: does not fit its model (depth {config.depth}, ngf {config.ngf}): "
                           f"{'; '.join(faults)}; the file is damaged or was edited: convert or export it again")
    state = {key: value.float() for key, value in state.items()}
    for key, value in state.items():
        finite = np.isfinite(value.numpy())  # numpy's: 10 times torch's on a busy machine (0.04 s for 30 M weights)
        if not finite.all():
            raise ClipsepError(f"checkpoint {path}: tensor {key} holds {finite.size - int(finite.sum())} NaN/Inf values "
                               f"of {finite.size}: the file is damaged or its training diverged; use another checkpoint")
    return state


def _shape(shape) -> str:
    return "(" + ", ".join(str(size) for size in shape) + ")"


def _first_few(items: list[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def save_checkpoint(checkpoint: Checkpoint, path: str | Path, half: bool = False, overwrite: bool = True) -> None:
    """Write the project's format atomically; `half` stores float weights as FP16."""
    path = Path(path)
    tensors = {}
    for key, value in checkpoint.state_dict.items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point():
            value = value.half()
        tensors[key] = value
    with atomic_output(path, overwrite) as temporary:
        save_file(tensors, str(temporary), metadata={FORMAT_NAME: json.dumps(checkpoint.metadata())})


def checkpoint_from_model(
    model: CLIPSepSeparator,
    query_encoder: str | None,
    spectral_config: SpectralConfig = SpectralConfig(),
    provenance: dict | None = None,
) -> Checkpoint:
    return Checkpoint(
        model_config=model.config,
        spectral_config=spectral_config,
        state_dict={key: value.detach().cpu() for key, value in model.state_dict().items()},
        query_encoder=query_encoder,
        provenance=provenance or {},
    )
