"""`--report` with the queries the batch separates by: exclusions (`--exclude...`) and fitted
queries (`--query-audio`). The report shows each output as the batch writes it, under its label.

A tiny random-weight CLIPSep-NIT model (query head wide enough to fit queries) and stored
query vectors: no CLIP weights needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import write_wav

from clipsep_rt.cli import main

pytest.importorskip("matplotlib", reason="the report needs matplotlib: pip install 'clipsep-rt[report]'")

RATE = 16000
DIM = 64


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """The model, a 3 s mixture of a tone and noise, a clip of the tone, two query vectors."""
    from clipsep_rt.config import ModelConfig
    from clipsep_rt.model import CLIPSepSeparator, checkpoint_from_model, save_checkpoint

    folder = tmp_path_factory.mktemp("report_queries")
    torch.manual_seed(0)
    model = CLIPSepSeparator(ModelConfig(ngf=2, query_dim=DIM, noise_heads=2))
    save_checkpoint(checkpoint_from_model(model, None), folder / "nit.safetensors")
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    write_wav(folder / "mix.wav", tone + (0.05 * rng.standard_normal(len(t))).astype(np.float32))
    write_wav(folder / "clip.wav", tone[: 2 * RATE])
    for name in ("guitar", "dog"):
        np.save(folder / f"{name}.npy", rng.standard_normal(DIM).astype(np.float32))
    return folder


def _run(files: Path, name: str, *queries: str) -> tuple[Path, Path]:
    out, report = files / f"out_{name}", files / f"report_{name}"
    code = main(["-c", str(files / "nit.safetensors"), "--precision", "fp32", "--quiet", str(files / "mix.wav"),
                 *queries, "-o", str(out), "--report", str(report)])
    assert code == 0
    return out, report


@pytest.mark.parametrize("name, queries, label, stem", [
    ("excluded", ["--query-embedding", "guitar.npy", "--exclude-embedding", "dog.npy"], "guitar without dog",
     "guitar_without_dog"),
    ("all_but", ["--exclude-embedding", "dog.npy"], "all but dog", "all_but_dog"),
    ("fitted", ["--query-audio", "clip.wav", "--exclude-embedding", "dog.npy"], "clip without dog", "clip_without_dog"),
])
def test_report_shows_the_outputs_the_batch_wrote_with_exclusions(files, name, queries, label, stem):
    out, report = _run(files, name, *[str(files / q) if q.endswith((".npy", ".wav")) else q for q in queries])
    folder = report / "01-mix"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["mixture.png", "mixture.wav", f"q1-{stem}.png", f"q1-{stem}.wav"])  # no noise heads: exclusions combine masks
    shown, rate = sf.read(folder / f"q1-{stem}.wav", dtype="float32")
    written, _ = sf.read(out / f"mix_{stem}.wav", dtype="float32")
    assert rate == RATE and len(shown) == len(written)
    np.testing.assert_allclose(shown, written, atol=2 / 32768)  # the report's 16-bit copy of the batch's output
    mixture, _ = sf.read(files / "mix.wav", dtype="float32")
    assert 0 < np.sum(written**2) < np.sum(mixture**2)  # something left out
    assert label in (report / "index.html").read_text(encoding="utf-8")


def test_report_without_exclusions_still_shows_the_noise_heads(files):
    out, report = _run(files, "plain", "--query-embedding", str(files / "guitar.npy"))
    names = {p.name for p in (report / "01-mix").iterdir()}
    assert {"q1-guitar.wav", "q1-guitar-noise1.wav", "q1-guitar-noise2.wav"} <= names
    shown, _ = sf.read(report / "01-mix" / "q1-guitar.wav", dtype="float32")
    written, _ = sf.read(out / "mix_guitar.wav", dtype="float32")
    np.testing.assert_allclose(shown, written, atol=2 / 32768)
