"""ONNX Runtime, TensorRT and backend choice: everything that runs without a GPU.

The onnxruntime CPU engine is compared with TorchEngine on a tiny exported model. The
CUDA / TensorRT paths are tested up to the library calls: provider lists, fallback
explanations, build configuration, engine metadata, rebuild decisions, backend choice.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.runtime.engines import tensorrt_plan as tensorrt_build
from clipsep_rt.runtime.engines.tensorrt_plan import (
    TENSORRT_MISSING,
    TensorRTBuildConfig,
    engine_metadata_mismatch,
    ensure_engine,
    optimization_profile_shapes,
)
from clipsep_rt.model import CLIPSepSeparator
from clipsep_rt.runtime.engines import onnx_engine
from clipsep_rt.runtime.engines.choice import (
    Environment,
    choose_backend,
    engine_files,
)
from clipsep_rt.runtime.engines.contract import CPU_EP, CUDA_EP, TRT_EP
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.runtime.offline import OfflineSeparator, WindowingOptions
from clipsep_rt.runtime.engines.onnx_engine import (
    OnnxRuntimeEngine,
    explain_provider_fallback,
    profile_shape_strings,
    session_providers,
)
from clipsep_rt.runtime.engines.tensorrt_engine import (
    TensorRTEngine,
    check_plan_metadata,
    profile_limits,
)

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

CONFIG = ModelConfig(ngf=4)
T = SpectralConfig().window_frames


class _Wrapper(torch.nn.Module):
    def __init__(self, model: CLIPSepSeparator):
        super().__init__()
        self.model = model

    def forward(self, log_mag, embeddings):
        out = self.model(log_mag, embeddings)
        return out.query, out.noise


def export_tiny_separator(model: CLIPSepSeparator, path: Path) -> Path:
    """The separator graph's interface (see clipsep_rt/export/separator_onnx.py), tiny weights."""
    x = torch.randn(2, 1, 256, T)
    q = torch.randn(3, model.config.query_dim)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(model, x, q, path)
    return path


def _export(model, x, q, path):
    torch.onnx.export(
        _Wrapper(model).eval(),
        (x, q),
        str(path),
        opset_version=17,
        dynamo=False,
        input_names=["log_mag", "embeddings"],
        output_names=["query_logits", "noise_logits"],
        dynamic_axes={
            "log_mag": {0: "batch"},
            "embeddings": {0: "queries"},
            "query_logits": {0: "batch", 1: "queries"},
            "noise_logits": {0: "batch", 1: "queries"},
        },
    )


@pytest.fixture(scope="module")
def tiny_model() -> CLIPSepSeparator:
    torch.manual_seed(0)
    model = CLIPSepSeparator(CONFIG).eval()
    with torch.no_grad():  # non-trivial heads, so masks are not all near 0.5
        model.heads.scale.normal_(0, 2)
        model.heads.bias.fill_(0.1)
    return model


@pytest.fixture(scope="module")
def tiny_onnx(tiny_model, tmp_path_factory) -> Path:
    return export_tiny_separator(copy.deepcopy(tiny_model), tmp_path_factory.mktemp("onnx") / "separator.onnx")


@pytest.fixture(scope="module")
def torch_engine(tiny_model) -> TorchEngine:
    return TorchEngine(copy.deepcopy(tiny_model), "cpu", "fp32")


@pytest.fixture(scope="module")
def ort_engine(tiny_onnx) -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(tiny_onnx, "cpu", "fp32", threads=2)


def _embeddings(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, CONFIG.query_dim)).astype(np.float32)


# -- onnxruntime engine on the CPU ---------------------------------------------------------


