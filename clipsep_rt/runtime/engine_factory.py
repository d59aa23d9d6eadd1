"""Build the engine a backend choice names, from a checkpoint or an exported engine folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..model.checkpoint import Checkpoint
from .backends import BackendChoice
from .engine import Engine, TorchEngine


def open_engine(
    choice: BackendChoice,
    files: dict[str, str],
    checkpoint: Callable[[], Checkpoint],
    device: str,
    precision: str = "auto",
    compile: bool = False,
    threads: int | None = None,
) -> Engine:
    """The engine for `choice`; `files` are the engine folder's (runtime.backends keys),
    `checkpoint` loads the weights (only the torch backend needs them). An explicit
    `precision` overrides the choice's."""
    precision = choice.precision if precision == "auto" else precision
    device = choice.device if device == "auto" else device
    if choice.name == "torch":
        return TorchEngine(checkpoint().build(), device, precision, compile=compile)
    if choice.name == "onnxruntime":
        from .onnx_engine import OnnxRuntimeEngine

        graph = files["onnx_fp16"] if precision == "fp16" and "onnx_fp16" in files else files["onnx"]
        providers = [choice.provider] if choice.provider and device.startswith("cuda") else None
        return OnnxRuntimeEngine(graph, device, precision, providers=providers, threads=threads)
    from ..export.tensorrt_build import TensorRTBuildConfig, ensure_engine
    from .tensorrt_engine import TensorRTEngine

    onnx = Path(files["onnx"])
    plan = Path(files.get("tensorrt_plan") or onnx.with_name("separator.plan"))
    ensure_engine(onnx, plan, TensorRTBuildConfig(timing_cache=onnx.with_name("tensorrt.timing-cache")))
    return TensorRTEngine(plan, device)
