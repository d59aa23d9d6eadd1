"""Shared fixtures: the reference CLIPSep-NIT checkpoint and its golden outputs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REFERENCE = Path(__file__).parent / "data" / "reference"
REFERENCE_CHECKPOINT = REFERENCE / "official_small_nit_checkpoint.pt"


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory) -> Path:
    """The suite's user cache (compiled checkpoints, hop probes), shared by its tests, never the user's."""
    return tmp_path_factory.mktemp("user-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, _session_cache, monkeypatch):
    """Every test gets its own embedding cache and the suite's user cache, never the user's."""
    monkeypatch.setenv("CLIPSEP_RT_CACHE", str(tmp_path_factory.mktemp("embedding-cache")))
    monkeypatch.setenv("CLIPSEP_RT_CACHE_DIR", str(_session_cache))
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "official_small_nit_golden.npz") as data:
        return {key: data[key] for key in data}


@pytest.fixture(scope="session")
def reference_checkpoint():
    from clipsep_rt.model import load_checkpoint

    return load_checkpoint(REFERENCE_CHECKPOINT)


@pytest.fixture
def fp32_engine(reference_checkpoint):
    from clipsep_rt.runtime.engines.torch_engine import TorchEngine

    return TorchEngine(reference_checkpoint.build(), "cpu", "fp32")


def torch_istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """The reference iSTFT: torch.istft, centred, periodic Hann, exactly `length` samples
    (the runtime's numpy iSTFT must match it). spec: complex (..., 513, T) -> (..., length)."""
    from clipsep_rt.config import SpectralConfig

    config = SpectralConfig()
    wav = torch.istft(spec.reshape(-1, *spec.shape[-2:]), n_fft=config.n_fft, hop_length=config.hop_length,
                      win_length=config.win_length, window=torch.hann_window(config.win_length), center=True, length=length)
    return wav.reshape(*spec.shape[:-2], length)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((reference - estimate) ** 2), 1e-30)))


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, subtype: str = "FLOAT") -> Path:
    sf.write(path, samples, rate, subtype=subtype)
    return path


@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size, read_only=False) -> a fresh tmpfs of that size below tmp_path; unmounted after."""
    mounted: list[Path] = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        if shutil.which("mount") is None:
            pytest.skip("no `mount` command here: a full or read-only disk needs a tmpfs")
        point = tmp_path / name
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root "
                        "or CAP_SYS_ADMIN")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
