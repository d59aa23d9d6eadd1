"""Compile once: a checkpoint given alone is exported to an engine folder in the user cache on
first use, opened from there (without torch) afterwards, rebuilt when the entry does not check
out, built once when processes race, and skipped on request or when the cache is read-only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clipsep_rt.api import Separator
from clipsep_rt.cli.main import main
from clipsep_rt.config import ModelConfig
from clipsep_rt.export.engine_cache import ENTRY_RECORD, cached_engine_dir, entry_folder
from clipsep_rt.io.files import file_sha256
from clipsep_rt.model.checkpoint import checkpoint_from_model, save_checkpoint
from clipsep_rt.model.separator import CLIPSepSeparator

pytest.importorskip("onnxruntime")


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint_from_model(CLIPSepSeparator(ModelConfig(ngf=4, query_dim=8)), None), path)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("CLIPSEP_RT_CACHE_DIR", str(root))
    return root / "engines"


def _compile(checkpoint: Path) -> tuple[Path | None, list[str]]:
    lines: list[str] = []
    return cached_engine_dir(checkpoint, lines.append), lines


def test_first_use_compiles_and_later_uses_open_the_entry(checkpoint, cache):
    folder, lines = _compile(checkpoint)
    assert folder == entry_folder(file_sha256(checkpoint)) and folder.parent == cache
    assert len(lines) == 1 and "compiling tiny.safetensors once" in lines[0] and "--no-engine-cache" in lines[0]
    record = json.loads((folder / ENTRY_RECORD).read_text())
    assert record["checkpoint_sha256"] == file_sha256(checkpoint) and set(record["files"]) == {"separator.onnx"}
    assert not list(folder.glob("*.safetensors")), "the checkpoint serves the weights: no copy in the cache"
    again, lines = _compile(checkpoint)
    assert again == folder and lines == []
    assert sorted(path.name for path in cache.iterdir()) == sorted([folder.name, folder.name + ".lock"])


def test_a_checkpoint_alone_runs_its_compiled_graph_with_torchs_masks(checkpoint, cache):
    lines: list[str] = []
    compiled = Separator.open(checkpoint, backend="onnxruntime", device="cpu", log=lines.append)
    assert compiled.backend.name == "onnxruntime" and len(lines) == 1
    assert compiled.name == str(checkpoint) and compiled.spec.engine_dir is None  # the spec as asked, for other processes
    eager = Separator.open(checkpoint, backend="torch", device="cpu", precision="fp32", log=lines.append)
    assert len(lines) == 1, "the torch backend compiles nothing"
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    vector = {"q": np.ones(8, dtype=np.float32)}
    got, want = (run.separate(audio, 16000, [], embeddings=vector).sources["q"] for run in (compiled, eager))
    assert np.abs(got - want).max() < 1e-4


@pytest.fixture
def fake_export(monkeypatch):
    """export_engines replaced by a copy of a real export's files (the rebuild logic without its cost)."""
    import shutil

    import clipsep_rt.export.pipeline as export_pipeline
    from clipsep_rt.runtime.engines.manifest import read_manifest

    calls: list[Path] = []

    def copy_of(pristine: Path):
        def export(checkpoint, out_dir, options, log=None):
            calls.append(Path(out_dir))
            shutil.copytree(pristine, out_dir)
            (Path(out_dir) / ENTRY_RECORD).unlink()
            return read_manifest(out_dir)
        monkeypatch.setattr(export_pipeline, "export_engines", export)
        return calls

    return copy_of


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_record", "other_checkpoint", "half_written"])
def test_an_entry_that_does_not_check_out_is_rebuilt(checkpoint, cache, fake_export, tmp_path, damage):
    import shutil

    folder, _ = _compile(checkpoint)
    pristine = shutil.copytree(folder, tmp_path / "pristine")
    calls = fake_export(pristine)
    graph = folder / "separator.onnx"
    if damage == "truncate":
        graph.write_bytes(graph.read_bytes()[:1000])
    elif damage == "flip":
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0xFF
        graph.write_bytes(bytes(data))
    elif damage == "no_record":
        (folder / ENTRY_RECORD).unlink()
    elif damage == "half_written":
        graph.unlink()
    else:
        record = json.loads((folder / ENTRY_RECORD).read_text())
        (folder / ENTRY_RECORD).write_text(json.dumps({**record, "checkpoint_sha256": "0" * 64}))
    again, lines = _compile(checkpoint)
    assert again == folder and len(lines) == 1 and "rebuilding it" in lines[0] and len(calls) == 1
    assert (folder / "separator.onnx").read_bytes() == (pristine / "separator.onnx").read_bytes()
    assert _compile(checkpoint)[1] == [] and len(calls) == 1, "the rebuilt entry checks out"
    assert not [path for path in cache.iterdir() if path.name.endswith(".tmp")]


