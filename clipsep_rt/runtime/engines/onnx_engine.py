"""The separator ONNX graph on ONNX Runtime: CPU, CUDA or TensorRT execution provider.

The graph (runtime/engines/contract.py) maps `log_mag` (B, 1, 256, T) and `embeddings`
(Q, D) to `query_logits` (B, Q, 256, T) and `noise_logits` (B, Q, H, 256, T). This
engine feeds it numpy arrays, applies the sigmoid and lays the rows out like
TorchEngine: per query, its mask, then its H noise-head masks when asked for.

`probabilities` takes and returns numpy arrays in host memory, as every engine does; on a GPU,
ONNX Runtime copies them to and from it inside `session.run`. `engine.device` says where the
graph really runs ("cpu", or the CUDA device when a GPU execution provider started) and
`engine.providers` which execution providers ONNX Runtime actually uses. Nothing here
imports torch: with this engine a separation runs without it.

GPU use needs `onnxruntime-gpu` (never together with the CPU-only `onnxruntime`
package). A GPU execution provider that ONNX Runtime could not start (missing CUDA,
cuDNN or TensorRT libraries, no GPU) makes ONNX Runtime quietly fall back to the CPU;
this engine checks and raises ClipsepError with the reason instead, unless the device
was `auto`.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.files import file_sha256
from clipsep_rt.io.user_cache import user_cache_dir
from clipsep_rt.optional import import_optional
from clipsep_rt.runtime.engines.choice import ONNXRUNTIME_FIX, installed_onnxruntime_packages
from clipsep_rt.runtime.engines.chunking import run_in_chunks
from clipsep_rt.runtime.engines.graph_outputs import GraphQueries, rows_per_query, sigmoid
from clipsep_rt.runtime.engines.contract import (
    CPU_EP,
    CUDA_EP,
    EMBEDDINGS,
    FP16_METADATA_KEY,
    GPU_EPS,
    INT8_METADATA_KEY,
    LOG_MAG,
    NOISE_LOGITS,
    PROFILE_BATCH,
    PROFILE_QUERIES,
    QUERY_LOGITS,
    SEPARATOR_INPUTS,
    SEPARATOR_OUTPUTS,
    TRT_EP,
    WORKSPACE_BYTES,
)

ONNXRUNTIME_MISSING = "onnxruntime is not installed: pip install 'clipsep-rt[onnxruntime]' (CPU) or onnxruntime-gpu (NVIDIA GPU)"

ProviderSpec = str | tuple[str, dict]


def import_onnxruntime():
    """The onnxruntime module, or a one-line ClipsepError saying which extra installs it."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise ClipsepError(ONNXRUNTIME_MISSING)
    return import_optional("onnxruntime", "onnxruntime")


def profile_shape_strings(
    window_frames: int,
    query_dim: int,
    freq_bins: int = 256,
    batch: tuple[int, int, int] = PROFILE_BATCH,
    queries: tuple[int, int, int] = PROFILE_QUERIES,
) -> dict[str, str]:
    """trt_profile_{min,opt,max}_shapes option values, e.g. 'log_mag:1x1x256x256,embeddings:1x512'."""
    result = {}
    for index, level in enumerate(("min", "opt", "max")):
        log_mag = f"{LOG_MAG}:{batch[index]}x1x{freq_bins}x{window_frames}"
        embeddings = f"{EMBEDDINGS}:{queries[index]}x{query_dim}"
        result[f"trt_profile_{level}_shapes"] = f"{log_mag},{embeddings}"
    return result


def session_providers(
    device: str,
    precision: str,
    available: list[str] | tuple[str, ...],
    cache_dir: str | Path | None = None,
    profile_shapes: dict[str, str] | None = None,
    workspace_bytes: int = WORKSPACE_BYTES,
    allowed: list[str] | tuple[str, ...] | None = None,
) -> list[ProviderSpec]:
    """The `providers` argument of onnxruntime.InferenceSession, fastest first.

    device: "cpu", "cuda" or "cuda:N". available: onnxruntime.get_available_providers().
    allowed: restrict to these provider names (the CPU provider is always kept last).
    cache_dir: TensorRT engine and timing cache folder (caching is off without one).
    profile_shapes: from `profile_shape_strings`, so TensorRT builds one engine for the
    whole batch/query range instead of rebuilding whenever a new shape shows up.
    """
    if device == "cpu":
        return [CPU_EP]
    if not device.startswith("cuda"):
        raise OptionError("device", f"expected cpu, cuda or cuda:N, got {device!r}")
    device_id = int(device.partition(":")[2] or 0)
    usable = [name for name in GPU_EPS if name in available and (allowed is None or name in allowed)]
    providers: list[ProviderSpec] = []
    if TRT_EP in usable:
        options: dict = {
            "device_id": device_id,
            "trt_fp16_enable": precision == "fp16",
            "trt_max_workspace_size": int(workspace_bytes),
        }
        if cache_dir is not None:
            options.update(
                trt_engine_cache_enable=True,
                trt_engine_cache_path=str(cache_dir),
                trt_timing_cache_enable=True,
                trt_timing_cache_path=str(cache_dir),
            )
        options.update(profile_shapes or {})
        providers.append((TRT_EP, options))
    if CUDA_EP in usable:
        providers.append((CUDA_EP, {"device_id": device_id}))
    providers.append(CPU_EP)
    return providers


