"""`clipsep-rt export` and `--engine`: exported folders reproduce the golden output on every backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import REFERENCE_CHECKPOINT, snr_db, write_wav
from tiny_clip import tiny_clip

from clipsep_rt.cli import main

COMMON = 65280


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engines") / "reference"
    assert main(["export", str(REFERENCE_CHECKPOINT), "-o", str(folder), "--no-text-encoder"]) == 0
    return folder


@pytest.fixture
def inputs(tmp_path, golden):
    write_wav(tmp_path / "mix.wav", golden["mixture_wav"])
    np.save(tmp_path / "violin.npy", golden["query_embedding"])
    return tmp_path


def test_export_writes_a_self_contained_folder(engine_dir):
    manifest = json.loads((engine_dir / "manifest.json").read_text())
    assert manifest["format"] == "clipsep_rt-engines"
    assert manifest["separator"] == {"weights": "separator.safetensors", "onnx": "separator.onnx",
                                     "onnx_fp16": "separator.fp16.onnx", "tensorrt_plan": None, "window_frames": 256}
    assert manifest["query_encoder"] == "open_clip:ViT-B-32/openai" and manifest["query_dim"] == 512
    assert manifest["model"]["ngf"] == 8 and manifest["spectral"]["n_fft"] == 1024
    assert manifest["checkpoint"]["name"] == REFERENCE_CHECKPOINT.name and len(manifest["checkpoint"]["sha256"]) == 64
    assert manifest["text_encoder"] is None


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_engine_folder_reproduces_the_golden_output(engine_dir, inputs, golden, backend, capsys):
    common = ["--engine", str(engine_dir), "--backend", backend, "--precision", "fp32",
              "--query-embedding", str(inputs / "violin.npy"), str(inputs / "mix.wav")]
    assert main([*common, "-o", str(inputs / "soft")]) == 0
    assert f"{backend}" in capsys.readouterr().err
    soft, _ = sf.read(inputs / "soft" / "mix_violin.wav", dtype="float32")
    np.testing.assert_allclose(soft[:COMMON], golden["separated_soft_wav"], atol=1e-3, rtol=0)
    assert main([*common, "--mask", "binary", "-o", str(inputs / "binary"), "--quiet"]) == 0
    binary, _ = sf.read(inputs / "binary" / "mix_violin.wav", dtype="float32")
    assert snr_db(golden["separated_binary_wav"], binary[:COMMON]) >= 30


def test_auto_backend_says_what_it_chose_and_why(engine_dir, inputs, capsys):
    assert main(["--engine", str(engine_dir), "--query-embedding", str(inputs / "violin.npy"),
                 str(inputs / "mix.wav"), "-o", str(inputs / "auto")]) == 0
    err = capsys.readouterr().err
    assert "clipsep-rt: CLIPSep-NIT" in err and " on cpu in " in err
    assert "skipped cuda" in err or "on cuda" in err


def test_engine_errors(tmp_path, engine_dir, inputs, capsys):
    args = ["--query-embedding", str(inputs / "violin.npy"), str(inputs / "mix.wav"), "--quiet", "-o", str(tmp_path / "o")]
    assert main(["--engine", str(tmp_path), *args]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert main(["--engine", str(engine_dir), "-c", str(inputs / "mix.wav"), *args]) == 2
    assert "was exported from official_small_nit_checkpoint.pt" in capsys.readouterr().err
    assert main(["--engine", str(engine_dir), "--backend", "tensorrt", *args]) == 2
    assert "tensorrt" in capsys.readouterr().err
    assert main(["export", str(REFERENCE_CHECKPOINT), "-o", str(engine_dir), "--no-text-encoder"]) == 2
    assert "already holds exported engines" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((engine_dir / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps(manifest))
    assert main(["--engine", str(broken), *args]) == 2
    assert "separator.safetensors listed in manifest.json is missing" in capsys.readouterr().err


def test_exported_text_tower_serves_text_queries_without_clip_weights(tmp_path, monkeypatch, capsys):
    """A separator trained with a (tiny) CLIP: export writes its text tower; `embed --engine` and
    `separate --engine -q` then use the ONNX graph, and agree with open_clip."""
    import clipsep_rt.query.encoders.registry as registry
    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model import (
        CLIPSepSeparator,
        checkpoint_from_model,
        save_checkpoint,
    )
    from clipsep_rt.query import OpenClipEncoder

    clip, tokenizer = tiny_clip(embed_dim=16, text_layers=2)
    torch_encoder = OpenClipEncoder("ViT-B-32", "tiny-test", model=clip, tokenizer=tokenizer)
    monkeypatch.setattr(registry, "build_encoder", lambda *args, **kwargs: torch_encoder)
    model = CLIPSepSeparator(ModelConfig(ngf=4, query_dim=16))
    save_checkpoint(checkpoint_from_model(model, torch_encoder.encoder_id), tmp_path / "clip16.safetensors")
    folder = tmp_path / "engines"
    assert main(["export", str(tmp_path / "clip16.safetensors"), "-o", str(folder)]) == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["text_encoder"]["onnx"] == "text_encoder.onnx" and manifest["text_encoder"]["onnx_fp16"]

    def no_clip(*_, **__):
        raise AssertionError("open_clip weights were needed")

    monkeypatch.setattr(registry, "build_encoder", no_clip)
    assert main(["embed", "dog barking", "violin", "--engine", str(folder), "-o", str(tmp_path / "q.npz")]) == 0
    with np.load(tmp_path / "q.npz") as stored:
        onnx_rows = np.stack([stored["dog barking"], stored["violin"]])
    expected = torch_encoder.encode_text(["a photo of dog barking", "a photo of violin"])
    assert np.min(np.sum(onnx_rows * expected, axis=1)) >= 0.9999
    write_wav(tmp_path / "mix.wav", (0.1 * np.random.default_rng(0).standard_normal(30000)).astype(np.float32))
    assert main(["--engine", str(folder), str(tmp_path / "mix.wav"), "-q", "dog barking", "--quiet",
                 "--no-cache", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "mix_dog_barking.wav").exists()
