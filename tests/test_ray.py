"""Batch separation on a local Ray instance (2 CPUs): the same outputs as the local batch, a bad
file, a killed worker, resuming a job. One Ray start for the module; tiny files."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REFERENCE_CHECKPOINT, write_wav
from media import write_video

from clipsep_rt.cli import main
from clipsep_rt.jobs.batch import BatchJob
from clipsep_rt.jobs.outputs import OutputOptions
from clipsep_rt.jobs.results import MANIFEST_NAME, FileResult
from clipsep_rt.jobs.run import Batch
from clipsep_rt.runtime.pipeline import PipelineSpec

ray = pytest.importorskip("ray", reason="Ray is the optional extra clipsep-rt[distributed]")


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module; `--ray local` and the API join it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, golden):
    """A converted checkpoint, the golden query vector, and small inputs in a folder tree."""
    root = tmp_path_factory.mktemp("ray")
    assert main(["convert", str(REFERENCE_CHECKPOINT), "-o", str(root / "model.safetensors")]) == 0
    np.save(root / "violin.npy", golden["query_embedding"])
    np.save(root / "other.npy", -golden["query_embedding"][0])
    mixture = golden["mixture_wav"]
    inputs = root / "in"
    (inputs / "sub").mkdir(parents=True)
    write_wav(inputs / "a.wav", mixture[:20000])
    write_wav(inputs / "sub" / "b.wav", np.stack([mixture[:24000], 0.5 * mixture[:24000]], axis=1), rate=22050)
    sf.write(inputs / "c.flac", mixture[-16000:], 16000)
    write_video(inputs / "clip.mp4", mixture[:16000], audio_rate=16000)
    return root


def separate(workspace: Path, out: str, *args: str) -> int:
    base = ["-c", str(workspace / "model.safetensors"), "--query-embedding", str(workspace / "violin.npy"),
            "--precision", "fp32", "--quiet", "-o", str(workspace / out)]
    return main([*base, *args])


def outputs(folder: Path) -> dict[str, Path]:
    return {str(path.relative_to(folder)): path for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != MANIFEST_NAME}


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / MANIFEST_NAME).read_text().splitlines()]


def assert_same_audio(expected: dict[str, Path], got: dict[str, Path]) -> None:
    assert sorted(got) == sorted(expected)
    for name, path in expected.items():
        if path.suffix == ".mp4":
            assert got[name].stat().st_size > 0
            continue
        ours, rate = sf.read(got[name], dtype="float32")
        theirs, their_rate = sf.read(path, dtype="float32")
        assert rate == their_rate and ours.shape == theirs.shape, name
        np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0, err_msg=name)


OPTIONS = ["--query-embedding", "other.npy", "--noise-heads", "--residual", "--combine", "--video", "--format", "flac"]


def test_same_outputs_as_the_local_batch(ray_instance, workspace):
    options = [option if option != "other.npy" else str(workspace / option) for option in OPTIONS]
    (workspace / "list.txt").write_text("# the inputs\nin\n")  # a list of inputs, relative to the list's folder
    assert separate(workspace, "local", str(workspace / "in"), *options) == 0
    assert separate(workspace, "ray", str(workspace / "list.txt"), "--ray", "local", "--ray-workers", "2", *options) == 0
    local, distributed = outputs(workspace / "local"), outputs(workspace / "ray")
    assert "sub/b_violin_noise1.flac" in local and "clip_combined_residual.mp4" in local
    assert_same_audio(local, distributed)
    entries = manifest(workspace / "ray")
    assert sorted(Path(entry["input"]).name for entry in entries) == ["a.wav", "b.wav", "c.flac", "clip.mp4"]
    for entry in entries:
        assert entry["error"] is None and entry["attempts"] == 1 and entry["seconds"] > 0
        if not entry["input"].endswith(".mp4"):
            assert entry["audio_seconds"] == pytest.approx(sf.info(entry["input"]).duration, abs=0.01)
        assert all(Path(path).is_file() for path in entry["outputs"]) and len(entry["outputs"]) == 10


def test_a_bad_file_is_reported_and_the_others_finish(ray_instance, workspace, capsys):
    bad = workspace / "bad"
    bad.mkdir()
    (bad / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(range(256)))
    write_wav(bad / "good.wav", np.sin(np.arange(16000) / 10).astype(np.float32))
    assert separate(workspace, "bad_out", str(bad), "--ray", "local") == 1
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and "corrupt.wav" in error_lines[0]
    assert sorted(outputs(workspace / "bad_out")) == ["good_violin.wav"]
    errors = {Path(entry["input"]).name: entry["error"] for entry in manifest(workspace / "bad_out")}
    assert errors["good.wav"] is None and "corrupt.wav" in errors["corrupt.wav"]


def _busy_worker_pid(timeout_s: float) -> int:
    """The pid of a Ray worker process while it runs `SeparationWorker.separate` (its title says so)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and b"SeparationWorker.separate" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
        time.sleep(0.005)
    raise AssertionError("no Ray worker was seen separating a file")


