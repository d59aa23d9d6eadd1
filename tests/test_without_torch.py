"""A separation on ONNX Runtime runs without importing torch: the bundled model's ONNX graph,
the numpy front end, and a backend choice that leaves torch alone where it cannot matter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
from conftest import snr_db

from clipsep_rt.api import Separator
from clipsep_rt.model.weights import default_checkpoint, default_engine_dir
from clipsep_rt.runtime.engines.choice import Environment, choose_backend, torch_can_change_the_choice
from clipsep_rt.runtime.engines.contract import CPU_EP, CUDA_EP
from clipsep_rt.runtime.engines.loader import open_source

pytest.importorskip("onnxruntime")
EXAMPLE = default_checkpoint().parents[3] / "examples" / "dog_guitar" / "mixture.wav"

# Runs the CLI in a fresh interpreter and says whether torch got imported.
RUN_CLI = textwrap.dedent("""
    import sys
    from clipsep_rt.cli.main import main
    code = main(sys.argv[1:])
    print("TORCH_IMPORTED" if any(m == "torch" or m.startswith("torch.") for m in sys.modules) else "NO_TORCH")
    sys.exit(code)
""")


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_CLI, *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))


@pytest.fixture(scope="module")
def short_mixture(tmp_path_factory):
    samples, rate = sf.read(EXAMPLE, dtype="float32")
    path = tmp_path_factory.mktemp("mix") / "mix_3s.wav"
    sf.write(path, samples[: 3 * rate], rate, subtype="FLOAT")
    return path


def test_the_bundled_model_folder_is_its_engine_folder():
    """The manifest names the bundled checkpoint by hash (open_source refuses a mismatch) and its
    graph gives the torch fp32 masks."""
    folder = default_engine_dir()
    assert folder is not None and folder == default_checkpoint().parent
    source = open_source(default_checkpoint(), folder)
    assert set(source.files) == {"onnx"}
    torch_run = Separator.open(backend="torch", device="cpu", precision="fp32")
    onnx_run = Separator.open(backend="onnxruntime", device="cpu")
    assert onnx_run.backend.name == "onnxruntime" and onnx_run.device == "cpu"
    log_mag = np.random.default_rng(0).normal(-4, 2, (2, 1, 256, 256)).astype(np.float32)
    embeddings = np.random.default_rng(1).standard_normal((2, source.model_config.query_dim)).astype(np.float32)
    masks = [run.pipeline.engine.probabilities(log_mag, run.pipeline.engine.prepare_queries(embeddings, False)) for run in (torch_run, onnx_run)]
    assert masks[0].shape == masks[1].shape == (2, 2, 256, 256)  # two queries, no noise heads (v3)
    assert snr_db(masks[0], masks[1]) > 60


def test_a_separation_on_onnxruntime_imports_no_torch(tmp_path, short_mixture):
    """A cached text query and a vector query, the bundled model, --backend onnxruntime: the
    process never imports torch, and its audio is the torch fp32 backend's."""
    torch_run = Separator.open(backend="torch", device="cpu", precision="fp32")
    vector = torch_run.embed_text(["violin"])  # fills the (test's own) embedding cache
    np.save(tmp_path / "violin.npy", vector)
    for query in (["-q", "violin"], ["--query-embedding", str(tmp_path / "violin.npy")]):
        out = tmp_path / query[0].strip("-")
        done = _run_cli(str(short_mixture), *query, "--backend", "onnxruntime", "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "NO_TORCH"
        assert "onnxruntime (CPUExecutionProvider) on cpu in fp32" in done.stderr
        (written,) = out.glob("*.wav")
        audio, _ = sf.read(written, dtype="float32")
        expected = torch_run.separate(*sf.read(short_mixture, dtype="float32"), embeddings={"violin": vector[0]}).sources["violin"]
        assert audio.shape == expected.shape
        assert snr_db(expected, audio) > 50


def test_the_default_command_needs_no_torch_where_openvino_runs_bf16(tmp_path, short_mixture):
    """Plain `clipsep-rt mix.wav -q violin` (backend auto): with openvino installed, a bf16 CPU and
    no NVIDIA driver, auto picks openvino bf16 on the bundled graph and the process never imports torch."""
    pytest.importorskip("openvino")
    from clipsep_rt.model.hardware import cpu_has_native_bf16, nvidia_gpu_possible

    if not cpu_has_native_bf16() or nvidia_gpu_possible():
        pytest.skip("auto picks openvino bf16 only on a bf16 CPU, and probes torch where a GPU may be")
    Separator.open(backend="torch", device="cpu", precision="fp32").embed_text(["violin"])  # cached
    done = _run_cli(str(short_mixture), "-q", "violin", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "openvino on cpu in bf16" in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "NO_TORCH"


def test_torch_is_probed_only_where_it_can_change_the_choice():
    cpu_only = Environment(onnxruntime_version="1.20", onnxruntime_providers=(CPU_EP,))
    gpu_build = Environment(onnxruntime_version="1.20", onnxruntime_providers=(CUDA_EP, CPU_EP))
    assert not torch_can_change_the_choice("onnxruntime", "cpu", "auto", gpu_build)
    assert not torch_can_change_the_choice("onnxruntime", "auto", "auto", cpu_only)
    assert torch_can_change_the_choice("onnxruntime", "auto", "auto", gpu_build)  # is there a GPU?
    assert not torch_can_change_the_choice("auto", "auto", "int8", cpu_only)
    no_driver = Environment(onnxruntime_version="1.20", onnxruntime_providers=(CPU_EP,), gpu_possible=False)
    assert not torch_can_change_the_choice("auto", "auto", "auto", no_driver)  # no NVIDIA driver
    assert not torch_can_change_the_choice("openvino", "auto", "auto", cpu_only)
    assert torch_can_change_the_choice("auto", "auto", "auto", cpu_only)
    assert not torch_can_change_the_choice("torch", "cpu", "fp32", cpu_only)  # the CPU options never ask CUDA
    assert not torch_can_change_the_choice("auto", "cpu", "auto", gpu_build)
    assert torch_can_change_the_choice("torch", "auto", "fp32", cpu_only)


def test_without_torch_installed_auto_runs_onnxruntime_or_says_why_not():
    no_torch = Environment(torch_installed=False, cpu_native_bf16=True, onnxruntime_version="1.20",
                           onnxruntime_providers=(CPU_EP,))
    choice = choose_backend("auto", "auto", {"onnx": "separator.onnx"}, no_torch)
    assert (choice.name, choice.device, choice.precision) == ("onnxruntime", "cpu", "fp32")
    assert any("PyTorch is not installed" in reason for reason in choice.reasons)
    with pytest.raises(Exception, match="torch bf16: PyTorch is not installed.*torch fp32: PyTorch is not installed"):
        choose_backend("auto", "cpu", {}, no_torch)


def test_no_nvidia_driver_means_no_cuda_gpu_on_linux(monkeypatch):
    from clipsep_rt.model import hardware

    present: set[str] = set()
    monkeypatch.setattr(hardware.os.path, "exists", lambda path: path in present)
    monkeypatch.setattr(hardware.sys, "platform", "linux")
    assert not hardware.nvidia_gpu_possible()
    present.add("/proc/driver/nvidia/version")
    assert hardware.nvidia_gpu_possible()
    present.clear()
    present.add("/dev/dxg")  # WSL: CUDA without /proc/driver/nvidia
    assert hardware.nvidia_gpu_possible()
    present.clear()
    monkeypatch.setattr(hardware.sys, "platform", "win32")  # cannot tell: ask CUDA
    assert hardware.nvidia_gpu_possible()


def test_without_a_gpu_onnxruntime_is_found_not_imported():
    script = textwrap.dedent("""
        import sys
        from clipsep_rt.runtime.engines.choice import probe_environment
        env = probe_environment({"onnx": "separator.onnx"}, probe_torch=False, gpu_possible=False)
        print(env.onnxruntime_installed, env.onnxruntime_providers, bool(env.onnxruntime_packages),
              "onnxruntime" in sys.modules, "torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", f"('{CPU_EP}',)", "True", "False", "False"]