def provider_names(providers: list[ProviderSpec]) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]


def explain_provider_fallback(
    requested: list[str], active: list[str], available: list[str], installed_packages: list[str] | tuple[str, ...] = ()
) -> str | None:
    """Why a CUDA run ended up without any GPU provider, or None if one is active.

    requested: provider names asked for; active: session.get_providers();
    available: onnxruntime.get_available_providers(); installed_packages: the installed
    onnxruntime distributions (to spot the CPU package shadowing onnxruntime-gpu).
    """
    if any(name in active for name in GPU_EPS):
        return None
    packages = set(installed_packages)
    if "onnxruntime" in packages and "onnxruntime-gpu" in packages:
        return (
            "onnxruntime and onnxruntime-gpu are both installed and the CPU-only package shadows the GPU one; "
            f"fix: {ONNXRUNTIME_FIX}"
        )
    if not any(name in available for name in GPU_EPS):
        return (
            f"this onnxruntime build has no GPU execution provider (available: {', '.join(available) or 'none'}); "
            "install onnxruntime-gpu instead of onnxruntime, or use device cpu"
        )
    asked = [name for name in requested if name in GPU_EPS]
    return (
        f"ONNX Runtime could not start {' or '.join(asked) or 'a GPU provider'} and fell back to the CPU "
        "(CUDA 12 / cuDNN 9 or TensorRT libraries not found, or no NVIDIA GPU; ONNX Runtime's log above has the details); "
        "use device cpu or another backend"
    )


@dataclass(frozen=True)
class GraphInfo:
    """What the ONNX file says without running it (needs the `onnx` package)."""

    fp16: bool  # weights are float16 (the FP16 export)
    inputs: dict[str, list[int | None]]  # static dims, None where symbolic
    int8: bool = False  # quantised (QDQ) graph: the INT8 export


def inspect_graph(onnx_path: str | Path) -> GraphInfo | None:
    """The graph's weight precision and input shapes, or None if `onnx` is not installed."""
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    kinds = {init.data_type for init in graph.initializer}
    inputs = {
        item.name: [dim.dim_value if dim.HasField("dim_value") else None for dim in item.type.tensor_type.shape.dim]
        for item in graph.input
    }
    fp16 = onnx.TensorProto.FLOAT16 in kinds and onnx.TensorProto.FLOAT not in kinds
    int8 = any(node.op_type in ("QuantizeLinear", "QLinearConv") for node in graph.node)
    return GraphInfo(fp16, inputs, int8)


def graph_info_from_session(session) -> GraphInfo | None:
    """The same facts from a session, for graphs `clipsep-rt export` wrote (their metadata names
    the FP16 and INT8 conversions); None for other graphs."""
    metadata = session.get_modelmeta().custom_metadata_map
    if not any(key.startswith("clipsep_rt.") for key in metadata):
        return None
    inputs = {item.name: [dim if isinstance(dim, int) else None for dim in item.shape] for item in session.get_inputs()}
    return GraphInfo(FP16_METADATA_KEY in metadata, inputs, INT8_METADATA_KEY in metadata)


def default_trt_cache_root() -> Path:
    """The user cache's ort-tensorrt/ folder (io.user_cache: e.g. ~/.cache/clipsep-rt/ort-tensorrt)."""
    return user_cache_dir("ort-tensorrt")


