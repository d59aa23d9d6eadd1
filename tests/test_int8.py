"""The INT8 CPU graph: calibration on the shipped real sounds, export into an engine folder,
ONNX Runtime sessions running it, its quality against fp32, and the backend choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clipsep_rt.api import Separator
from clipsep_rt.cli import main
from clipsep_rt.dsp.metrics import separation_metrics
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.export import int8
from clipsep_rt.export.pipeline import ExportOptions, export_engines
from clipsep_rt.model.weights import default_checkpoint
from clipsep_rt.runtime.engines.choice import Environment, choose_backend

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dog_guitar"
CALIBRATION = [str(EXAMPLE / f"{name}.wav") for name in ("mixture", "dog", "guitar")]


def _read(name: str) -> np.ndarray:
    return sf.read(EXAMPLE / f"{name}.wav", dtype="float32")[0]


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8") / "engines"
    assert main(["export", str(default_checkpoint()), "-o", str(folder), "--no-text-encoder", "--no-fp16",
                 "--int8", "--calibration", *CALIBRATION]) == 0
    return folder


def test_calibration_windows_come_from_the_audio():
    calibration = int8.calibration_windows(CALIBRATION)
    assert calibration.windows.shape[1:] == (1, 256, 256) and calibration.windows.dtype == np.float32
    assert len(calibration.windows) == 3 * 9  # 8.2 s = 513 frames each: (513 - 256) // 32 + 1 windows per file
    assert [item["name"] for item in calibration.files] == ["mixture.wav", "dog.wav", "guitar.wav"]
    assert np.isfinite(calibration.windows).all() and calibration.windows.std() > 1.0  # real spectra, not padding
    first, second = calibration.split()
    assert len(first) + len(second) == len(calibration.windows)


def test_calibration_refuses_bad_input(tmp_path):
    with pytest.raises(ClipsepError, match="needs audio files"):
        int8.calibration_windows([])
    bad = tmp_path / "not_audio.wav"
    bad.write_text("hello")
    with pytest.raises(ClipsepError, match="not_audio.wav"):
        int8.calibration_windows([bad])
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(4000, dtype=np.float32), 16000)
    with pytest.raises(ClipsepError, match="need at least"):
        int8.calibration_windows([short])


def test_export_records_the_int8_graph_in_the_manifest(engine_dir):
    manifest = json.loads((engine_dir / "manifest.json").read_text())
    separator = manifest["separator"]
    assert separator["onnx_int8"] == "separator.int8.onnx" and (engine_dir / "separator.int8.onnx").is_file()
    record = separator["int8"]
    assert [item["name"] for item in record["calibration"]] == ["mixture.wav", "dog.wav", "guitar.wav"]
    assert all(len(item["sha256"]) == 64 for item in record["calibration"])
    assert record["mask_snr_db"] >= int8.INT8_MIN_MASK_SNR_DB and record["quantised_nodes"] > 10
    assert (engine_dir / "separator.int8.onnx").stat().st_size < (engine_dir / "separator.onnx").stat().st_size / 2


def test_the_int8_graph_says_what_it_is_in_its_metadata(engine_dir):
    """The runtime tells the graph kinds apart on the CPU from the session's metadata (no `onnx`)."""
    import onnxruntime as ort

    from clipsep_rt.runtime.engines.contract import FP16_METADATA_KEY, INT8_METADATA_KEY
    from clipsep_rt.runtime.engines.onnx_engine import graph_info_from_session

    quantised = ort.InferenceSession(str(engine_dir / "separator.int8.onnx"), providers=["CPUExecutionProvider"])
    metadata = quantised.get_modelmeta().custom_metadata_map
    assert INT8_METADATA_KEY in metadata and FP16_METADATA_KEY not in metadata
    info = graph_info_from_session(quantised)
    assert info is not None and info.int8 and not info.fp16
    plain = ort.InferenceSession(str(engine_dir / "separator.onnx"), providers=["CPUExecutionProvider"])
    assert INT8_METADATA_KEY not in plain.get_modelmeta().custom_metadata_map
    info = graph_info_from_session(plain)  # exported by clipsep-rt: its metadata is enough
    assert info is not None and not info.int8 and not info.fp16