@pytest.mark.parametrize("noise_heads", [False, True])
@pytest.mark.parametrize("queries", [1, 5])
@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_matches_torch(torch_engine, ort_engine, batch, queries, noise_heads):
    embeddings = _embeddings(queries, seed=queries)
    log_mag = np.random.default_rng(batch).standard_normal((batch, 1, 256, T)).astype(np.float32)
    expected = torch_engine.probabilities(log_mag, torch_engine.prepare_queries(embeddings, noise_heads))
    prepared = ort_engine.prepare_queries(embeddings, noise_heads)
    got = ort_engine.probabilities(log_mag, prepared)
    rows = queries * (1 + CONFIG.noise_heads) if noise_heads else queries
    assert prepared.rows == rows
    assert got.shape == expected.shape == (batch, rows, 256, T)
    assert isinstance(got, np.ndarray) and isinstance(expected, np.ndarray)
    assert got.dtype == expected.dtype == np.float32 and ort_engine.device == torch_engine.device == "cpu"
    assert float(expected.std()) > 0.01  # the comparison means something
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_onnxruntime_row_layout_is_query_then_its_noise_heads(ort_engine, tiny_model):
    embeddings = _embeddings(3)
    log_mag = torch.randn(2, 1, 256, T)
    got = ort_engine.probabilities(log_mag.numpy(), ort_engine.prepare_queries(embeddings, True))
    with torch.no_grad():
        logits = tiny_model(log_mag, torch.from_numpy(embeddings))
    heads = 1 + CONFIG.noise_heads
    for q in range(3):
        np.testing.assert_allclose(got[:, q * heads], logits.query[:, q].sigmoid().numpy(), atol=1e-4, rtol=0)
        for h in range(CONFIG.noise_heads):
            np.testing.assert_allclose(got[:, q * heads + 1 + h], logits.noise[:, q, h].sigmoid().numpy(), atol=1e-4, rtol=0)


def test_onnxruntime_splits_calls_beyond_the_profile(ort_engine, torch_engine):
    """With the TensorRT provider, batches and query sets beyond the profile are split."""
    embeddings = _embeddings(5)
    log_mag = torch.randn(5, 1, 256, T).numpy()
    whole = ort_engine.probabilities(log_mag, ort_engine.prepare_queries(embeddings, True))
    ort_engine._batch_limit, ort_engine._query_limit = 2, 2
    try:
        split = ort_engine.probabilities(log_mag, ort_engine.prepare_queries(embeddings, True))
    finally:
        ort_engine._batch_limit = ort_engine._query_limit = None
    assert split.shape == whole.shape == (5, 5 * (1 + CONFIG.noise_heads), 256, T)
    np.testing.assert_allclose(split, whole, atol=1e-5, rtol=0)


def test_onnxruntime_engine_reports_where_it_runs(ort_engine):
    assert ort_engine.providers == [CPU_EP]
    assert ort_engine.device == "cpu" and ort_engine.precision == "fp32"


def test_onnxruntime_engine_refusals(tiny_onnx, tmp_path):
    with pytest.raises(ClipsepError, match="not found"):
        OnnxRuntimeEngine(tmp_path / "missing.onnx")
    with pytest.raises(OptionError, match="fp16 needs device cuda"):
        OnnxRuntimeEngine(tiny_onnx, "cpu", "fp16")
    with pytest.raises(OptionError, match="fp32 or fp16"):
        OnnxRuntimeEngine(tiny_onnx, "cpu", "bf16")
    engine = OnnxRuntimeEngine(tiny_onnx, "cpu", "auto")
    assert engine.precision == "fp32"
    with pytest.raises(ClipsepError, match="512-dim"):
        engine.prepare_queries(np.zeros((2, 77), np.float32), False)


def test_offline_separation_onnxruntime_matches_torch(torch_engine, ort_engine):
    rng = np.random.default_rng(3)
    t = np.arange(150_000) / 16000
    mixture = (0.3 * np.sin(2 * np.pi * (300 * t + 50 * t**2)) + 0.1 * rng.standard_normal(len(t))).astype(np.float32)
    embeddings = _embeddings(2)
    options = WindowingOptions(overlap_frames=64, batch_windows=2)
    outputs = []
    for engine in (torch_engine, ort_engine):
        separator = OfflineSeparator(engine, options=options)
        outputs.append(separator.separate(mixture, engine.prepare_queries(embeddings, True), union_rows=[0, 3]))
    assert outputs[0].shape == (2 * (1 + CONFIG.noise_heads) + 1, len(mixture))
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-4, rtol=0)


# -- onnxruntime providers (pure) ------------------------------------------------------------

ALL_EPS = [TRT_EP, CUDA_EP, CPU_EP]


def test_session_providers_cpu():
    assert session_providers("cpu", "fp32", ALL_EPS) == [CPU_EP]


def test_session_providers_cuda_fp16_with_tensorrt(tmp_path):
    shapes = profile_shape_strings(256, 512)
    providers = session_providers("cuda", "fp16", ALL_EPS, tmp_path, shapes)
    assert [p if isinstance(p, str) else p[0] for p in providers] == ALL_EPS
    trt_options = providers[0][1]
    assert trt_options == {
        "device_id": 0,
        "trt_fp16_enable": True,
        "trt_max_workspace_size": 4 << 30,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(tmp_path),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(tmp_path),
        "trt_profile_min_shapes": "log_mag:1x1x256x256,embeddings:1x512",
        "trt_profile_opt_shapes": "log_mag:8x1x256x256,embeddings:4x512",
        "trt_profile_max_shapes": "log_mag:64x1x256x256,embeddings:16x512",
    }
    assert providers[1] == (CUDA_EP, {"device_id": 0})


