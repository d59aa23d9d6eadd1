"""The OpenVINO engine: the exported graph in bf16 / fp32 on the CPU, its shapes, and `auto`."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import snr_db

from clipsep_rt.api import Separator
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.model.hardware import cpu_has_native_bf16
from clipsep_rt.model.weights import default_engine_dir
from clipsep_rt.runtime.engines.choice import Environment, choose_backend
from clipsep_rt.runtime.engines.contract import CPU_EP

pytest.importorskip("openvino")
from clipsep_rt.runtime.engines.openvino_engine import OpenVinoEngine  # noqa: E402

GRAPH = default_engine_dir() / "separator.onnx"


@pytest.fixture(scope="module")
def torch_fp32():
    return Separator.open(backend="torch", device="cpu", precision="fp32").pipeline.engine


def _inputs(batch: int, queries: int, query_dim: int = 384):
    rng = np.random.default_rng(batch * 10 + queries)
    log_mag = rng.normal(-4, 2, (batch, 1, 256, 256)).astype(np.float32)
    return log_mag, rng.standard_normal((queries, query_dim)).astype(np.float32)


@pytest.mark.parametrize("precision, floor_db", [("fp32", 60.0), ("bf16", 20.0)])
def test_masks_match_torch_fp32(torch_fp32, precision, floor_db):
    if precision == "bf16" and not cpu_has_native_bf16():
        pytest.skip("bf16 needs a CPU with AVX512-BF16 or AMX")
    engine = OpenVinoEngine(GRAPH, precision)
    assert (engine.device, engine.precision) == ("cpu", precision)
    log_mag, embeddings = _inputs(3, 2)
    got = engine.probabilities(log_mag, engine.prepare_queries(embeddings, noise_heads=False))
    expected = torch_fp32.probabilities(log_mag, torch_fp32.prepare_queries(embeddings, noise_heads=False))
    assert got.shape == expected.shape == (3, 2, 256, 256) and got.dtype == np.float32  # the bundled v3: no noise heads
    assert snr_db(expected, got) > floor_db


def test_each_shape_compiles_once_and_smaller_batches_are_padded(torch_fp32):
    engine = OpenVinoEngine(GRAPH, "fp32")
    queries = engine.prepare_queries(_inputs(1, 2)[1], noise_heads=False)
    reference = torch_fp32.prepare_queries(_inputs(1, 2)[1], noise_heads=False)
    for batch in (4, 2, 4, 1):
        log_mag = _inputs(batch, 2)[0]
        got = engine.probabilities(log_mag, queries)
        assert got.shape == (batch, 2, 256, 256)
        assert snr_db(torch_fp32.probabilities(log_mag, reference), got) > 60  # padding never leaks into the rows
    assert sorted(key[0] for key in engine._compiled) == [1, 4]  # 2 ran padded to 4; 1 would have been 4x the work
    engine.probabilities(_inputs(6, 2)[0], queries)  # larger: compiled for its own shape
    assert sorted(key[0] for key in engine._compiled) == [1, 4, 6]


def test_refusals(tmp_path, monkeypatch):
    with pytest.raises(OptionError, match="bf16 or fp32"):
        OpenVinoEngine(GRAPH, "int8")
    from clipsep_rt.runtime.engines import openvino_engine

    monkeypatch.setattr(openvino_engine, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(OptionError, match="native bf16"):  # OpenVINO would run fp32 and report bf16
        OpenVinoEngine(GRAPH, "bf16")
    assert OpenVinoEngine(GRAPH).precision == "fp32"
    monkeypatch.undo()
    with pytest.raises(ClipsepError, match="not found"):
        OpenVinoEngine(tmp_path / "missing.onnx")
    engine = OpenVinoEngine(GRAPH, "fp32")
    with pytest.raises(ClipsepError, match="384-dim"):
        engine.prepare_queries(np.zeros((1, 512), np.float32), noise_heads=False)


def test_auto_prefers_openvino_bf16_on_a_cpu_with_bf16_and_says_why_otherwise():
    files = {"onnx": "separator.onnx"}
    base = dict(onnxruntime_version="1.20", onnxruntime_providers=(CPU_EP,), gpu_possible=False)
    choice = choose_backend("auto", "auto", files, Environment(cpu_native_bf16=True, openvino_installed=True, **base))
    assert (choice.name, choice.device, choice.precision) == ("openvino", "cpu", "bf16")
    assert choice.reasons == ["cuda: no NVIDIA driver on this machine"]
    no_bf16 = choose_backend("auto", "auto", files, Environment(cpu_native_bf16=False, openvino_installed=True, **base))
    assert no_bf16.name == "onnxruntime"
    assert any(reason.startswith("openvino bf16: this CPU has no native bf16") for reason in no_bf16.reasons)
    missing = choose_backend("auto", "auto", files, Environment(cpu_native_bf16=True, **base))
    assert missing.name == "torch" and "openvino bf16: not installed (pip install 'clipsep-rt[openvino]')" in missing.reasons
    named = choose_backend("openvino", "auto", files, Environment(cpu_native_bf16=False, openvino_installed=True, **base))
    assert (named.name, named.precision) == ("openvino", "fp32")
    with pytest.raises(OptionError, match="openvino runs on the CPU"):
        choose_backend("openvino", "cuda", files, Environment(openvino_installed=True, **base))
    with pytest.raises(ClipsepError, match="no ONNX file"):
        choose_backend("openvino", "cpu", {}, Environment(openvino_installed=True, **base))


def test_the_bundled_model_separates_on_openvino_like_torch(torch_fp32):
    run = Separator.open(backend="openvino", device="cpu", precision="fp32")
    assert run.backend.describe() == "openvino on cpu in fp32"
    mixture = np.random.default_rng(3).standard_normal(3 * 16000).astype(np.float32) * 0.1
    vector = np.random.default_rng(4).standard_normal(384).astype(np.float32)
    reference = Separator.open(backend="torch", device="cpu", precision="fp32")
    expected = reference.separate(mixture, 16000, embeddings={"q": vector}).sources["q"]
    got = run.separate(mixture, 16000, embeddings={"q": vector}).sources["q"]
    assert snr_db(expected, got) > 50