def test_an_int8_graph_exported_before_its_metadata_key_still_runs_as_int8(engine_dir, tmp_path):
    import onnx

    from clipsep_rt.runtime.engines.contract import INT8_METADATA_KEY
    from clipsep_rt.runtime.engines.onnx_engine import OnnxRuntimeEngine

    model = onnx.load(str(engine_dir / "separator.int8.onnx"))
    kept = [entry for entry in model.metadata_props if entry.key != INT8_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    old = tmp_path / "old.int8.onnx"
    onnx.save(model, str(old))
    assert OnnxRuntimeEngine(old, "cpu", "int8").precision == "int8"


def test_int8_separation_stays_within_0_2_db_sdri_of_fp32(engine_dir):
    mixture, dog, guitar = _read("mixture"), _read("dog"), _read("guitar")
    scores = {}
    for precision in ("fp32", "int8"):
        separator = Separator.open(engine_dir=engine_dir, backend="onnxruntime", device="cpu", precision=precision)
        assert separator.precision == precision and separator.backend.precision == precision
        estimate = separator.separate(mixture, 16000, ["dog barking"]).sources["dog barking"]
        scores[precision] = separation_metrics(estimate, dog, guitar, mixture).sdri
    assert scores["fp32"] > 0
    assert abs(scores["int8"] - scores["fp32"]) <= 0.2, scores


def test_export_refuses_a_graph_too_far_from_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(int8, "INT8_MIN_MASK_SNR_DB", 200.0)
    out = tmp_path / "engines"
    options = ExportOptions(fp16=False, text_encoder=False, int8=True, calibration=tuple(CALIBRATION))
    with pytest.raises(ClipsepError, match="INT8 separator masks are only"):
        export_engines(default_checkpoint(), out, options)
    assert not (out / "separator.int8.onnx").exists() and not (out / "manifest.json").exists()


def test_export_cli_needs_calibration_with_int8(tmp_path, capsys):
    assert main(["export", str(default_checkpoint()), "-o", str(tmp_path / "e"), "--no-text-encoder", "--int8"]) != 0
    assert "--calibration" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_int8_refusals(engine_dir):
    from clipsep_rt.runtime.engines.onnx_engine import OnnxRuntimeEngine

    with pytest.raises(ClipsepError, match="not an INT8 graph"):
        OnnxRuntimeEngine(engine_dir / "separator.onnx", "cpu", "int8")
    with pytest.raises(ClipsepError, match="an INT8 graph; use precision int8"):
        OnnxRuntimeEngine(engine_dir / "separator.int8.onnx", "cpu", "fp32")
    with pytest.raises(OptionError, match="CPU only"):
        OnnxRuntimeEngine(engine_dir / "separator.int8.onnx", "cuda", "int8")
    with pytest.raises(ClipsepError, match="export --int8"):
        Separator.open(checkpoint=default_checkpoint(), precision="int8", device="cpu")


CPU_ENV = Environment(cpu_native_bf16=True, onnxruntime_version="1.20", onnxruntime_providers=("CPUExecutionProvider",),
                      onnxruntime_packages=("onnxruntime",))
FOLDER = {"onnx": "separator.onnx", "onnx_int8": "separator.int8.onnx"}


def test_auto_keeps_int8_as_an_option_and_says_why():
    choice = choose_backend("auto", "cpu", FOLDER, CPU_ENV)
    assert (choice.name, choice.precision) == ("torch", "bf16")
    assert any("onnxruntime int8: not picked by auto" in reason for reason in choice.reasons)
    assert not any("int8" in reason for reason in choose_backend("auto", "cpu", {"onnx": "x"}, CPU_ENV).reasons)
    picked = choose_backend("auto", "auto", FOLDER, CPU_ENV, precision="int8")
    assert (picked.name, picked.device, picked.precision, picked.artifact) == ("onnxruntime", "cpu", "int8", "onnx_int8")
    with pytest.raises(ClipsepError, match="no INT8 graph"):
        choose_backend("auto", "cpu", {"onnx": "x"}, CPU_ENV, precision="int8")
    with pytest.raises(OptionError, match="onnxruntime backend"):
        choose_backend("torch", "cpu", FOLDER, CPU_ENV, precision="int8")
    with pytest.raises(OptionError, match="CPU only"):
        choose_backend("auto", "cuda", FOLDER, CPU_ENV, precision="int8")


def test_benchmark_calibration_mixtures_come_from_the_train_split(tmp_path):
    import sys

    from clipsep_rt.training.index import Clip, write_index

    root = Path(__file__).resolve().parents[1]
    example = root / "examples" / "dog_guitar"
    write_index(tmp_path / "index.csv", [
        Clip(example / "dog.wav", None, 0, "dog barking", "train", "d", 4.0),
        Clip(example / "guitar.wav", None, 0, "acoustic guitar", "train", "g", 4.0),
        Clip(example / "mixture.wav", None, 0, "a held-out mixture", "test", "m", 4.0),
    ])
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        from int8 import write_training_mixtures
    finally:
        sys.path.pop(0)
    first = write_training_mixtures(tmp_path / "index.csv", tmp_path / "a", 3)
    again = write_training_mixtures(tmp_path / "index.csv", tmp_path / "b", 3)
    dog, _ = sf.read(example / "dog.wav", dtype="float32")
    for path, same in zip(first, again):
        samples, rate = sf.read(path, dtype="float32")
        assert rate == 16000 and 0 < len(samples) <= 4 * 16000 and np.abs(samples).max() <= 0.99 + 1e-6
        np.testing.assert_array_equal(samples, sf.read(same, dtype="float32")[0])  # seeded
        # dog + guitar only (the test clip is never used): the mixture correlates with the dog
        corr = np.dot(samples, dog[: len(samples)]) / np.linalg.norm(samples) / np.linalg.norm(dog[: len(samples)])
        assert corr > 0.1, corr