def test_session_providers_variants():
    # fp32, second GPU, no cache folder: no caching options, TensorRT fp16 off.
    trt_options = session_providers("cuda:1", "fp32", ALL_EPS)[0][1]
    assert trt_options["device_id"] == 1 and trt_options["trt_fp16_enable"] is False
    assert "trt_engine_cache_enable" not in trt_options
    # Without the TensorRT provider; or restricted to CUDA.
    assert session_providers("cuda", "fp16", [CUDA_EP, CPU_EP]) == [(CUDA_EP, {"device_id": 0}), CPU_EP]
    assert session_providers("cuda", "fp16", ALL_EPS, allowed=[CUDA_EP]) == [(CUDA_EP, {"device_id": 0}), CPU_EP]
    # A CPU-only onnxruntime: only the CPU provider is left.
    assert session_providers("cuda", "fp16", [CPU_EP]) == [CPU_EP]
    with pytest.raises(ClipsepError):
        session_providers("mps", "fp32", ALL_EPS)


def test_fallback_explanations():
    assert explain_provider_fallback([TRT_EP, CUDA_EP, CPU_EP], [CUDA_EP, CPU_EP], ALL_EPS) is None
    only_cpu = explain_provider_fallback([CPU_EP], [CPU_EP], [CPU_EP], ["onnxruntime"])
    assert "no GPU execution provider" in only_cpu and "onnxruntime-gpu" in only_cpu
    trap = explain_provider_fallback([CPU_EP], [CPU_EP], [CPU_EP], ["onnxruntime", "onnxruntime-gpu"])
    assert "pip uninstall onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in trap
    silent = explain_provider_fallback([CUDA_EP, CPU_EP], [CPU_EP], [CUDA_EP, CPU_EP], ["onnxruntime-gpu"])
    assert "could not start CUDAExecutionProvider" in silent and "fell back to the CPU" in silent


def test_cuda_request_with_cpu_only_onnxruntime_is_explained(tiny_onnx, monkeypatch):
    monkeypatch.setattr(onnx_engine, "installed_onnxruntime_packages", lambda: ("onnxruntime",))
    with pytest.raises(ClipsepError, match="no GPU execution provider"):
        OnnxRuntimeEngine(tiny_onnx, "cuda", "fp32")
    monkeypatch.setattr(onnx_engine, "installed_onnxruntime_packages", lambda: ("onnxruntime", "onnxruntime-gpu"))
    with pytest.raises(ClipsepError, match="shadows the GPU one"):
        OnnxRuntimeEngine(tiny_onnx, "cuda", "fp32")
    # auto: the CPU is fine.
    assert OnnxRuntimeEngine(tiny_onnx, "auto").device == "cpu"


def test_silent_fallback_to_cpu_is_caught(tiny_onnx, monkeypatch, tmp_path):
    """GPU providers are listed but cannot start: onnxruntime quietly runs on the CPU instead."""
    import onnxruntime

    monkeypatch.setattr(onnx_engine, "installed_onnxruntime_packages", lambda: ("onnxruntime-gpu",))
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA_EP, CPU_EP])
    # (pytest.warns: onnxruntime's own complaint about the provider)
    with pytest.warns(UserWarning), pytest.raises(ClipsepError, match="could not start CUDAExecutionProvider"):
        OnnxRuntimeEngine(tiny_onnx, "cuda", "fp32")
    # fp16 on the CUDA provider needs the FP16 file: refused before the session starts ...
    with pytest.raises(ClipsepError, match="needs the FP16 ONNX file"):
        OnnxRuntimeEngine(tiny_onnx, "cuda", "fp16")
    # ... or, with precision auto, fp32 and a note.
    with pytest.warns(UserWarning):
        engine = OnnxRuntimeEngine(tiny_onnx, "auto", "auto")
    assert engine.requested_providers == [CUDA_EP, CPU_EP] and engine.providers == [CPU_EP]
    assert engine.device == "cpu" and engine.precision == "fp32"
    assert any("FP16 ONNX file" in note for note in engine.notes)
    assert any("could not start" in note for note in engine.notes)

    # With the TensorRT provider listed: engine cache folder per ONNX file and onnxruntime version.
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [TRT_EP, CUDA_EP, CPU_EP])
    expected = "could not start TensorrtExecutionProvider or CUDAExecutionProvider"
    with pytest.warns(UserWarning), pytest.raises(ClipsepError, match=expected):
        OnnxRuntimeEngine(tiny_onnx, "cuda:0", "fp16", cache_dir=tmp_path)
    with pytest.warns(UserWarning):
        engine = OnnxRuntimeEngine(tiny_onnx, "auto", "fp16", cache_dir=tmp_path)
    assert engine.requested_providers == [TRT_EP, CUDA_EP, CPU_EP] and engine.device == "cpu"
    assert engine.precision == "fp32" and engine._batch_limit is None  # no TensorRT: no splitting
    (cache,) = tmp_path.iterdir()
    assert cache.name.endswith(f"-ort{onnxruntime.__version__}")
    embeddings = _embeddings(2)
    assert engine.probabilities(np.zeros((1, 1, 256, T), np.float32), engine.prepare_queries(embeddings, True)).shape == (1, 6, 256, T)


