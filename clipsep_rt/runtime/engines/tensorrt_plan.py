"""Build native TensorRT engine plans from the separator ONNX graph, and keep them valid.

A plan only runs on the TensorRT version and GPU model it was built with, so every plan
`separator.plan` gets a `separator.json` beside it that records what it was built with
(TensorRT version, GPU name and compute capability, profile shapes, fp16, the ONNX file's
sha256; its keys are the PLAN_* names of runtime/engines/contract.py). `ensure_engine`
compares that record with this machine and the current ONNX file and rebuilds, saying why
(through `log`, else the `logging` warning of this module), when they differ.

TensorRT is imported lazily: everything here except `build_engine` and `current_machine`
is pure Python and works without it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.files import atomic_output, file_sha256
from clipsep_rt.runtime.engines.contract import (
    EMBEDDINGS,
    LOG_MAG,
    METADATA_FORMAT,
    PLAN_COMPUTE_CAPABILITY,
    PLAN_CONFIG,
    PLAN_CREATED,
    PLAN_FORMAT,
    PLAN_FP16,
    PLAN_GPU_NAME,
    PLAN_MACHINE_KEYS,
    PLAN_ONNX_FILE,
    PLAN_ONNX_SHA256,
    PLAN_PROFILE_SHAPES,
    PLAN_TENSORRT_VERSION,
    PLAN_WORKSPACE_BYTES,
    PROFILE_BATCH,
    PROFILE_QUERIES,
    SEPARATOR_INPUTS,
    WORKSPACE_BYTES,
    plan_metadata_path,
)

TENSORRT_MISSING = "TensorRT is not installed: pip install 'clipsep-rt[gpu]' (needs an NVIDIA GPU)"

logger = logging.getLogger(__name__)
Log = Callable[[str], None]


def import_tensorrt():
    """The `tensorrt` module, or ClipsepError saying how to install it."""
    try:
        import tensorrt
    except ImportError:
        raise ClipsepError(TENSORRT_MISSING) from None
    return tensorrt


def _check_range(name: str, value: tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        value = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise OptionError(name, f"must be three integers (min, opt, max), got {value!r}") from None
    if len(value) != 3 or not 1 <= value[0] <= value[1] <= value[2]:
        raise OptionError(name, f"must be (min, opt, max) with 1 <= min <= opt <= max, got {value}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class TensorRTBuildConfig:
    """How a plan is built. `batch` is windows per call, `queries` prompts per call."""

    fp16: bool = True
    workspace_bytes: int = WORKSPACE_BYTES
    batch: tuple[int, int, int] = PROFILE_BATCH
    queries: tuple[int, int, int] = PROFILE_QUERIES
    timing_cache: Path | None = None  # reused and updated across builds when set

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch", _check_range("batch", self.batch))
        object.__setattr__(self, "queries", _check_range("queries", self.queries))
        if self.workspace_bytes < 1:
            raise OptionError("workspace_bytes", f"must be positive, got {self.workspace_bytes}")
        if self.timing_cache is not None:
            object.__setattr__(self, "timing_cache", Path(self.timing_cache))

    def identity(self) -> dict:
        """The settings that change the plan (stored in, and compared with, its metadata)."""
        return {"fp16": self.fp16, "batch": list(self.batch), "queries": list(self.queries)}


Shape = tuple[int, ...]


def optimization_profile_shapes(
    config: TensorRTBuildConfig, window_frames: int, query_dim: int, freq_bins: int = 256
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """{input name: (min, opt, max) shape} of the one optimization profile."""
    log_mag = tuple((b, 1, freq_bins, window_frames) for b in config.batch)
    embeddings = tuple((q, query_dim) for q in config.queries)
    return {LOG_MAG: log_mag, EMBEDDINGS: embeddings}  # type: ignore[dict-item]


# -- metadata -------------------------------------------------------------------------------


def read_metadata(plan_path: str | Path) -> dict | None:
    """The plan's metadata, or None if it is missing or unreadable."""
    try:
        data = json.loads(plan_metadata_path(plan_path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(info: dict) -> str:
    cc = info.get(PLAN_COMPUTE_CAPABILITY)
    sm = f"sm{cc[0]}{cc[1]}" if isinstance(cc, (list, tuple)) and len(cc) == 2 else "sm?"
    return f"TensorRT {info.get(PLAN_TENSORRT_VERSION, '?')} on {info.get(PLAN_GPU_NAME, '?')} ({sm})"


def engine_metadata_mismatch(metadata: dict, current: dict) -> str | None:
    """One line saying why a plan built as `metadata` says cannot be used now, or None.

    `current` has `tensorrt_version`, `gpu_name` and `compute_capability` (`current_machine`)
    and optionally `onnx_sha256` and `config` (TensorRTBuildConfig.identity()): those are
    compared only when present.
    """
    missing = [key for key in PLAN_MACHINE_KEYS if key not in metadata]
    if missing:
        return f"the engine metadata is incomplete (no {', '.join(missing)})"
    if any(_normalise(metadata[key]) != _normalise(current.get(key)) for key in PLAN_MACHINE_KEYS):
        return f"built with {_describe(metadata)}; this machine has {_describe(current)}"
    if PLAN_ONNX_SHA256 in current and metadata.get(PLAN_ONNX_SHA256) != current[PLAN_ONNX_SHA256]:
        old, new = str(metadata.get(PLAN_ONNX_SHA256))[:12], str(current[PLAN_ONNX_SHA256])[:12]
        return f"the ONNX file changed since the engine was built (sha256 {old}... -> {new}...)"
    if PLAN_CONFIG in current and _normalise(metadata.get(PLAN_CONFIG)) != _normalise(current[PLAN_CONFIG]):
        return f"built with settings {metadata.get(PLAN_CONFIG)}; asked for {current[PLAN_CONFIG]}"
    return None


def _normalise(value):
    """JSON round trips turn tuples into lists: compare them alike."""
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def current_machine(device_index: int = 0) -> dict:
    """TensorRT version, GPU name and compute capability of this machine (needs both)."""
    trt = import_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise ClipsepError("TensorRT engines need a CUDA GPU, and PyTorch sees none on this machine")
    props = torch.cuda.get_device_properties(device_index)
    return {
        PLAN_TENSORRT_VERSION: str(trt.__version__),
        PLAN_GPU_NAME: str(props.name),
        PLAN_COMPUTE_CAPABILITY: [int(props.major), int(props.minor)],
    }


# -- building --------------------------------------------------------------------------------


def build_engine(
    onnx_path: str | Path, plan_path: str | Path, config: TensorRTBuildConfig = TensorRTBuildConfig(), log: Log | None = None
) -> Path:
    """Parse the ONNX graph, build a serialized plan, write it and its metadata atomically.

    `log` gets the one progress line (default: this module's `logging` warning)."""
    log = log or logger.warning
    trt = import_tensorrt()
    machine = current_machine()
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    if not onnx_path.is_file():
        raise ClipsepError(f"{onnx_path}: ONNX file not found (run clipsep-rt export first)")

    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ClipsepError(f"{onnx_path}: TensorRT cannot parse this ONNX file: {errors}")

    inputs = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    if set(inputs) != set(SEPARATOR_INPUTS):
        raise ClipsepError(f"{onnx_path}: expected inputs {LOG_MAG!r} and {EMBEDDINGS!r}, found {sorted(inputs)}")
    freq_bins, window_frames = int(inputs[LOG_MAG][2]), int(inputs[LOG_MAG][3])
    query_dim = int(inputs[EMBEDDINGS][1])
    shapes = optimization_profile_shapes(config, window_frames, query_dim, freq_bins)

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_bytes))
    if config.fp16:
        builder_config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    builder_config.add_optimization_profile(profile)
    if config.timing_cache is not None:
        blob = config.timing_cache.read_bytes() if config.timing_cache.is_file() else b""
        builder_config.set_timing_cache(builder_config.create_timing_cache(blob), False)

    log(f"building TensorRT engine {plan_path} from {onnx_path.name} (this takes a few minutes)...")
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise ClipsepError(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT log above)")

    plan_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(plan_path, overwrite=True) as temp:
        temp.write_bytes(bytes(memoryview(serialized)))
    if config.timing_cache is not None:
        config.timing_cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(config.timing_cache, overwrite=True) as temp:
            temp.write_bytes(bytes(memoryview(builder_config.get_timing_cache().serialize())))
    write_metadata(plan_path, machine, onnx_path, config, shapes)
    return plan_path