def test_a_killed_worker_is_replaced_and_its_file_retried(ray_instance, workspace, golden):
    from clipsep_rt.jobs.distributed import RayCluster, RayExecutor

    inputs = workspace / "kill"
    inputs.mkdir()
    paths = [write_wav(inputs / "long.wav", np.tile(golden["mixture_wav"], 6))]  # 25 s: long enough to be caught
    paths += [write_wav(inputs / f"short{i}.wav", golden["mixture_wav"][: 8000 * (i + 2)]) for i in range(3)]
    assert separate(workspace, "kill_local", str(inputs)) == 0
    spec = PipelineSpec(checkpoint=workspace / "model.safetensors", precision="fp32")
    job = BatchJob(("violin",), golden["query_embedding"].astype(np.float32), OutputOptions(), workspace / "kill_ray")
    killed: list[int] = []
    killer = threading.Thread(target=lambda: killed.append(os.kill(pid := _busy_worker_pid(60), signal.SIGKILL) or pid))
    killer.start()
    warnings: list[str] = []
    report = Batch(job, paths, log=warnings.append).run(RayExecutor(spec, RayCluster("local", workers=2, max_retries=1)))
    killer.join()
    assert killed and not report.failures
    assert any(name.endswith(f":{killed[0]}") for name in report.workers)
    retried = [result for result in report.results if result.attempts == 2]
    assert len(retried) == 1 and not retried[0].worker.endswith(f":{killed[0]}")  # another (or the new) worker
    assert any("worker died" in line and "trying again" in line for line in warnings)
    assert_same_audio(outputs(workspace / "kill_local"), outputs(workspace / "kill_ray"))  # no partial files left


def test_a_worker_that_dies_on_every_try_fails_only_its_file(ray_instance, workspace, golden, monkeypatch):
    """The retries are bounded: after max_retries, the file is reported and the job goes on."""
    from clipsep_rt.jobs import distributed

    calls = []
    real_get = ray.get

    def dying_get(ref, *args, **kwargs):  # the driver's view of a worker killed while on "doomed.wav"
        value = real_get(ref, *args, **kwargs)
        if isinstance(value, tuple) and isinstance(value[0], FileResult) and value[0].input.endswith("doomed.wav"):
            calls.append(value[0].input)
            raise ray.exceptions.ActorDiedError()
        return value

    folder = workspace / "doomed"
    folder.mkdir()
    paths = [write_wav(folder / "doomed.wav", golden["mixture_wav"][:16000]),
             write_wav(folder / "fine.wav", golden["mixture_wav"][:16000])]
    spec = PipelineSpec(checkpoint=workspace / "model.safetensors")
    job = BatchJob(("violin",), golden["query_embedding"].astype(np.float32), OutputOptions(), workspace / "doomed_out",
                   overwrite=True)
    monkeypatch.setattr(ray, "get", dying_get)
    report = Batch(job, paths, log=lambda line: None).run(
        distributed.RayExecutor(spec, distributed.RayCluster("local", workers=1, max_retries=2)))
    assert len(calls) == 3  # one try and two retries
    [failure] = report.failures
    assert failure.input.endswith("doomed.wav") and "died 3 times" in failure.error and failure.attempts == 3
    assert [Path(result.input).name for result in report.results if result.error is None] == ["fine.wav"]