def test_fp16_onnx_file_is_recognised(tmp_path, tiny_onnx):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 2), np.float16), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [None, 2])],
        [weight],
    )
    path = tmp_path / "separator.fp16.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert onnx_engine.inspect_graph(path).fp16 is True
    info = onnx_engine.inspect_graph(tiny_onnx)
    assert info.fp16 is False and info.inputs == {"log_mag": [None, 1, 256, T], "embeddings": [None, CONFIG.query_dim]}
    with pytest.raises(ClipsepError, match="this is the FP16 ONNX file"):
        OnnxRuntimeEngine(path, "cpu", "fp32")


# -- TensorRT (no library here) ----------------------------------------------------------------


def test_build_config_and_profile_shapes():
    config = TensorRTBuildConfig()
    assert config.fp16 and config.workspace_bytes == 4 * 1024**3
    assert config.batch == (1, 8, 64) and config.queries == (1, 4, 16)
    assert optimization_profile_shapes(config, 256, 512) == {
        "log_mag": ((1, 1, 256, 256), (8, 1, 256, 256), (64, 1, 256, 256)),
        "embeddings": ((1, 512), (4, 512), (16, 512)),
    }
    small = TensorRTBuildConfig(batch=(1, 2, 4), queries=[2, 2, 2])
    assert optimization_profile_shapes(small, 128, 384)["embeddings"] == ((2, 384), (2, 384), (2, 384))
    for bad in ({"batch": (4, 2, 8)}, {"queries": (0, 1, 2)}, {"batch": (1, 2)}, {"workspace_bytes": 0}):
        with pytest.raises(OptionError, match=next(iter(bad))):
            TensorRTBuildConfig(**bad)


A100 = {"tensorrt_version": "10.3.0", "gpu_name": "NVIDIA A100", "compute_capability": [8, 0]}
H100 = {"tensorrt_version": "10.7.0", "gpu_name": "NVIDIA H100", "compute_capability": (9, 0)}


def test_engine_metadata_mismatch_messages():
    assert engine_metadata_mismatch(A100, dict(A100, compute_capability=(8, 0))) is None
    assert engine_metadata_mismatch(A100, H100) == (
        "built with TensorRT 10.3.0 on NVIDIA A100 (sm80); this machine has TensorRT 10.7.0 on NVIDIA H100 (sm90)"
    )
    assert "TensorRT 10.7.0 on NVIDIA A100" in engine_metadata_mismatch(A100, dict(A100, tensorrt_version="10.7.0"))
    built = dict(A100, onnx_sha256="a" * 64, config=TensorRTBuildConfig().identity())
    assert engine_metadata_mismatch(built, dict(A100, onnx_sha256="a" * 64, config=TensorRTBuildConfig().identity())) is None
    assert "ONNX file changed" in engine_metadata_mismatch(built, dict(A100, onnx_sha256="b" * 64))
    other = TensorRTBuildConfig(batch=(1, 8, 128)).identity()
    assert "settings" in engine_metadata_mismatch(built, dict(A100, config=other))
    assert "incomplete" in engine_metadata_mismatch({"gpu_name": "x"}, A100)


