"""The separator ONNX graph on OpenVINO, on the CPU: bf16 where the CPU has it, without torch.

OpenVINO reads the engine folder's FP32 graph (separator.onnx, the same file ONNX Runtime
loads) and compiles it for this CPU, with the bf16 inference-precision hint on CPUs with AMX /
AVX512-BF16 (precision fp32 compiles it in fp32). Compiled for static shapes it runs twice as
fast as with the graph's dynamic batch (2-core Xeon, full-size U-Net, 4 windows per call: 78-87
against 146-163 ms), so each input shape (windows per call, queries) is compiled on first use
(about 0.3 s for the full-size U-Net) and a smaller batch is padded up to a compiled one of at
most twice its size (the last call of a file) instead of compiled again. All without torch's
2 s import. In the core install.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.user_cache import compile_openvino
from clipsep_rt.model.hardware import cpu_has_native_bf16
from clipsep_rt.optional import describe_exception, import_optional
from clipsep_rt.runtime.engines.contract import (
    EMBEDDINGS,
    LOG_MAG,
    NOISE_LOGITS,
    QUERY_LOGITS,
    SEPARATOR_INPUTS,
    SEPARATOR_OUTPUTS,
)
from clipsep_rt.runtime.engines.graph_outputs import GraphQueries, rows_per_query, sigmoid

OPENVINO_PRECISIONS = {"bf16": "bf16", "fp32": "f32"}  # ours -> OpenVINO's inference precision hint


class OpenVinoEngine:
    """The Engine protocol (runtime/engines/protocol.py) over an OpenVINO compiled model."""

    def __init__(self, onnx_path: str | Path, precision: str = "auto", threads: int | None = None):
        ov = import_optional("openvino", "openvino")
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise ClipsepError(f"{self.onnx_path}: ONNX file not found (run clipsep-rt export first)")
        if precision == "auto":
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
        if precision not in OPENVINO_PRECISIONS:
            raise OptionError("precision", f"the openvino backend runs bf16 or fp32 on the CPU, got {precision!r}")
        if precision == "bf16" and not cpu_has_native_bf16():  # OpenVINO would quietly run fp32
            raise OptionError("precision", "bf16 on openvino needs a CPU with native bf16 (AVX512-BF16 or AMX); use fp32")
        self.device = "cpu"
        self.precision = precision
        config = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._config = config
        self._core = ov.Core()
        try:
            self._graph = self._core.read_model(str(self.onnx_path))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses of its own
            raise ClipsepError(f"{self.onnx_path}: OpenVINO cannot read this graph ({describe_exception(exc)})") from None
        names = {name for port in [*self._graph.inputs, *self._graph.outputs] for name in port.get_names()}
        if not {*SEPARATOR_INPUTS, *SEPARATOR_OUTPUTS} <= names:
            raise ClipsepError(f"{self.onnx_path}: not a separator graph (tensors {sorted(names)})")
        noise_count = self._graph.output(NOISE_LOGITS).get_partial_shape()[2]
        if not noise_count.is_static:
            raise ClipsepError(f"{self.onnx_path}: the noise heads' count must be static (re-export it)")
        query_dim = self._graph.input(EMBEDDINGS).get_partial_shape()[1]
        self._query_dim = query_dim.get_length() if query_dim.is_static else None
        self._noise_count = noise_count.get_length()
        self._compiled: dict[tuple[int, ...], tuple[object, object]] = {}  # (B, 1, F, T, Q) -> (model, request)
        self._lock = threading.Lock()  # one infer request per shape: calls from several threads take turns

    def prepare_queries(self, embeddings: np.ndarray, noise_heads: bool) -> GraphQueries:
        embeddings = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        expected = self._query_dim
        if embeddings.ndim != 2 or (expected is not None and embeddings.shape[1] != expected):
            raise ClipsepError(f"query embeddings of shape {embeddings.shape} do not fit this graph's {expected}-dim input")
        return GraphQueries(embeddings, bool(noise_heads), self._noise_count)

    def probabilities(self, log_mag: np.ndarray, queries: GraphQueries) -> np.ndarray:
        """(B, 1, F, T) float32 -> (B, rows, F, T) float32 sigmoid masks, in host memory."""
        log_mag = np.ascontiguousarray(log_mag, dtype=np.float32)
        batch, window = log_mag.shape[0], log_mag.shape[1:]
        with self._lock:
            compiled = self._padded_batch(batch, window, len(queries.embeddings))
            if compiled > batch:  # a compiled shape with room: pad with zero windows, keep the real rows
                log_mag = np.concatenate([log_mag, np.zeros((compiled - batch, *window), np.float32)])
            model, request = self._compiled_for((compiled, *window, len(queries.embeddings)))
            try:
                results = request.infer({LOG_MAG: log_mag, EMBEDDINGS: queries.embeddings})
            except Exception as exc:  # noqa: BLE001 - OpenVINO's own RuntimeError types
                raise ClipsepError(f"{self.onnx_path}: OpenVINO inference failed ({describe_exception(exc)})") from None
            query = results[model.output(QUERY_LOGITS)][:batch]
            noise = results[model.output(NOISE_LOGITS)][:batch] if queries.noise_heads else None
            return sigmoid(rows_per_query(query, noise))  # copies out of the request's buffers

    def _padded_batch(self, batch: int, window: tuple[int, ...], queries: int) -> int:
        """The smallest compiled batch size of this shape that holds `batch` windows without more
        than doubling the work, else `batch` (compiled anew)."""
        room = [key[0] for key in self._compiled if key[1:] == (*window, queries) and batch <= key[0] <= 2 * batch]
        return min(room, default=batch)

    def _compiled_for(self, shape: tuple[int, ...]) -> tuple[object, object]:
        """The model compiled for log_mag (B, 1, F, T) and embeddings (Q, D), and its request."""
        if shape not in self._compiled:
            *log_mag, queries = shape
            graph = self._graph.clone()
            embedding_dim = self._query_dim or -1
            graph.reshape({LOG_MAG: list(log_mag), EMBEDDINGS: [queries, embedding_dim]})
            try:
                model = compile_openvino(self._core, graph, self._config)
            except Exception as exc:  # noqa: BLE001 - OpenVINO's own RuntimeError types
                raise ClipsepError(f"{self.onnx_path}: OpenVINO cannot compile this graph ({describe_exception(exc)})") from None
            self._compiled[shape] = (model, model.create_infer_request())
        return self._compiled[shape]


__all__ = ["OpenVinoEngine"]