def test_a_rerun_skips_finished_inputs(ray_instance, workspace, capsys):
    assert separate(workspace, "resume", str(workspace / "in"), "--ray", "local") == 0
    first = outputs(workspace / "resume")
    stamps = {name: path.stat().st_mtime_ns for name, path in first.items()}
    first["c_violin.wav"].unlink()  # as if the job had stopped before c.flac was done
    capsys.readouterr()
    assert main(["-c", str(workspace / "model.safetensors"), "--query-embedding", str(workspace / "violin.npy"),
                 "--precision", "fp32", "-o", str(workspace / "resume"), str(workspace / "in"), "--ray", "local"]) == 0
    summary = capsys.readouterr().err.splitlines()[-1]
    assert "1 of 4 inputs separated" in summary and "3 already done" in summary
    again = outputs(workspace / "resume")
    assert sorted(again) == sorted(first)
    assert all(again[name].stat().st_mtime_ns == stamp for name, stamp in stamps.items() if name != "c_violin.wav")
    last = {Path(entry["input"]).name: entry for entry in manifest(workspace / "resume")}
    assert len(manifest(workspace / "resume")) == 5 and last["c.flac"]["error"] is None


def test_an_output_file_and_a_report_with_ray(ray_instance, workspace):
    """-o FILE.wav and --report work with --ray: the same file as a local run, and the report
    made on the driver after the job."""
    source = str(workspace / "in" / "a.wav")
    assert separate(workspace, "one/local.wav", source) == 0
    assert separate(workspace, "one/ray.wav", source, "--ray", "local", "--report", str(workspace / "report")) == 0
    assert_same_audio({"a": workspace / "one" / "local.wav"}, {"a": workspace / "one" / "ray.wav"})
    assert (workspace / "report" / "index.html").is_file()
    assert any(path.suffix == ".png" for path in (workspace / "report").rglob("*"))
    entries = manifest(workspace / "one")  # both runs' lines: the local run's did not make the Ray run's output "done"
    assert [Path(entry["outputs"][0]).name for entry in entries] == ["local.wav", "ray.wav"]


def test_ray_options_are_checked(workspace, capsys):
    assert separate(workspace, "x", str(workspace / "in"), "--ray-workers", "2") == 2
    assert "--ray-workers: goes with --ray ADDRESS" in capsys.readouterr().err
    assert separate(workspace, "x", str(workspace / "in"), "--ray", "local", "--ray-workers", "0") == 2
    assert "--ray-workers: must be at least 1" in capsys.readouterr().err
    assert separate(workspace, "x", str(workspace / "in"), "--ray", "local", "--stream") == 2


def test_without_ray_the_error_says_how_to_install_it(workspace, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    assert separate(workspace, "x", str(workspace / "in"), "--ray", "local") == 2
    assert "pip install 'clipsep-rt[distributed]'" in capsys.readouterr().err


def test_input_lists(tmp_path):
    from clipsep_rt.io.inputs import collect_inputs

    for name in ("a.wav", "b.wav"):
        write_wav(tmp_path / name, np.zeros(2000, dtype=np.float32))
    (tmp_path / "list.csv").write_text(f"id,path\n1,a.wav\n2,{tmp_path / 'b.wav'}\n3,missing.wav\n")
    found = collect_inputs([str(tmp_path / "list.csv")])
    files, errors = found.files, found.errors
    assert [path.name for path in files] == ["a.wav", "b.wav"]
    assert len(errors) == 1 and "missing.wav: no such file" in errors[0]