def test_plan_metadata_check_and_limits(tmp_path):
    plan = tmp_path / "separator.plan"
    with pytest.raises(ClipsepError, match="separator.json .* missing"):
        check_plan_metadata(plan, None, H100)
    with pytest.raises(ClipsepError, match="built with TensorRT 10.3.0 on NVIDIA A100 .*rebuild"):
        check_plan_metadata(plan, A100, H100)
    check_plan_metadata(plan, H100, H100)
    shapes = optimization_profile_shapes(TensorRTBuildConfig(), 256, 512)
    metadata = json.loads(json.dumps({"profile_shapes": shapes}))
    assert profile_limits(metadata) == (64, 16) and profile_limits({}) == (None, None)


def test_missing_tensorrt_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    assert TENSORRT_MISSING == "TensorRT is not installed: pip install 'clipsep-rt[gpu]' (needs an NVIDIA GPU)"
    plan = tmp_path / "separator.plan"
    plan.write_bytes(b"plan")
    for call in (
        lambda: TensorRTEngine(plan),
        lambda: tensorrt_build.build_engine(tmp_path / "a.onnx", plan),
        tensorrt_build.current_machine,
    ):
        with pytest.raises(ClipsepError) as error:
            call()
        assert str(error.value) == TENSORRT_MISSING


def _fake_plan(onnx_path: Path, plan_path: Path, machine: dict, config: TensorRTBuildConfig) -> None:
    plan_path.write_bytes(b"plan")
    shapes = optimization_profile_shapes(config, 256, 512)
    tensorrt_build.write_metadata(plan_path, machine, onnx_path, config, shapes)


def test_ensure_engine_rebuilds_only_when_needed(tmp_path, monkeypatch):
    onnx_path, plan = tmp_path / "separator.onnx", tmp_path / "separator.plan"
    onnx_path.write_bytes(b"graph v1")
    machine = dict(H100)
    builds = []
    lines = []

    def logged() -> str:
        text = "\n".join(lines)
        lines.clear()
        return text

    def fake_build(onnx, plan_path, config, log=None):
        builds.append(config)
        _fake_plan(onnx, plan_path, machine, config)
        return plan_path

    monkeypatch.setattr(tensorrt_build, "build_engine", fake_build)
    monkeypatch.setattr(tensorrt_build, "current_machine", lambda: dict(machine))
    config = TensorRTBuildConfig()

    assert ensure_engine(onnx_path, plan, config, log=lines.append) == plan and len(builds) == 1  # no plan yet
    assert "building TensorRT engine separator.plan: no engine plan yet" in logged()
    assert ensure_engine(onnx_path, plan, config, log=lines.append) == plan and len(builds) == 1  # up to date: kept
    assert logged() == ""

    machine.update(A100)  # the plan was built on another GPU / TensorRT
    ensure_engine(onnx_path, plan, config, log=lines.append)
    assert len(builds) == 2
    assert "rebuilding TensorRT engine separator.plan: built with TensorRT 10.7.0 on NVIDIA H100 (sm90); " in logged()

    onnx_path.write_bytes(b"graph v2, re-exported")
    ensure_engine(onnx_path, plan, config, log=lines.append)
    assert len(builds) == 3 and "ONNX file changed" in logged()

    ensure_engine(onnx_path, plan, TensorRTBuildConfig(fp16=False), log=lines.append)
    assert len(builds) == 4 and builds[-1].fp16 is False

    (tmp_path / "separator.json").write_text("not json")
    ensure_engine(onnx_path, plan, TensorRTBuildConfig(fp16=False), log=lines.append)
    assert len(builds) == 5 and "missing or unreadable" in logged()

    with pytest.raises(ClipsepError, match="ONNX file not found"):
        ensure_engine(tmp_path / "nope.onnx", plan, config)


class _Recorder:
    """Stands in for any TensorRT object: records calls, returns another recorder."""

    def __init__(self, log, name="trt", returns=None):
        self._log, self._name, self._returns = log, name, returns or {}

    def __getattr__(self, attr):
        name = f"{self._name}.{attr}"

        def call(*args, **kwargs):
            self._log.append((name, args))
            result = self._returns.get(attr)
            return result(*args) if callable(result) else (result if result is not None else _Recorder(self._log, name, self._returns))

        return call


