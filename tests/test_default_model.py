"""The bundled default model (v3) on the shipped example: a dog and an acoustic guitar from the dev set's
held-out packages (examples/make_dog_guitar.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors import safe_open

from clipsep_rt.api import Separator
from clipsep_rt.cli import main
from clipsep_rt.model import load_checkpoint
from clipsep_rt.model.weights import DEFAULT_MODEL_NAME, MODEL_CARD, default_checkpoint
from clipsep_rt.dsp.metrics import separation_metrics

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dog_guitar"
MAX_BYTES = 40 * 1024 * 1024


def _read(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32")
    assert rate == 16000
    return samples


def _energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x, dtype=np.float64)))


def test_default_model_ships_as_fp16_within_the_size_limit():
    path = default_checkpoint()
    assert path.name == DEFAULT_MODEL_NAME and path.stat().st_size <= MAX_BYTES
    checkpoint = load_checkpoint(path)
    assert checkpoint.query_encoder.startswith("minilm") and checkpoint.model_config.noise_heads == 0
    assert checkpoint.provenance["model_type"] == "clipsep" and checkpoint.provenance["dev"]["sdri_label"] > 4
    with safe_open(str(path), "pt") as stored:
        tensors = {key: stored.get_tensor(key) for key in stored.keys()}
    half = sum(t.numel() for t in tensors.values() if t.dtype == torch.float16)
    assert half > 0.99 * sum(t.numel() for t in tensors.values())
    assert MODEL_CARD.is_file()


def test_cli_without_checkpoint_separates_the_example_by_text(tmp_path):
    """SDRi > 3 dB for "dog barking", and an unrelated query takes far less energy than the right one
    (at least 3 dB less, under a half; measured for the step-7,500 v3 model in fp32: SDRi +8.4 dB,
    the unrelated query 6.9 dB less)."""
    out = tmp_path / "out"
    code = main([str(EXAMPLE / "mixture.wav"), "-q", "dog barking", "-q", "a bell ringing", "-o", str(out),
                 "--precision", "fp32", "--quiet", "--no-cache"])
    assert code == 0
    mixture, dog, guitar = (_read(EXAMPLE / f"{name}.wav") for name in ("mixture", "dog", "guitar"))
    estimate = _read(out / "mixture_dog_barking.wav")
    unrelated = _read(out / "mixture_a_bell_ringing.wav")
    scores = separation_metrics(estimate, dog, guitar, mixture)
    assert scores.sdri > 3, scores
    assert _energy(unrelated) < 0.5 * _energy(estimate)


def test_api_opens_the_default_model():
    separator = Separator.open(device="cpu", precision="fp32")
    assert separator.noise_heads == 0
