"""Faults the tool survives: options and model files.

Each test is one fault of issue 23 that a user met: an option pushed far out of range, a
damaged checkpoint, work that a command started before it found that it had to refuse.
Every one must end in one line naming what is wrong (exit 2), before any work is wasted.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REFERENCE_CHECKPOINT, write_wav
from safetensors.torch import load_file, safe_open, save_file

from clipsep_rt.cli import main
from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.model import CLIPSepSeparator, checkpoint_from_model, save_checkpoint

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dog_guitar"
CORES = len(os.sched_getaffinity(0))


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A tiny separator (ngf 2, 8-value queries), a query vector for it and a 2.5 s mixture."""
    torch.manual_seed(0)
    model = CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8))
    save_checkpoint(checkpoint_from_model(model, "open_clip:ViT-B-32/openai"), tmp_path / "tiny.safetensors")
    np.save(tmp_path / "q.npy", np.ones(8, dtype=np.float32))
    write_wav(tmp_path / "mix.wav", (0.1 * np.random.default_rng(0).standard_normal(40000)).astype(np.float32))
    return tmp_path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clipsep-rt: error: "), err
    return err[0]


def separate_tiny(folder: Path, checkpoint: str, *args: str) -> int:
    return main(["-c", str(folder / checkpoint), "--query-embedding", str(folder / "q.npy"), str(folder / "mix.wav"),
                 "-o", str(folder / "out"), "--quiet", "--precision", "fp32", *args])


# -- options -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_threads_beyond_the_cores_are_refused(tmp_path, capsys, backend):
    """Row 1: --threads 100000 took a machine down for minutes (onnxruntime) or ended in a
    traceback (torch). More threads than this process may run on are refused, naming the range."""
    np.save(tmp_path / "q384.npy", np.ones(384, dtype=np.float32))  # the bundled model's query size
    write_wav(tmp_path / "mix.wav", np.zeros(16000, dtype=np.float32))
    args = ["--query-embedding", str(tmp_path / "q384.npy"), str(tmp_path / "mix.wav"), "-o", str(tmp_path / "out"),
            "-b", backend, "--quiet"]
    assert main([*args, "--threads", str(CORES + 1)]) == 2
    assert f"--threads: must be 1 to {CORES} (the CPU cores this process may use), got {CORES + 1}" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_threads_are_bounded_by_the_affinity_in_the_api_and_every_command(tiny, capsys, monkeypatch):
    """Row 1: the bound is the cores this process may use (its affinity), for the Python API's
    `threads` (OptionError) and for `bench` and `train` as for `separate`."""
    from clipsep_rt.api import Separator

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    with pytest.raises(OptionError) as refused:
        Separator.open(checkpoint=tiny / "tiny.safetensors", backend="torch", threads=2)
    assert refused.value.option == "threads" and "must be 1 to 1" in refused.value.reason
    assert main(["bench", "-b", "torch", "--seconds", "1", "--threads", "2"]) == 2
    assert "--threads: must be 1 to 1" in one_error_line(capsys)
    assert main(["train", "--config", str(tiny / "missing.toml"), "--threads", "2"]) == 2
    assert "--threads: must be 1 to 1" in one_error_line(capsys)


@pytest.mark.parametrize(("cpu_max", "cores"), [("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", 64),
                                                ("garbled\n", 64)])