def test_build_engine_against_a_fake_tensorrt(tmp_path, monkeypatch):
    """The TensorRT calls build_engine makes, and the files it writes (the real build needs a GPU)."""
    log = []

    class Input:
        def __init__(self, name, shape):
            self.name, self.shape = name, shape

    inputs = [Input("log_mag", (-1, 1, 256, 256)), Input("embeddings", (-1, 512))]

    class Network:
        num_inputs = 2

        def get_input(self, i):
            return inputs[i]

    class Parser:
        num_errors = 0

        def __init__(self, network, logger):
            log.append(("OnnxParser", ()))

        def parse_from_file(self, path):
            log.append(("parse_from_file", (path,)))
            return True

    returns = {  # IHostMemory supports the buffer protocol: bytes stand in for it
        "create_network": lambda flags: Network(),
        "build_serialized_network": lambda network, config: b"serialized plan",
        "serialize": lambda: b"timing cache",
    }
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.7.0"
    fake.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    fake.Builder = lambda logger: _Recorder(log, "builder", returns)
    fake.OnnxParser = Parser
    fake.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    fake.BuilderFlag = types.SimpleNamespace(FP16="FP16")
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(tensorrt_build, "current_machine", lambda: dict(H100))

    onnx_path = tmp_path / "separator.onnx"
    onnx_path.write_bytes(b"graph")
    cache = tmp_path / "timing.cache"
    config = TensorRTBuildConfig(batch=(1, 4, 32), timing_cache=cache)
    plan = tensorrt_build.build_engine(onnx_path, tmp_path / "out" / "separator.plan", config)

    assert plan.read_bytes() == b"serialized plan" and cache.read_bytes() == b"timing cache"
    calls = [(name, args) for name, args in log]
    assert ("builder.create_builder_config.set_memory_pool_limit", ("WORKSPACE", 4 << 30)) in calls
    assert ("builder.create_builder_config.set_flag", ("FP16",)) in calls
    assert ("builder.create_optimization_profile.set_shape", ("log_mag", (1, 1, 256, 256), (4, 1, 256, 256), (32, 1, 256, 256))) in calls
    assert ("builder.create_optimization_profile.set_shape", ("embeddings", (1, 512), (4, 512), (16, 512))) in calls
    assert ("builder.create_builder_config.create_timing_cache", (b"",)) in calls
    metadata = json.loads(plan.with_suffix(".json").read_text())
    assert metadata["tensorrt_version"] == "10.7.0" and metadata["gpu_name"] == "NVIDIA H100"
    assert metadata["compute_capability"] == [9, 0] and metadata["fp16"] is True
    assert metadata["profile_shapes"]["log_mag"][2] == [32, 1, 256, 256]
    assert metadata["onnx_sha256"] == __import__("hashlib").sha256(b"graph").hexdigest()
    assert metadata["created"]
    assert sorted(p.name for p in plan.parent.iterdir()) == ["separator.json", "separator.plan"]  # no temp files left


def _host_view(address: int, shape: tuple) -> np.ndarray:
    """float32 numpy view of memory a (CPU) tensor's data_ptr points at."""
    count = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_float * count).from_address(address)).reshape(shape)


class _FakeContext:
    """An IExecutionContext stand-in: runs the torch model on the buffers it is pointed at."""

    def __init__(self, model):
        self.model, self.shapes, self.addresses, self.calls = model, {}, {}, []

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return self.shapes[name][0] <= 2  # the profile's maximum in this test

    def get_tensor_shape(self, name):
        batch, queries = self.shapes["log_mag"][0], self.shapes["embeddings"][0]
        return {"query_logits": (batch, queries, 256, T), "noise_logits": (batch, queries, CONFIG.noise_heads, 256, T)}[name]

    def set_tensor_address(self, name, address):
        self.addresses[name] = address

    def execute_async_v3(self, stream_handle):
        self.calls.append((self.shapes["log_mag"][0], self.shapes["embeddings"][0]))
        log_mag = _host_view(self.addresses["log_mag"], self.shapes["log_mag"])
        embeddings = _host_view(self.addresses["embeddings"], self.shapes["embeddings"])
        with torch.no_grad():
            out = self.model(torch.from_numpy(log_mag.copy()), torch.from_numpy(embeddings.copy()))
        _host_view(self.addresses["query_logits"], tuple(out.query.shape))[...] = out.query.numpy()
        _host_view(self.addresses["noise_logits"], tuple(out.noise.shape))[...] = out.noise.numpy()
        return True


