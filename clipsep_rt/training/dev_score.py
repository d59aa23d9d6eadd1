"""Scoring a separator being trained on the real-sound dev set (`training.devset`), fast enough
to run inside the training loop.

Every dev mixture is one 65,535-sample window, so one U-Net pass per mixture gives the
masks of three queries at once (`baselines.source_logits`): the target's label, an unseen
paraphrase of it, and an unrelated class. The masks are applied as the runtime applies them
(soft masks from the log grid back to the linear STFT grid, `dsp.block_spectral`), and

- `sdri_label`, `sdri_paraphrase`: mean SDRi (dB): the SDR of the estimate minus that of the
  mixture, against the target, with SDR = 10 log10(|s|^2 / |s - estimate|^2) (plain SDR: a
  masked mixture has no filtering for BSS Eval's distortion filters to forgive; BSS Eval v4 SDR is
  at least this and costs 20 times as much: the benchmarks report it, for example
  `benchmarks/separation_quality.py --devset`);
- `unrelated_db`: mean of the unrelated query's output energy minus the label query's, each
  relative to the mixture (`dsp.metrics.energy_ratio_db`, as `benchmarks/separation_quality.py`
  computes it): how much quieter a query for an absent sound is (lower is better).

Shapes: N mixtures, n = 65,535 samples, F = 256 log bins, L = 513 linear bins, T frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.block_spectral import BlockFrontEnd, apply_real_masks
from clipsep_rt.dsp.metrics import energy_ratio_db
from clipsep_rt.training.baselines import source_logits
from clipsep_rt.training.devset_reader import load_devset

DEV_COLUMNS = ("sdri_label", "sdri_paraphrase", "unrelated_db")
QUERY_KINDS = ("label", "paraphrase", "unrelated")


@dataclass(frozen=True)
class DevScore:
    sdri_label: float
    sdri_paraphrase: float
    unrelated_db: float
    count: int

    def as_row(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in DEV_COLUMNS}

    def __str__(self) -> str:
        return (f"dev SDRi {self.sdri_label:.2f} dB (paraphrase {self.sdri_paraphrase:.2f}), "
                f"unrelated query {self.unrelated_db:+.1f} dB, {self.count} mixtures")


def _sdr(target: np.ndarray, estimate: np.ndarray) -> float:
    """Plain SDR in dB of `estimate` against `target` (inf for a perfect estimate)."""
    target, error = target.astype(np.float64), estimate.astype(np.float64) - target
    signal, noise = float(np.dot(target, target)), float(np.dot(error, error))
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-20) / noise)


class DevScorer:
    """The dev set held in memory with its query embeddings; `score(separator)` runs it.

    `embed_texts(texts) -> (len(texts), D) float32` embeds queries the way training does.
    `limit` keeps the first mixtures only (tests and quick looks).
    """

    def __init__(self, path: str | Path, embed_texts: Callable[[Sequence[str]], np.ndarray],
                 limit: int | None = None, batch_size: int = 16, spectral: SpectralConfig = SpectralConfig()):
        devset = load_devset(path)
        mixtures = devset.mixtures[:limit] if limit else devset.mixtures
        pairs = [devset.load_mixture(i) for i in range(len(mixtures))]
        self.targets = np.stack([t for t, _ in pairs]).astype(np.float32)  # (N, n)
        self.interferences = np.stack([i for _, i in pairs]).astype(np.float32)  # (N, n)
        self.mixtures = self.targets + self.interferences
        self.front = BlockFrontEnd(spectral)
        self.specs = np.stack([self.front.stft(x) for x in self.mixtures])  # (N, L, T) complex64
        self.log_mags = np.stack([self.front.warped_log_magnitude(np.abs(s)) for s in self.specs])[:, None]  # (N, 1, F, T)
        texts = {kind: [] for kind in QUERY_KINDS}
        for m in mixtures:
            texts["label"].append(m.target_labels[0])
            texts["paraphrase"].append(m.paraphrase)
            texts["unrelated"].append(m.unrelated_labels[0])
        unique = sorted({t for rows in texts.values() for t in rows})
        table = dict(zip(unique, np.asarray(embed_texts(unique), dtype=np.float32)))
        self.embeddings = np.stack([[table[texts[k][i]] for k in QUERY_KINDS] for i in range(len(mixtures))])  # (N, 3, D)
        self.input_sdr = np.array([_sdr(t, x) for t, x in zip(self.targets, self.mixtures)])
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.mixtures)

    def estimates(self, separator: torch.nn.Module) -> np.ndarray:
        """(N, 3, n) float32: each mixture under its label, paraphrase and unrelated masks."""
        parameter = next(separator.parameters())
        length = self.mixtures.shape[1]
        out = np.zeros((len(self), len(QUERY_KINDS), length), dtype=np.float32)
        was_training = separator.training
        separator.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(self), self.batch_size):
                    stop = min(start + self.batch_size, len(self))
                    log_mag = torch.from_numpy(self.log_mags[start:stop]).to(parameter.device)
                    queries = torch.from_numpy(self.embeddings[start:stop]).to(parameter.device)
                    logits = source_logits(separator, log_mag, queries, noise_heads=False).query.float()
                    probabilities = torch.sigmoid(logits).cpu().numpy()  # (B, 3, F, T)
                    for b, item in enumerate(probabilities):
                        spec = apply_real_masks(self.specs[start + b], self.front.linear_masks(item))
                        out[start + b] = self.front.istft(spec, length)
        finally:
            separator.train(was_training)
        return out

    def score(self, separator: torch.nn.Module) -> DevScore:
        estimates = self.estimates(separator)
        sdri = {kind: [] for kind in ("label", "paraphrase")}
        unrelated = []
        for i, (label, paraphrase, other) in enumerate(estimates):
            target, mixture = self.targets[i], self.mixtures[i]
            sdri["label"].append(_sdr(target, label) - self.input_sdr[i])
            sdri["paraphrase"].append(_sdr(target, paraphrase) - self.input_sdr[i])
            unrelated.append(energy_ratio_db(other, mixture) - energy_ratio_db(label, mixture))
        return DevScore(_finite_mean(sdri["label"]), _finite_mean(sdri["paraphrase"]), _finite_mean(unrelated), len(self))


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
