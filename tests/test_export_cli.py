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
                                     "onnx_fp16": "separator.fp16.onnx", "tensorrt_plan": None, "window_frames": 256,
                                     "onnx_int8": None, "int8": None}
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


# -- export judges graphs by scale-free figures (issue 12, item 1) -----------------------------


def _well_scaled_official_checkpoint(path, ngf: int, seed: int, logit_scale: float = 1.0):
    """A random CLIPSep-NIT in the released layout (`module.`-prefixed state dict, .pt) with He-initialised
    convolutions and non-trivial BatchNorm statistics: logits in a trained model's range (up to ~35),
    times `logit_scale` (the head's scale and bias; a sharply trained model has larger logits)."""
    import math

    import torch
    from torch import nn

    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model import CLIPSepSeparator
    from clipsep_rt.model.official import official_key_map

    torch.manual_seed(seed)
    model = CLIPSepSeparator(ModelConfig(ngf=ngf))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0, math.sqrt(2 / module.weight[0].numel()))
            elif isinstance(module, nn.ConvTranspose2d):
                nn.init.normal_(module.weight, 0, math.sqrt(2 / (module.weight.shape[0] * module.weight[0, 0].numel() / 4)))
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
        model.heads.scale.mul_(logit_scale)
        model.heads.bias.mul_(logit_scale)
    state = model.state_dict()
    torch.save({f"module.{theirs}": state[ours] for ours, theirs in official_key_map(model.config).items()}, path)
    return model.eval()


def _max_logit_error(model, onnx_path) -> float:
    """The old criterion's figure: the largest absolute query-logit error, batch 7 x 5 queries."""
    import onnxruntime as ort
    import torch

    from clipsep_rt.export.separator_onnx import separator_inputs

    feeds = separator_inputs(7, 5, 256, 512, np.random.default_rng(0))
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(["query_logits"], feeds)[0]
    with torch.no_grad():
        want = model(torch.from_numpy(feeds["log_mag"]), torch.from_numpy(feeds["embeddings"])).query.numpy()
    return float(np.abs(got - want).max())


def test_export_accepts_valid_checkpoints_of_any_width_and_reports_the_mask_snr(tmp_path, capsys):
    """Checkpoints the torch engine runs export, whatever their width and logit scale; the figure
    (masks' dB SNR against torch) is printed and recorded. The old absolute 1e-4 bound on logits
    refused these: the errors of a few 1e-5 of the first three come near it (up to 1.07e-4 measured
    over the old check's four runs, machine-dependent), the fourth's are ten times that."""
    old_errors = []
    for ngf, logit_scale in ((4, 1.0), (8, 1.0), (16, 1.0), (8, 10.0)):
        model = _well_scaled_official_checkpoint(tmp_path / f"w{ngf}.pt", ngf, seed=1, logit_scale=logit_scale)
        folder = tmp_path / f"engines{ngf}x{logit_scale:g}"
        assert main(["export", str(tmp_path / f"w{ngf}.pt"), "-o", str(folder), "--no-text-encoder"]) == 0
        out = capsys.readouterr().out
        parity = json.loads((folder / "manifest.json").read_text())["parity"]
        snr = parity["separator.onnx"]["mask_snr_db"]
        assert snr >= 90 and f"separator.onnx: masks {snr:.1f} dB SNR against torch" in out
        assert parity["separator.fp16.onnx"]["mask_snr_db"] >= 40 and parity["separator.fp16.onnx"]["kept"]
        old_errors.append(_max_logit_error(model, folder / "separator.onnx"))
    assert max(old_errors) > 1e-4, old_errors  # so these are checkpoints the old check refused


def test_export_still_refuses_a_graph_that_does_not_compute_the_model(tmp_path, monkeypatch, capsys):
    """A graph of a model whose head bias is off by 1e-3 (~76 dB) fails the export; no manifest is written."""
    import torch

    import clipsep_rt.export.separator_onnx as separator_onnx

    _well_scaled_official_checkpoint(tmp_path / "w4.pt", 4, seed=1)
    real_export = separator_onnx.export_separator_onnx

    def export_a_wrong_model(model, path, **kwargs):
        wrong = separator_onnx.fold_batchnorm(model)
        with torch.no_grad():
            wrong.heads.bias += 1e-3
        return real_export(wrong, path, **kwargs)

    monkeypatch.setattr(separator_onnx, "export_separator_onnx", export_a_wrong_model)
    assert main(["export", str(tmp_path / "w4.pt"), "-o", str(tmp_path / "engines"), "--no-text-encoder"]) == 2
    err = capsys.readouterr().err
    assert "query_logits masks are only" in err and "need 90 dB" in err and err.count("\n") == 1
    assert not (tmp_path / "engines" / "manifest.json").exists()
    assert not (tmp_path / "engines" / "separator.onnx").exists()