def test_tensorrt_engine_calls_split_and_rows(tiny_model, torch_engine, monkeypatch):
    """TensorRTEngine's per-call plumbing on a fake context (CPU buffers; the real one needs CUDA)."""
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(cuda_stream=0))
    engine = TensorRTEngine.__new__(TensorRTEngine)
    engine.torch_device, engine.device = torch.device("cpu"), "cpu"
    engine.precision, engine.plan_path = "fp32", Path("separator.plan")
    engine.context = _FakeContext(tiny_model)
    engine._dtypes = dict.fromkeys(["log_mag", "embeddings", "query_logits", "noise_logits"], torch.float32)
    engine._batch_limit, engine._query_limit, engine._noise_count = 2, 2, CONFIG.noise_heads
    embeddings, log_mag = _embeddings(3), torch.randn(5, 1, 256, T).numpy()
    for noise_heads in (False, True):
        prepared = engine.prepare_queries(embeddings, noise_heads)
        got = engine.probabilities(log_mag, prepared)
        expected = torch_engine.probabilities(log_mag, torch_engine.prepare_queries(embeddings, noise_heads))
        assert prepared.rows == expected.shape[1]
        assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert engine.context.calls[:6] == [(2, 2), (2, 1), (2, 2), (2, 1), (1, 2), (1, 1)]
    engine._batch_limit = None  # a shape the profile refuses
    with pytest.raises(ClipsepError, match="does not accept log_mag"):
        engine.probabilities(log_mag, prepared)


# -- backend choice ------------------------------------------------------------------------------

FILES = {"onnx": "separator.onnx", "onnx_fp16": "separator.fp16.onnx", "tensorrt_plan": "separator.plan"}
GPU_BOX = Environment(
    torch_cuda=True,
    cuda_device_name="NVIDIA H100",
    onnxruntime_version="1.20.0",
    onnxruntime_providers=(TRT_EP, CUDA_EP, CPU_EP),
    onnxruntime_packages=("onnxruntime-gpu",),
    tensorrt_version="10.7.0",
)
CPU_BOX = Environment(onnxruntime_version="1.20.0", onnxruntime_providers=(CPU_EP,), onnxruntime_packages=("onnxruntime",))


def _pick(env, manifest=FILES, requested="auto", device="auto"):
    choice = choose_backend(requested, device, manifest, env)
    return choice.name, choice.provider, choice.device, choice.precision


def test_auto_on_cuda_prefers_in_order():
    assert _pick(GPU_BOX) == ("tensorrt", None, "cuda", "fp16")
    no_plan = {"onnx": "separator.onnx"}
    choice = choose_backend("auto", "auto", no_plan, GPU_BOX)
    assert (choice.name, choice.provider, choice.artifact) == ("onnxruntime", TRT_EP, "onnx")
    assert choice.reasons == ["tensorrt: no TensorRT plan in the engine dir (run clipsep-rt export --tensorrt)"]
    no_trt = Environment(**{**GPU_BOX.__dict__, "tensorrt_version": None, "onnxruntime_providers": (CUDA_EP, CPU_EP)})
    choice = choose_backend("auto", "cuda", FILES, no_trt)
    assert (choice.name, choice.precision) == ("torch", "fp16")
    assert choice.reasons[0].startswith("tensorrt: not installed")
    assert choice.reasons[1].startswith("onnxruntime TensorRT provider: this onnxruntime has no TensorrtExecutionProvider")
    # onnxruntime-gpu but a CPU-only PyTorch: the CUDA provider, with the FP16 file when there is one.
    cpu_torch = Environment(**{**no_trt.__dict__, "torch_cuda": False})
    assert _pick(cpu_torch, device="cuda") == ("onnxruntime", CUDA_EP, "cuda", "fp16")
    assert choose_backend("auto", "cuda", FILES, cpu_torch).artifact == "onnx_fp16"
    assert _pick(cpu_torch, {"onnx": "x.onnx"}, device="cuda") == ("onnxruntime", CUDA_EP, "cuda", "fp32")
    with pytest.raises(ClipsepError, match="no backend can run on cuda"):
        choose_backend("auto", "cuda", FILES, Environment())


def test_auto_on_cpu():
    bf16_box = Environment(**{**CPU_BOX.__dict__, "cpu_native_bf16": True})
    assert _pick(bf16_box) == ("torch", None, "cpu", "bf16")
    choice = choose_backend("auto", "auto", FILES, CPU_BOX)
    assert (choice.name, choice.provider, choice.precision) == ("onnxruntime", CPU_EP, "fp32")
    assert choice.reasons == ["cuda: PyTorch sees no CUDA GPU", "openvino bf16: not installed (pip install 'clipsep-rt[openvino]')",
                              "torch bf16: this CPU has no native bf16 (AVX512-BF16 or AMX)"]
    choice = choose_backend("auto", "cpu", None, CPU_BOX)
    assert (choice.name, choice.precision) == ("torch", "fp32")
    assert "onnxruntime CPU: no ONNX file in the engine dir (run clipsep-rt export)" in choice.reasons
    choice = choose_backend("auto", "cpu", FILES, Environment())
    assert "onnxruntime CPU: not installed (pip install 'clipsep-rt[onnxruntime]')" in choice.reasons
    assert _pick(GPU_BOX, device="cpu") == ("onnxruntime", CPU_EP, "cpu", "fp32")  # a GPU box asked for the CPU


