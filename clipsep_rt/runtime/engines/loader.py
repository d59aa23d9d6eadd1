"""Open a separator from a checkpoint and/or an exported engine folder, on any backend.

`open_source` reads what the separator is (configs, query encoder, the folder's files) and
loads weights only when asked; `open_engine` builds the engine a backend choice names;
`runtime.pipeline.Pipeline.load` does both (the bundled default model when given neither).

Nothing here imports torch until the torch backend is chosen or weights are loaded, so an
engine folder on onnxruntime opens without it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import file_sha256
from clipsep_rt.query.encoders.exported import ExportedTextEncoder
from clipsep_rt.runtime.engines.choice import BackendChoice
from clipsep_rt.runtime.engines.contract import SEPARATOR_PLAN, TIMING_CACHE
from clipsep_rt.runtime.engines.manifest import read_manifest
from clipsep_rt.runtime.engines.protocol import Engine

if TYPE_CHECKING:
    from clipsep_rt.model.checkpoint import Checkpoint


def load_checkpoint(path: str | Path) -> "Checkpoint":
    """`model.checkpoint.load_checkpoint`, imported (with torch) only when weights are read."""
    from clipsep_rt.model.checkpoint import load_checkpoint as load

    return load(path)


@dataclass
class ModelSource:
    """A separator's description and files: from a checkpoint, an engine folder, or both."""

    name: str  # the engine folder, else the checkpoint (as given)
    description: str  # for reports: "engine folder DIR" or "checkpoint FILE"
    model_config: ModelConfig
    spectral: SpectralConfig
    query_encoder: str | None  # encoder id the separator was trained with
    files: dict[str, str]  # engine folder: {"onnx", "onnx_fp16", "onnx_int8", "tensorrt_plan"} -> path; {} for a checkpoint
    weights: Callable[[], "Checkpoint"]  # the weights (torch backend, ONNX export), loaded on first call
    text_encoder_onnx: ExportedTextEncoder | None = None  # the engine folder's ONNX text encoder, if any
    weights_file: Path | None = None  # the weights in the project's .safetensors format (readable without torch), if any


def open_source(checkpoint: str | Path | None = None, engine_dir: str | Path | None = None) -> ModelSource:
    """A checkpoint (either format) and/or an engine folder made by `clipsep-rt export`.

    With both, the checkpoint must be the one the folder was exported from (its weights then
    serve the torch backend); ClipsepError otherwise, or when given neither.
    """
    if engine_dir is None:
        if checkpoint is None:
            raise ClipsepError("no separator given: pass a checkpoint or an engine folder")
        loaded = load_checkpoint(checkpoint)
        if loaded.model_config.film:
            raise ClipsepError(f"checkpoint {checkpoint}: a FiLM-conditioned model (a training experiment, one decoder pass "
                               "per query): the runtime and export take late-fusion models only")
        own_format = Path(checkpoint) if Path(checkpoint).suffix == ".safetensors" else None
        return ModelSource(str(checkpoint), f"checkpoint {checkpoint}", loaded.model_config, loaded.spectral_config,
                           loaded.query_encoder, {}, lambda: loaded, weights_file=own_format)
    folder = Path(engine_dir)
    manifest = read_manifest(folder)
    if checkpoint is not None and file_sha256(Path(checkpoint)) != manifest.checkpoint["sha256"]:
        raise ClipsepError(f"engine folder {engine_dir} was exported from {manifest.checkpoint['name']}, not from {checkpoint}")
    weights_path = Path(checkpoint) if checkpoint is not None else (
        folder / manifest.separator.weights if manifest.separator.weights else None)
    text = manifest.text_encoder
    name, description = (str(checkpoint), f"checkpoint {checkpoint} (engine folder {engine_dir})") if checkpoint is not None \
        else (str(engine_dir), f"engine folder {engine_dir}")
    return ModelSource(
        name, description, manifest.model, manifest.spectral, manifest.query_encoder,
        manifest.separator.backend_files(folder), functools.cache(lambda: _folder_weights(folder, weights_path)),
        text.encoder(folder, manifest.query_encoder) if text else None,
        weights_path if weights_path is not None and weights_path.suffix == ".safetensors" else None,
    )


def _folder_weights(folder: Path, weights_path: Path | None) -> "Checkpoint":
    """The weights an engine folder's torch backend runs: its own file, or the checkpoint given with it."""
    if weights_path is None:
        raise ClipsepError(f"engine folder {folder} holds no weights (it was compiled from a checkpoint): give that "
                           "checkpoint too (--checkpoint) to run it on torch")
    return load_checkpoint(weights_path)


def open_engine(
    choice: BackendChoice,
    files: dict[str, str],
    checkpoint: Callable[[], "Checkpoint"],
    device: str,
    precision: str = "auto",
    compile: bool = False,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> Engine:
    """The engine for `choice`; `files` are the engine folder's (`ModelSource.files`),
    `checkpoint` loads the weights (only the torch backend needs them). An explicit
    `precision` overrides the choice's. `threads`: CPU threads of onnxruntime's session, or of
    torch (`torch.set_num_threads`, for the whole process). `log` hears of a TensorRT plan
    (re)build (default: `logging`)."""
    precision = choice.precision if precision == "auto" else precision
    device = choice.device if device == "auto" else device
    if choice.name == "torch":
        import torch

        from clipsep_rt.runtime.engines.torch_engine import TorchEngine

        if threads is not None:
            torch.set_num_threads(threads)
        return TorchEngine(checkpoint().build(), device, precision, compile=compile)
    if choice.name == "openvino":
        from clipsep_rt.runtime.engines.openvino_engine import OpenVinoEngine

        return OpenVinoEngine(files["onnx"], precision, threads=threads)
    if choice.name == "onnxruntime":
        from clipsep_rt.runtime.engines.onnx_engine import OnnxRuntimeEngine

        graph = files["onnx_fp16"] if precision == "fp16" and "onnx_fp16" in files else files["onnx"]
        if precision == "int8":
            if "onnx_int8" not in files:
                raise ClipsepError("precision int8 needs an engine folder with the INT8 graph (clipsep-rt export --int8)")
            graph = files["onnx_int8"]
        providers = [choice.provider] if choice.provider and device.startswith("cuda") else None
        return OnnxRuntimeEngine(graph, device, precision, providers=providers, threads=threads)
    from clipsep_rt.runtime.engines.tensorrt_engine import TensorRTEngine
    from clipsep_rt.runtime.engines.tensorrt_plan import TensorRTBuildConfig, ensure_engine

    onnx = Path(files["onnx"])
    plan = Path(files.get("tensorrt_plan") or onnx.with_name(SEPARATOR_PLAN))
    ensure_engine(onnx, plan, TensorRTBuildConfig(timing_cache=onnx.with_name(TIMING_CACHE)), log=log)
    return TensorRTEngine(plan, device)


def open_bundled_source() -> ModelSource:
    """The bundled default model: its checkpoint, with the ONNX graph beside it when the install
    has it (model/weights is also its engine folder; `make default-engine` rebuilds it)."""
    from clipsep_rt.model.weights import default_checkpoint, default_engine_dir

    checkpoint = default_checkpoint()
    source = open_source(checkpoint, default_engine_dir())
    return dataclasses.replace(source, name=str(checkpoint), description=f"the bundled default model {checkpoint.name}")