def write_metadata(plan_path: Path, machine: dict, onnx_path: Path, config: TensorRTBuildConfig, shapes: dict) -> dict:
    metadata = {
        PLAN_FORMAT: METADATA_FORMAT,
        **machine,
        PLAN_FP16: config.fp16,
        PLAN_CONFIG: config.identity(),
        PLAN_WORKSPACE_BYTES: int(config.workspace_bytes),
        PLAN_PROFILE_SHAPES: {name: [list(s) for s in triple] for name, triple in shapes.items()},
        PLAN_ONNX_FILE: onnx_path.name,
        PLAN_ONNX_SHA256: file_sha256(onnx_path),
        PLAN_CREATED: datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with atomic_output(plan_metadata_path(plan_path), overwrite=True) as temp:
        temp.write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def rebuild_reason(onnx_path: Path, plan_path: Path, config: TensorRTBuildConfig, machine: dict) -> str | None:
    """Why the plan must be (re)built for this machine, ONNX file and config, or None."""
    if not plan_path.is_file():
        return "no engine plan yet"
    metadata = read_metadata(plan_path)
    if metadata is None:
        return f"{plan_metadata_path(plan_path).name} is missing or unreadable"
    current = {**machine, PLAN_ONNX_SHA256: file_sha256(onnx_path), PLAN_CONFIG: config.identity()}
    return engine_metadata_mismatch(metadata, current)


def ensure_engine(
    onnx_path: str | Path, plan_path: str | Path, config: TensorRTBuildConfig = TensorRTBuildConfig(), log: Log | None = None
) -> Path:
    """The plan at `plan_path`, (re)built first if it is missing or does not fit this machine,
    the ONNX file or `config`; a rebuild is announced through `log` with its reason (default:
    this module's `logging` warning)."""
    log = log or logger.warning
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    if not onnx_path.is_file():
        raise ClipsepError(f"{onnx_path}: ONNX file not found (run clipsep-rt export first)")
    reason = rebuild_reason(onnx_path, plan_path, config, current_machine())
    if reason is None:
        return plan_path
    verb = "building" if not plan_path.is_file() else "rebuilding"
    log(f"{verb} TensorRT engine {plan_path.name}: {reason}")
    return build_engine(onnx_path, plan_path, config, log=log)


__all__ = [
    "TENSORRT_MISSING",
    "TensorRTBuildConfig",
    "build_engine",
    "current_machine",
    "engine_metadata_mismatch",
    "ensure_engine",
    "import_tensorrt",
    "optimization_profile_shapes",
    "read_metadata",
]
