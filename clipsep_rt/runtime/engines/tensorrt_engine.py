"""The separator as a native TensorRT engine plan, with torch CUDA tensors as its buffers.

The plan (runtime/engines/tensorrt_plan.py) has the separator graph's interface (contract.py):
`log_mag` (B, 1, 256, T), `embeddings` (Q, D) -> `query_logits` (B, Q, 256, T),
`noise_logits` (B, Q, H, 256, T). Every call sets the input shapes, points the
execution context at torch tensors (`set_tensor_address(name, tensor.data_ptr())`) and
enqueues on PyTorch's current CUDA stream (`execute_async_v3`), so no copies leave the
GPU and torch's stream ordering keeps the buffers alive. Batches and query counts above
the plan's optimization profile are split into several calls.

A plan only runs on the TensorRT version and GPU it was built for: its metadata
(`separator.json` beside `separator.plan`) is checked before loading, and a mismatch is
a ClipsepError that says what differs. One engine is not safe to share between threads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.model.device import resolve_device
from clipsep_rt.runtime.engines.chunking import run_in_chunks
from clipsep_rt.runtime.engines.contract import (
    EMBEDDINGS,
    LOG_MAG,
    NOISE_LOGITS,
    PLAN_FP16,
    PLAN_PROFILE_SHAPES,
    QUERY_LOGITS,
    SEPARATOR_INPUTS,
    SEPARATOR_OUTPUTS,
    plan_metadata_path,
)
from clipsep_rt.runtime.engines.tensorrt_plan import (
    current_machine,
    engine_metadata_mismatch,
    import_tensorrt,
    read_metadata,
)

REBUILD_HINT = "rebuild it with clipsep-rt export --tensorrt (or delete it to have it rebuilt)"


@dataclass(frozen=True)
class TensorRTQueries:
    embeddings: torch.Tensor  # (Q, D) on the engine's device, in the plan's input dtype
    noise_heads: bool
    noise_count: int

    @property
    def rows(self) -> int:
        return self.embeddings.shape[0] * (1 + (self.noise_count if self.noise_heads else 0))


def profile_limits(metadata: dict) -> tuple[int | None, int | None]:
    """(max batch, max queries) of the plan's optimization profile, None where unknown."""
    shapes = metadata.get(PLAN_PROFILE_SHAPES) or {}
    try:
        return int(shapes[LOG_MAG][2][0]), int(shapes[EMBEDDINGS][2][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None, None


def check_plan_metadata(plan_path: Path, metadata: dict | None, current: dict) -> None:
    """ClipsepError unless the plan's metadata says it was built for `current`."""
    if metadata is None:
        raise ClipsepError(f"{plan_path}: {plan_metadata_path(plan_path).name} (what it was built with) is missing or unreadable; {REBUILD_HINT}")
    reason = engine_metadata_mismatch(metadata, current)
    if reason:
        raise ClipsepError(f"{plan_path}: {reason}; {REBUILD_HINT}")


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if hasattr(trt.DataType, "BF16"):
        table[trt.DataType.BF16] = torch.bfloat16
    if dtype not in table:
        raise ClipsepError(f"TensorRT plan has an unsupported I/O type {dtype}")
    return table[dtype]


class TensorRTEngine:
    """The Engine protocol (runtime/engines/protocol.py) over a deserialized TensorRT plan."""

    def __init__(self, plan_path: str | Path, device: str = "cuda"):
        trt = import_tensorrt()
        self.plan_path = Path(plan_path)
        if not self.plan_path.is_file():
            raise ClipsepError(f"{self.plan_path}: TensorRT plan not found (build it with clipsep-rt export --tensorrt)")
        self.torch_device = resolve_device("cuda" if device == "auto" else device)
        if self.torch_device.type != "cuda":
            raise OptionError("device", f"the tensorrt backend runs on CUDA only, got {device!r}")
        self.device = str(self.torch_device)
        metadata = read_metadata(self.plan_path)
        check_plan_metadata(self.plan_path, metadata, current_machine(self.torch_device.index or 0))
        self.metadata = metadata
        self.precision = "fp16" if metadata.get(PLAN_FP16) else "fp32"
        self._batch_limit, self._query_limit = profile_limits(metadata)

        with torch.cuda.device(self.torch_device):
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
            if self.engine is None:
                raise ClipsepError(f"{self.plan_path}: TensorRT cannot deserialize this plan; {REBUILD_HINT}")
            self.context = self.engine.create_execution_context()
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        expected = {*SEPARATOR_INPUTS, *SEPARATOR_OUTPUTS}
        if names != expected:
            raise ClipsepError(f"{self.plan_path}: expected tensors {sorted(expected)}, found {sorted(names)}")
        self._dtypes = {name: _torch_dtype(trt, self.engine.get_tensor_dtype(name)) for name in expected}
        self._noise_count = int(self.engine.get_tensor_shape(NOISE_LOGITS)[2])  # -1 if dynamic

    def prepare_queries(self, embeddings: np.ndarray, noise_heads: bool) -> TensorRTQueries:
        array = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        if array.ndim != 2:
            raise ClipsepError(f"query embeddings must be (Q, D), got shape {array.shape}")
        tensor = torch.from_numpy(array).to(self.torch_device, self._dtypes[EMBEDDINGS]).contiguous()
        if self._noise_count < 0:  # dynamic H: ask the context once
            self._set_shapes((1, 1, *self._window_shape()), (1, tensor.shape[1]))
            self._noise_count = int(self.context.get_tensor_shape(NOISE_LOGITS)[2])
        return TensorRTQueries(tensor, bool(noise_heads), self._noise_count)

    def _window_shape(self) -> tuple[int, int]:
        shape = self.engine.get_tensor_shape(LOG_MAG)
        return int(shape[2]), int(shape[3])

    def _set_shapes(self, log_mag: tuple, embeddings: tuple) -> None:
        if not (self.context.set_input_shape(LOG_MAG, tuple(log_mag)) and self.context.set_input_shape(EMBEDDINGS, tuple(embeddings))):
            raise ClipsepError(f"TensorRT plan {self.plan_path.name} does not accept log_mag {tuple(log_mag)} with embeddings {tuple(embeddings)}")

    def probabilities(self, log_mag: np.ndarray, queries: TensorRTQueries) -> np.ndarray:
        """(B, 1, F, T) float32 -> (B, rows, F, T) float32 sigmoid masks, numpy in host memory."""
        with torch.cuda.device(self.torch_device):
            x = torch.from_numpy(np.ascontiguousarray(log_mag, dtype=np.float32))
            x = x.to(self.torch_device, self._dtypes[LOG_MAG]).contiguous()
            run = functools.partial(self._run, noise_heads=queries.noise_heads)
            logits = run_in_chunks(run, x, queries.embeddings, self._batch_limit, self._query_limit, torch.cat)
            return logits.float().sigmoid_().cpu().numpy()

    def _run(self, log_mag: torch.Tensor, embeddings: torch.Tensor, noise_heads: bool) -> torch.Tensor:
        """Logits of one enqueue, rows interleaved per query: (B, Q * (1 + H) or Q, F, T)."""
        log_mag, embeddings = log_mag.contiguous(), embeddings.contiguous()
        self._set_shapes(log_mag.shape, embeddings.shape)
        buffers = {LOG_MAG: log_mag, EMBEDDINGS: embeddings}
        for name in SEPARATOR_OUTPUTS:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            buffers[name] = torch.empty(shape, dtype=self._dtypes[name], device=self.torch_device)
        for name, tensor in buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        stream = torch.cuda.current_stream(self.torch_device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise ClipsepError(f"TensorRT plan {self.plan_path.name}: execution failed (see the TensorRT log above)")
        query = buffers[QUERY_LOGITS]
        if not noise_heads:
            return query
        return torch.cat([query[:, :, None], buffers[NOISE_LOGITS]], dim=2).flatten(1, 2)


__all__ = ["TensorRTEngine", "TensorRTQueries", "check_plan_metadata", "profile_limits"]