def test_both_onnxruntime_packages_trap():
    trap = Environment(**{**GPU_BOX.__dict__, "onnxruntime_providers": ("AzureExecutionProvider", CPU_EP),
                          "onnxruntime_packages": ("onnxruntime", "onnxruntime-gpu"), "tensorrt_version": None})
    assert trap.onnxruntime_conflict and trap.onnxruntime_gpu_installed
    choice = choose_backend("auto", "cuda", FILES, trap)
    assert choice.name == "torch"
    fix = "pip uninstall onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
    assert any(reason.startswith("onnxruntime TensorRT provider: onnxruntime and onnxruntime-gpu are both installed") and fix in reason
               for reason in choice.reasons)
    with pytest.raises(ClipsepError, match="shadows the GPU one"):
        choose_backend("onnxruntime", "cuda", FILES, trap)
    # Both installed, the GPU one imported last: it works for now; say how to make it last.
    lucky = Environment(**{**trap.__dict__, "onnxruntime_providers": (CUDA_EP, CPU_EP), "torch_cuda": False})
    choice = choose_backend("auto", "cuda", FILES, lucky)
    assert (choice.name, choice.provider) == ("onnxruntime", CUDA_EP)
    assert choice.reasons[-1].startswith("warning: onnxruntime and onnxruntime-gpu are both installed") and fix in choice.reasons[-1]


def test_requested_backends_are_validated():
    assert _pick(GPU_BOX, requested="torch") == ("torch", None, "cuda", "fp16")
    assert _pick(GPU_BOX, requested="onnxruntime") == ("onnxruntime", TRT_EP, "cuda", "fp16")
    assert _pick(GPU_BOX, requested="onnxruntime", device="cpu") == ("onnxruntime", CPU_EP, "cpu", "fp32")
    with pytest.raises(ClipsepError, match="no ONNX file in the engine dir"):
        choose_backend("onnxruntime", "cpu", {}, CPU_BOX)
    with pytest.raises(ClipsepError, match="onnxruntime CPU: not installed"):
        choose_backend("onnxruntime", "cpu", FILES, Environment())
    with pytest.raises(ClipsepError, match="tensorrt: not installed"):
        choose_backend("tensorrt", "auto", FILES, CPU_BOX)
    with pytest.raises(OptionError, match="needs an NVIDIA GPU"):
        choose_backend("tensorrt", "cpu", FILES, GPU_BOX)
    with pytest.raises(ClipsepError, match="torch fp16: PyTorch sees no CUDA GPU"):
        choose_backend("torch", "cuda", FILES, CPU_BOX)
    # TensorRT without a plan yet: it will be built from the ONNX file.
    choice = choose_backend("tensorrt", "cuda", {"onnx": "separator.onnx"}, GPU_BOX)
    assert choice.name == "tensorrt" and "will be built" in choice.reasons[0]
    with pytest.raises(ClipsepError, match="no ONNX file or TensorRT plan"):
        choose_backend("tensorrt", "cuda", {}, GPU_BOX)
    with pytest.raises(OptionError, match="backend: expected one of .*, got 'jax'"):
        choose_backend("jax", "auto", FILES, GPU_BOX)


def test_engine_dir_manifest():
    assert engine_files(None) == {"has_onnx": False, "has_onnx_fp16": False, "has_onnx_int8": False, "has_tensorrt_plan": False}
    assert engine_files({"onnx": "a.onnx", "tensorrt_plan": "a.plan", "onnx_fp16": ""}) == {
        "has_onnx": True, "has_onnx_fp16": False, "has_onnx_int8": False, "has_tensorrt_plan": True}
    assert engine_files({"onnx": "a.onnx", "onnx_int8": "a.int8.onnx"})["has_onnx_int8"]


def test_probe_environment_here():
    from clipsep_rt.runtime.engines.choice import probe_environment

    env = probe_environment({"onnx": "separator.onnx"})
    assert env.onnxruntime_installed and CPU_EP in env.onnxruntime_providers and env.has_onnx
    assert "onnxruntime" in env.onnxruntime_packages and not env.onnxruntime_conflict
    assert env.torch_cuda == torch.cuda.is_available()