def test_threads_are_bounded_by_a_containers_cpu_quota(tmp_path, monkeypatch, cpu_max, cores):
    """Row 1 in a container: `docker --cpus 1.5` on a 64-core host leaves the affinity at 64
    cores and sets the cgroup v2 quota; the bound is the quota rounded up (was: 64)."""
    from clipsep_rt.model import hardware

    (tmp_path / "cpu.max").write_text(cpu_max)
    monkeypatch.setattr(hardware, "CGROUP_CPU_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert hardware.usable_cores() == cores
    with pytest.raises(OptionError, match=f"must be 1 to {cores} "):
        hardware.check_threads(cores + 1)


def test_other_numeric_options_have_bounds(tiny, capsys):
    """Row 1: every numeric option of the command line has a sane bound, said in one line:
    bench's audio per measurement, embed-frames' batch, Ray's retries and CPUs, eval's seed."""
    from clipsep_rt.jobs.distributed import RayCluster
    from clipsep_rt.training.evaluate import make_eval_mixtures

    assert main(["bench", "--seconds", "1e9"]) == 2  # 64 TB of synthetic audio before
    assert "--seconds: must be more than 0 and at most 3600" in one_error_line(capsys)
    assert main(["embed-frames", str(tiny / "index.csv"), "-o", str(tiny / "frames.npz"), "--batch-size", "100000"]) == 2
    assert "--batch-size: must be 1 to 1024" in one_error_line(capsys)
    with pytest.raises(OptionError, match="max_retries: must be 0 to 10"):
        RayCluster("local", max_retries=1000)
    with pytest.raises(OptionError, match="cpus_per_worker: must be a positive number"):
        RayCluster("local", cpus_per_worker=float("nan"))
    with pytest.raises(OptionError, match="seed: must be 0 or more"):
        make_eval_mixtures(tiny / "index.csv", seed=-1)


def test_batch_size_is_bounded_by_the_memory_budget(tiny, capsys, monkeypatch):
    """Row 6: --batch-size 100000 held a 30-minute file's windows at once (10.6 GB). The windows
    per network call are bounded (MAX_BATCH_WINDOWS): a larger batch is refused, and at the
    bound no engine call gets more windows than that, however long the input."""
    assert separate_tiny(tiny, "tiny.safetensors", "--batch-size", "100000") == 2
    line = one_error_line(capsys)

    from clipsep_rt.api import Separator, WindowingOptions
    from clipsep_rt.runtime.offline import MAX_BATCH_WINDOWS

    assert f"--batch-size: must be 1 to {MAX_BATCH_WINDOWS} network windows per call" in line, line
    with pytest.raises(OptionError, match="batch_windows"):
        WindowingOptions(batch_windows=MAX_BATCH_WINDOWS + 1)

    separator = Separator.open(checkpoint=tiny / "tiny.safetensors", backend="torch", precision="fp32",
                               windowing=WindowingOptions(overlap_frames=0, batch_windows=MAX_BATCH_WINDOWS))
    engine = separator.pipeline.engine
    calls = []
    probabilities = engine.probabilities

    def counted(windows, queries):
        calls.append(len(windows))
        return probabilities(windows, queries)

    monkeypatch.setattr(engine, "probabilities", counted)
    window_samples = separator.spectral.window_frames * separator.spectral.hop_length
    audio = np.zeros(window_samples * (MAX_BATCH_WINDOWS + 3), dtype=np.float32)
    separator.separate(audio, sample_rate=separator.sample_rate, queries=separator.prepare_queries(["q"], np.ones((1, 8), np.float32)))
    assert max(calls) == MAX_BATCH_WINDOWS and sum(calls) >= MAX_BATCH_WINDOWS + 3, calls


def test_refusals_that_need_no_model_come_before_it_loads(capsys, monkeypatch, tmp_path):
    """Row 16: --query-image with the bundled (MiniLM, text-only) model, and two queries into
    one output file, were refused only after 7-17 s of encoder loading. Both are refused now
    without building a query encoder, and two queries into one file before the model loads."""
    from PIL import Image

    import clipsep_rt.cli.session as session
    import clipsep_rt.query.embedder as embedder

    def never(*args, **kwargs):
        raise AssertionError("loaded before the refusal")

    Image.new("RGB", (32, 32), (200, 20, 20)).save(tmp_path / "red.png")
    write_wav(tmp_path / "mix.wav", np.zeros(16000, dtype=np.float32))
    monkeypatch.setattr(embedder, "build_encoder", never)
    assert main(["--query-image", str(tmp_path / "red.png"), str(tmp_path / "mix.wav"), "-o", str(tmp_path / "out"),
                 "--quiet"]) == 2
    assert "minilm:all-MiniLM-L6-v2 embeds texts only: image queries need a model trained with a CLIP encoder" \
        in one_error_line(capsys)

    monkeypatch.setattr(session, "open_session", never)
    both = tmp_path / "both.wav"
    assert main(["-q", "a", "-q", "b", str(tmp_path / "mix.wav"), "-o", str(both), "--quiet"]) == 2
    assert f"-o/--output: {both} names one file, but each input gets 2 outputs" in one_error_line(capsys)
    assert main(["-q", "a", "--noise-heads", str(tmp_path / "mix.wav"), "-o", str(both), "--quiet"]) == 2
    assert "each input gets at least 2 outputs" in one_error_line(capsys)
    assert not both.exists()


# -- model files ---------------------------------------------------------------------------


def _edited_copy(source: Path, target: Path, edit) -> Path:
    """`source` (a project .safetensors) with its tensors passed through `edit`, header kept."""
    with safe_open(str(source), framework="pt") as handle:
        header = handle.metadata()
    save_file(edit(dict(load_file(str(source)))), str(target), metadata=header)
    return target


def _poisoned(state: dict, key: str, value: float) -> dict:
    tensor = state[key].clone()
    tensor.view(-1)[1] = value
    return {**state, key: tensor}


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_holding_nan_or_inf_are_refused(tiny, capsys, value):
    """Row 2: a .safetensors with 4 flipped bytes (a NaN weight) separated into all-NaN audio
    and reported success. Non-finite weights are refused at load, naming the file and tensor,
    in the project's format and in the released .pt layout alike."""
    key = "unet.down_convs.1.weight"
    _edited_copy(tiny / "tiny.safetensors", tiny / "bad.safetensors", lambda state: _poisoned(state, key, value))
    assert separate_tiny(tiny, "bad.safetensors") == 2
    line = one_error_line(capsys)
    assert f"{tiny / 'bad.safetensors'}: tensor {key} holds 1 NaN/Inf values of 128" in line, line
    assert not (tiny / "out").exists()

    official = torch.load(REFERENCE_CHECKPOINT, map_location="cpu", weights_only=True)
    official_key = "module.sound_net.unet_block.model.0.weight"  # the first down conv: ours unet.down_convs.0.weight
    torch.save(_poisoned(official, official_key, value), tiny / "bad.pt")
    np.save(tiny / "q.npy", np.ones(official["module.frame_net.weight"].shape[1], dtype=np.float32))
    assert separate_tiny(tiny, "bad.pt") == 2
    assert f"{tiny / 'bad.pt'}: tensor unet.down_convs.0.weight holds 1 NaN/Inf values" in one_error_line(capsys)


def _reshaped(state: dict) -> dict:
    weight = state["unet.down_convs.1.weight"]  # (4, 2, 4, 4)
    return {**state, "unet.down_convs.1.weight": weight.transpose(0, 1).contiguous()}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_reshaped, "wrong shapes unet.down_convs.1.weight (2, 4, 4, 4) (needs (4, 2, 4, 4))"),
        (lambda state: {key: value for key, value in state.items() if key != "heads.scale"},
         "missing tensors heads.scale"),
        (lambda state: {**state, "unet.extra.weight": torch.zeros(3)}, "unexpected tensors unet.extra.weight"),
    ],
    ids=["reshaped", "missing", "extra"],
)
def test_a_checkpoint_that_does_not_fit_its_model_is_one_line(tiny, capsys, edit, message):
    """Row 5: a .safetensors with a reshaped, missing or extra tensor ended in torch's
    load_state_dict traceback (exit 1). It is one line naming the file and the tensor, exit 2."""
    _edited_copy(tiny / "tiny.safetensors", tiny / "edited.safetensors", edit)
    assert separate_tiny(tiny, "edited.safetensors") == 2
    line = one_error_line(capsys)
    assert f"{tiny / 'edited.safetensors'}: does not fit its model (depth 7, ngf 2): {message}" in line, line