_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxRuntimeEngine:
    """The Engine protocol (runtime/engines/protocol.py) over an onnxruntime.InferenceSession.

    device: "cpu", "cuda", "cuda:N" or "auto" (a GPU provider if this onnxruntime has one,
    falling back to the CPU without complaint). precision: "fp32", "fp16" or "int8" ("auto":
    fp16 on CUDA, else fp32); int8 runs the INT8 ONNX file (export/int8.py) on the CPU. fp16 runs through TensorRT's fp16 mode when the TensorRT provider
    is used; on the plain CUDA provider it needs the FP16 ONNX file as `onnx_path`.
    providers: restrict the GPU providers tried (e.g. ["CUDAExecutionProvider"]).
    cache_dir: root of the TensorRT provider's engine/timing caches (default
    ~/.cache/clipsep-rt/ort-tensorrt); a subfolder per ONNX file and onnxruntime version
    keeps stale engines from being reused. threads: intra-op threads (CPU provider).
    """

    def __init__(
        self,
        onnx_path: str | Path,
        device: str = "cpu",
        precision: str = "fp32",
        providers: list[str] | None = None,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ):
        ort = import_onnxruntime()
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise ClipsepError(f"{self.onnx_path}: ONNX file not found (run clipsep-rt export first)")
        available = list(ort.get_available_providers())
        strict = device != "auto"  # auto: a GPU if onnxruntime can start one, else the CPU, quietly
        if device == "auto":
            device = "cuda" if any(name in available for name in GPU_EPS) else "cpu"
        if device != "cpu" and not device.startswith("cuda"):
            raise OptionError("device", f"expected cpu, cuda, cuda:N or auto, got {device!r}")
        explicit_precision = precision != "auto"
        if precision == "auto":
            precision = "fp16" if device.startswith("cuda") else "fp32"
        if precision not in ("fp32", "fp16", "int8"):
            raise OptionError("precision", f"the onnxruntime backend runs fp32 or fp16 (fp16 on CUDA only), or int8 (CPU, the INT8 graph), got {precision!r}")
        if precision == "fp16" and device == "cpu":
            raise OptionError("precision", "fp16 needs device cuda; the onnxruntime CPU backend runs fp32 or int8")
        if precision == "int8" and device != "cpu":
            raise OptionError("precision", "int8 runs on the CPU only (device cpu); on CUDA use fp16")
        # A GPU session starts slowly: check the graph's kind first with `onnx` (about 0.6 s to
        # import). On the CPU the session starts quickly and its metadata says the same.
        info = inspect_graph(self.onnx_path) if device.startswith("cuda") else None
        self._fp16_model: bool | None = None
        if info is not None:
            self._check_graph_kind(info, precision)

        self.precision = precision
        self.notes: list[str] = []  # what did not go as asked (device/precision auto only)
        requested = session_providers(device, precision, available, allowed=providers)
        if device.startswith("cuda") and strict and len(requested) == 1:
            reason = explain_provider_fallback([], [CPU_EP], available, installed_onnxruntime_packages())
            raise ClipsepError(f"onnxruntime on {device}: {reason}")
        if TRT_EP not in provider_names(requested):
            self._check_fp16(requested, explicit_precision)  # before a slow session start
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        if TRT_EP in provider_names(requested):
            shapes = self._static_shapes(ort, info)
            # ONNX Runtime does not notice re-exported weights or a new version: one folder each.
            cache = Path(cache_dir) if cache_dir is not None else default_trt_cache_root()
            cache = cache / f"{file_sha256(self.onnx_path)[:16]}-ort{ort.__version__}"
            cache.mkdir(parents=True, exist_ok=True)
            requested = session_providers(device, precision, available, cache, profile_shape_strings(*shapes), allowed=providers)
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), sess_options=options, providers=requested)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
            raise ClipsepError(f"{self.onnx_path}: onnxruntime cannot load this file ({exc})") from None
        if info is None:
            info = graph_info_from_session(self.session)
            if info is None or (precision == "int8" and not info.int8):  # not ours, or INT8 from before the key
                info = inspect_graph(self.onnx_path) or info
            if info is not None:
                self._check_graph_kind(info, precision)
        self.providers = list(self.session.get_providers())
        self.requested_providers = provider_names(requested)
        if device.startswith("cuda"):
            reason = explain_provider_fallback(self.requested_providers, self.providers, available, installed_onnxruntime_packages())
            if reason and strict:
                raise ClipsepError(f"onnxruntime on {device}: {reason}")
            if reason:
                self.notes.append(reason)
        self.device = device if any(name in self.providers for name in GPU_EPS) else "cpu"  # where it runs
        if self.device == "cpu" and self.precision != "int8":
            self.precision = "fp16" if self._fp16_model else "fp32"
        elif TRT_EP in self.requested_providers and TRT_EP not in self.providers:
            self.notes.append("the TensorRT execution provider did not start; running on the CUDA execution provider")
            self._check_fp16(self.providers, explicit_precision)
        # Calls beyond TensorRT's optimization profile are split (no engine rebuild mid-run).
        trt_active = TRT_EP in self.providers
        self._batch_limit = PROFILE_BATCH[2] if trt_active else None
        self._query_limit = PROFILE_QUERIES[2] if trt_active else None
        self._inputs = {item.name: item for item in self.session.get_inputs()}
        self._outputs = {item.name: item for item in self.session.get_outputs()}
        for name in SEPARATOR_INPUTS:
            if name not in self._inputs:
                raise ClipsepError(f"{self.onnx_path}: not a separator graph (no input {name!r})")
        for name in SEPARATOR_OUTPUTS:
            if name not in self._outputs:
                raise ClipsepError(f"{self.onnx_path}: not a separator graph (no output {name!r})")
        self._noise_count: int | None = None
        noise_dims = self._outputs[NOISE_LOGITS].shape
        if len(noise_dims) == 5 and isinstance(noise_dims[2], int):
            self._noise_count = noise_dims[2]

    def _check_graph_kind(self, info: GraphInfo, precision: str) -> None:
        """Refuse a graph of the wrong kind for `precision` (FP16 or INT8 file, or not)."""
        self._fp16_model = info.fp16
        if info.fp16 and precision in ("fp32", "int8"):
            raise ClipsepError(f"{self.onnx_path}: this is the FP16 ONNX file; use precision fp16 or the fp32 ONNX file")
        if (precision == "int8") != info.int8:
            wanted = "the INT8 ONNX file (clipsep-rt export --int8)" if precision == "int8" else "precision int8"
            raise ClipsepError(f"{self.onnx_path}: {'not ' if precision == 'int8' else ''}an INT8 graph; use {wanted}")

    def _check_fp16(self, providers: list[ProviderSpec], explicit: bool) -> None:
        """fp16 without TensorRT needs the FP16 ONNX file: refuse, or run fp32 if fp16 was only `auto`."""
        if self.precision != "fp16" or TRT_EP in provider_names(providers) or self._fp16_model is not False:
            return
        if explicit:
            raise ClipsepError(
                f"{self.onnx_path}: fp16 on the CUDA execution provider needs the FP16 ONNX file "
                "(or the TensorRT execution provider); pass that file, or use precision fp32"
            )
        self.precision = "fp32"
        self.notes.append("no FP16 ONNX file: the CUDA execution provider runs fp32")

    def _static_shapes(self, ort, info: GraphInfo | None) -> tuple[int, int, int]:
        """(window frames, query dim, freq bins) from the graph's input shapes."""
        if info is not None:
            inputs = info.inputs
        else:  # no `onnx` package: ask a throwaway CPU session
            probe = ort.InferenceSession(str(self.onnx_path), providers=[CPU_EP])
            inputs = {item.name: item.shape for item in probe.get_inputs()}
        try:
            log_mag, embeddings = inputs[LOG_MAG], inputs[EMBEDDINGS]
            return int(log_mag[3]), int(embeddings[1]), int(log_mag[2])
        except (KeyError, TypeError, ValueError, IndexError):
            raise ClipsepError(
                f"{self.onnx_path}: expected inputs {LOG_MAG} (B, 1, F, T) and {EMBEDDINGS} (Q, D) with static F, T and D"
            ) from None

    def _dtype(self, name: str):
        return _NUMPY_TYPES.get(self._inputs[name].type, np.float32)

    def prepare_queries(self, embeddings: np.ndarray, noise_heads: bool) -> GraphQueries:
        embeddings = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32)).astype(self._dtype(EMBEDDINGS), copy=False)
        dims = self._inputs[EMBEDDINGS].shape
        if embeddings.ndim != 2 or (isinstance(dims[1], int) and embeddings.shape[1] != dims[1]):
            raise ClipsepError(f"query embeddings of shape {embeddings.shape} do not fit this graph's {dims[1]}-dim input")
        if self._noise_count is None:  # symbolic H: ask the graph once
            dims = self._inputs[LOG_MAG].shape
            log_mag = np.zeros((1, 1, int(dims[2]), int(dims[3])), dtype=self._dtype(LOG_MAG))
            (noise,) = self.session.run([NOISE_LOGITS], {LOG_MAG: log_mag, EMBEDDINGS: embeddings[:1]})
            self._noise_count = int(noise.shape[2])
        return GraphQueries(embeddings, bool(noise_heads), self._noise_count)

    def probabilities(self, log_mag: np.ndarray, queries: GraphQueries) -> np.ndarray:
        """(B, 1, F, T) -> (B, rows, F, T) float32 sigmoid masks, in host memory."""
        x = np.ascontiguousarray(log_mag, dtype=np.float32).astype(self._dtype(LOG_MAG), copy=False)
        run = functools.partial(self._run, noise_heads=queries.noise_heads)
        logits = run_in_chunks(run, x, queries.embeddings, self._batch_limit, self._query_limit)
        return sigmoid(logits)

    def _run(self, log_mag: np.ndarray, embeddings: np.ndarray, noise_heads: bool) -> np.ndarray:
        """Logits of one call, rows interleaved per query: (B, Q * (1 + H) or Q, F, T) float32."""
        names = [QUERY_LOGITS, NOISE_LOGITS] if noise_heads else [QUERY_LOGITS]
        outputs = self.session.run(names, {LOG_MAG: log_mag, EMBEDDINGS: embeddings})
        return rows_per_query(outputs[0], outputs[1] if noise_heads else None)


__all__ = [
    "OnnxRuntimeEngine",
    "explain_provider_fallback",
    "profile_shape_strings",
    "session_providers",
]