# -- the bundled default model: export with no CHECKPOINT, its MiniLM text encoder as ONNX (items 2, 3) ----


@pytest.fixture(scope="module")
def default_engine_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("default") / "engines"
    assert main(["export", "-o", str(folder)]) == 0
    return folder


# Blocks torch, sentence-transformers, transformers and open_clip in a fresh interpreter, then runs the CLI.
NO_TORCH = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Blocked())
from clipsep_rt.cli import main
code = main(sys.argv[1:])
assert not {{m.split(".")[0] for m in sys.modules}} & set({blocked!r}), "a blocked package was imported"
sys.exit(code)
"""


def _run_without(blocked: tuple[str, ...], *args, env=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", NO_TORCH.format(blocked=blocked), *args],
                          capture_output=True, text=True, env=env, timeout=600)


def test_default_model_exports_its_minilm_text_encoder(default_engine_dir):
    manifest = json.loads((default_engine_dir / "manifest.json").read_text())
    assert manifest["query_encoder"] == "minilm:all-MiniLM-L6-v2" and manifest["model"]["ngf"] == 16
    text = manifest["text_encoder"]
    assert text["kind"] == "minilm" and text["onnx"] == "text_encoder.onnx" and text["context_length"] == 256
    assert (default_engine_dir / text["tokenizer"]).is_file() and text["tokenizer"] == "text_encoder.tokenizer.json"
    parity = manifest["parity"]
    assert parity["text_encoder.onnx"]["against"] == "sentence-transformers"
    assert parity["text_encoder.onnx"]["min_cosine"] >= 0.9999
    fp16 = parity["text_encoder.fp16.onnx"]
    assert fp16["kept"] == (fp16["min_cosine"] >= 0.999) == (text["onnx_fp16"] == "text_encoder.fp16.onnx")
    assert parity["separator.onnx"]["mask_snr_db"] >= 90


def test_engine_folder_serves_text_queries_without_torch(default_engine_dir, tmp_path):
    """`embed --engine` runs with torch, sentence-transformers and transformers unimportable, matches the
    torch MiniLM encoder, and fills the same cache entries (the same encoder id) that it reads."""
    import os

    from clipsep_rt.query import EmbeddingCache, MiniLMEncoder

    cache = tmp_path / "cache"
    env = {**os.environ, "CLIPSEP_RT_CACHE": str(cache)}
    blocked = ("torch", "sentence_transformers", "transformers", "open_clip")
    done = _run_without(blocked, "embed", "violin", "dog barking", "--engine", str(default_engine_dir),
                        "-o", str(tmp_path / "q.npz"), env=env)
    assert done.returncode == 0, done.stderr
    assert "minilm:all-MiniLM-L6-v2 (384 values each" in done.stdout
    with np.load(tmp_path / "q.npz") as stored:
        onnx_rows = np.stack([stored["violin"], stored["dog barking"]])
    torch_rows = MiniLMEncoder().encode_text(["violin", "dog barking"])
    assert np.min(np.sum(onnx_rows * torch_rows, axis=1)) >= 0.9999
    cached = EmbeddingCache(cache).get(MiniLMEncoder.encoder_id, "violin")
    assert cached is not None and float(cached @ torch_rows[0]) >= 0.9999


def test_engine_folder_separates_by_text_without_sentence_transformers(default_engine_dir, tmp_path):
    write_wav(tmp_path / "x.wav", (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32))
    done = _run_without(("sentence_transformers", "transformers", "open_clip"), str(tmp_path / "x.wav"),
                        "-q", "violin", "--no-cache", "--engine", str(default_engine_dir), "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "x_violin.wav").is_file()