def test_a_checkpoint_with_damaged_metadata_is_one_line(tiny, capsys):
    """Row 5: the metadata of a project checkpoint (JSON in the safetensors header) cut short
    is a one-line error too, not a JSONDecodeError traceback."""
    state = load_file(str(tiny / "tiny.safetensors"))
    with safe_open(str(tiny / "tiny.safetensors"), framework="pt") as handle:
        text = handle.metadata()["clipsep_rt"]
    json.loads(text)  # whole, it reads
    save_file(state, str(tiny / "cut.safetensors"), metadata={"clipsep_rt": text[: len(text) // 2]})
    assert separate_tiny(tiny, "cut.safetensors") == 2
    assert f"{tiny / 'cut.safetensors'}: its clipsep-rt metadata is damaged" in one_error_line(capsys)


def test_int8_calibration_logs_no_stray_warning(tiny, caplog):
    """Row 18: `export --int8` printed `WARNING:root:Axis 1 is out-of-range` (onnxruntime's
    quantiser, told a per-channel axis that the input norm's 1-D scale does not have). The axis
    is now given, so quantising says nothing, and onnxruntime's real warnings are not hidden."""
    from clipsep_rt.export import int8
    from clipsep_rt.export.separator_onnx import export_separator_onnx

    model = CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8)).eval()
    graph = export_separator_onnx(model, tiny / "separator.onnx")
    calibration = int8.calibration_windows([EXAMPLE / "mixture.wav"])
    with caplog.at_level(logging.WARNING):
        int8.quantize_separator_int8(graph, tiny / "separator.int8.onnx", calibration)
    assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def test_export_without_clip_weights_is_refused_before_any_work(tiny, capsys, monkeypatch):
    """Row 19: `export model.pt -o eng/` without the CLIP weights exported the separator (30 s),
    then failed naming the API parameter `text_encoder=False` and left a folder without a
    manifest. The weights are looked for first; the error names `--no-text-encoder`, and a
    failed export leaves no folder behind."""
    import clipsep_rt.export.separator_onnx as separator_onnx
    from clipsep_rt.errors import ClipsepError

    empty = tiny / "empty-hf-home"
    monkeypatch.setenv("HF_HOME", str(empty))
    monkeypatch.setenv("HF_HUB_CACHE", str(empty / "hub"))

    def exported(*args, **kwargs):
        raise AssertionError("the separator was exported before the refusal")

    monkeypatch.setattr(separator_onnx, "export_separator_onnx", exported)
    assert main(["export", str(tiny / "tiny.safetensors"), "-o", str(tiny / "eng")]) == 2
    line = one_error_line(capsys)
    assert line.startswith("clipsep-rt: error: --no-text-encoder: use it to export without the text encoder") and \
        "CLIP weights for ViT-B-32/openai are not in the local cache" in line and "text_encoder=False" not in line, line
    assert not (tiny / "eng").exists()

    def fails(*args, **kwargs):
        raise ClipsepError("export failed half-way")

    monkeypatch.setattr(separator_onnx, "export_separator_onnx", fails)
    assert main(["export", str(tiny / "tiny.safetensors"), "-o", str(tiny / "eng"), "--no-text-encoder"]) == 2
    assert "export failed half-way" in one_error_line(capsys)
    assert not (tiny / "eng").exists(), "a failed export left a folder without a manifest"


def test_image_queries_through_an_engine_folders_text_tower_are_refused_before_it_loads(tmp_path):
    """Row 16, engine folders: an engine folder exported from a CLIP model runs its exported text
    tower (a prebuilt factory under a CLIP spec); an image query loaded that tower (seconds) and
    only then found it had no image tower. Refused first, the tower never built."""
    from clipsep_rt.query.embedder import QueryEmbedder

    def tower():
        raise AssertionError("the text tower must not be built for an image query")

    embedder = QueryEmbedder("open_clip:ViT-B-32/openai", factory=tower, encoder_id="exported CLIP text tower")
    with pytest.raises(ClipsepError, match="embeds texts only: image queries need a model trained with a CLIP encoder"):
        embedder.embed_images([tmp_path / "red.png"])
    assert not embedder.loaded