def test_concurrent_first_runs_compile_once(checkpoint, cache):
    script = textwrap.dedent(f"""
        from clipsep_rt.export.engine_cache import cached_engine_dir
        print(cached_engine_dir({str(checkpoint)!r}, lambda line: print("LOG", line)))
    """)
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
            for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert sum(output.count("LOG compiling") for output in outputs) == 1, outputs
    folders = {output.strip().splitlines()[-1] for output in outputs}
    assert folders == {str(entry_folder(file_sha256(checkpoint)))}
    assert not [path for path in cache.iterdir() if path.name.endswith(".tmp")]


def test_a_cache_that_cannot_be_written_runs_the_checkpoint_on_torch(checkpoint, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CLIPSEP_RT_CACHE_DIR", str(blocker))
    lines: list[str] = []
    separator = Separator.open(checkpoint, device="cpu", log=lines.append)
    assert separator.backend.name == "torch" and len(lines) == 1
    assert f"engine cache {blocker}/engines is not writable" in lines[0] and "CLIPSEP_RT_CACHE_DIR" in lines[0]


NO_TORCH = textwrap.dedent("""
    import sys
    for name in ("torch", "sentence_transformers", "transformers", "open_clip"):
        sys.modules[name] = None  # not installed, as far as imports and find_spec can tell
    from clipsep_rt.cli import main
    code = main(sys.argv[1:])
    assert sys.modules["torch"] is None
    sys.exit(code)
""")


def _cli_without_torch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ), timeout=300)


def test_the_command_compiles_once_then_runs_without_torch(checkpoint, cache, tmp_path):
    np.save(tmp_path / "q.npy", np.ones(8, dtype=np.float32))
    sf.write(tmp_path / "in.wav", 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    args = ["-c", str(checkpoint), "--query-embedding", str(tmp_path / "q.npy"), str(tmp_path / "in.wav"),
            "--backend", "onnxruntime", "--quiet"]
    refused = _cli_without_torch(*args, "-o", "first", cwd=tmp_path)
    assert refused.returncode != 0 and "compiling it needs PyTorch and onnx" in refused.stderr
    assert "pip install 'clipsep-rt[torch]'" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert main([*args, "-o", str(tmp_path / "first")]) == 0  # compiles (torch here)
    done = _cli_without_torch(*args, "-o", str(tmp_path / "second"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "compiling" not in done.stderr
    first, second = (sf.read(tmp_path / out / "in_q.wav")[0] for out in ("first", "second"))
    assert np.array_equal(first, second)


def test_no_engine_cache_runs_the_checkpoint_itself(checkpoint, cache, tmp_path, capsys):
    np.save(tmp_path / "q.npy", np.ones(8, dtype=np.float32))
    sf.write(tmp_path / "in.wav", np.zeros(8000, np.float32), 16000)
    code = main(["-c", str(checkpoint), "--query-embedding", str(tmp_path / "q.npy"), str(tmp_path / "in.wav"),
                 "-o", str(tmp_path / "out"), "--no-engine-cache", "--device", "cpu"])
    assert code == 0 and not cache.exists()
    assert main(["--query", "violin", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o2"), "--no-engine-cache"]) == 2
    assert "--no-engine-cache: skips compiling a --checkpoint given alone" in capsys.readouterr().err


def test_a_tensorrt_plan_of_a_compiled_checkpoint_is_built_into_its_cache_entry(checkpoint, cache, monkeypatch):
    """Plumbing only (no TensorRT here): --backend tensorrt on a checkpoint builds its plan beside
    the cached graph, with the timing cache, so later runs reuse it."""
    import clipsep_rt.runtime.engines.tensorrt_engine as tensorrt_engine
    import clipsep_rt.runtime.engines.tensorrt_plan as tensorrt_plan
    from clipsep_rt.runtime.engines.choice import BackendChoice
    from clipsep_rt.runtime.engines.loader import open_engine, open_source

    built: list[tuple[Path, Path, Path]] = []
    monkeypatch.setattr(tensorrt_plan, "ensure_engine",
                        lambda onnx, plan, config, log=None: built.append((Path(onnx), Path(plan), config.timing_cache)))
    monkeypatch.setattr(tensorrt_engine, "TensorRTEngine", lambda plan, device: ("engine", Path(plan), device))
    folder, _ = _compile(checkpoint)
    source = open_source(checkpoint, folder)
    engine = open_engine(BackendChoice("tensorrt", "cuda", "fp16"), source.files, source.weights, "cuda")
    assert built == [(folder / "separator.onnx", folder / "separator.plan", folder / "tensorrt.timing-cache")]
    assert engine == ("engine", folder / "separator.plan", "cuda")
