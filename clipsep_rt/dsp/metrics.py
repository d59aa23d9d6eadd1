"""Separation metrics: BSS Eval v4 (SDR/SIR/SAR) over the whole signal, SDRi and SI-SDR.

`bss_eval_v4` reproduces museval's v4 metrics for mono signals with one window covering the
whole signal (`museval.evaluate(refs, ests, win=n, hop=n)`, i.e. `museval.metrics.bss_eval`
with `bsseval_sources_version=False`, no permutation, time-invariant 512-tap distortion
filters), the setting of the CLIPSep paper. It follows museval's algorithm (least-squares
projection of the estimate on delayed copies of the references, correlations via FFT) with
real FFTs and a single solve per source, so it needs no museval (which pulls in musdb,
stempeg and ffmpeg).

For mono signals the v4 "image" decomposition gives
    SDR = 10 log10(|s|^2 / |est - s|^2)
    SIR = 10 log10(|P_s est|^2 / |P_all est - P_s est|^2)
    SAR = 10 log10(|P_all est|^2 / |est - P_all est|^2)
where P_s projects onto 512 delays of the target and P_all onto 512 delays of every reference.
Like museval, a silent reference or estimate gives NaN.
"""

from __future__ import annotations

import math

from typing import NamedTuple

import numpy as np

FILTERS_LEN = 512


class BssMetrics(NamedTuple):
    sdr: float
    sir: float
    sar: float


def _safe_db(num: float, den: float) -> float:
    if den == 0:
        return float("inf")
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(num / den))


def _lagged(corr: np.ndarray, filters_len: int) -> np.ndarray:
    """corr[0], corr[-1], ..., corr[-(L-1)]: the correlation at lags 0..L-1 (museval's order)."""
    return np.concatenate((corr[:1], corr[-1:-filters_len:-1]))


def bss_eval_v4(
    references: np.ndarray, estimate: np.ndarray, target: int = 0, filters_len: int = FILTERS_LEN
) -> BssMetrics:
    """SDR/SIR/SAR (dB) of `estimate` (n,) for source `target` among `references` (S, n).

    Equal to museval v4 with a whole-signal window (see the module docstring).
    """
    refs = np.atleast_2d(np.asarray(references, dtype=np.float64))
    est = np.asarray(estimate, dtype=np.float64).reshape(-1)
    nsrc, n = refs.shape
    if est.shape[0] != n:
        raise ValueError(f"estimate has {est.shape[0]} samples, references {n}")
    if not 0 <= target < nsrc:
        raise ValueError(f"target {target} out of range for {nsrc} references")
    if not np.any(est) or any(not np.any(ref) for ref in refs):
        return BssMetrics(float("nan"), float("nan"), float("nan"))
    from scipy.linalg import toeplitz  # the `report` / `train` extras: energy_ratio_db needs no scipy

    L = filters_len
    n_fft = int(2 ** np.ceil(np.log2(n + L - 1.0)))
    sf = np.fft.rfft(refs, n=n_fft, axis=1)
    sef = np.fft.rfft(est, n=n_fft)

    # G: (S*L, S*L) correlations of delayed references; D: (S*L,) with the estimate.
    G = np.zeros((nsrc * L, nsrc * L))
    for i in range(nsrc):
        for j in range(i, nsrc):
            ssf = np.fft.irfft(sf[j] * np.conj(sf[i]), n=n_fft)
            block = toeplitz(_lagged(ssf, L), r=ssf[:L])
            G[i * L:(i + 1) * L, j * L:(j + 1) * L] = block.T
            G[j * L:(j + 1) * L, i * L:(i + 1) * L] = block
    D = np.concatenate([_lagged(np.fft.irfft(sf[j] * np.conj(sef), n=n_fft), L) for j in range(nsrc)])
    eps = np.finfo(float).eps
    C = np.linalg.solve(G + eps * np.eye(nsrc * L), D).reshape(nsrc, L)
    t = slice(target * L, (target + 1) * L)
    Cj = np.linalg.solve(G[t, t] + eps * np.eye(L), D[t])

    m = n + L - 1

    def project(filters: np.ndarray, spectra: np.ndarray) -> np.ndarray:
        return np.fft.irfft((np.fft.rfft(filters, n=n_fft, axis=-1) * spectra).sum(axis=0), n=n_fft)[:m]

    proj_target = project(Cj[None], sf[target:target + 1])
    proj_all = project(C, sf)
    s_true = np.zeros(m)
    s_true[:n] = refs[target]
    est_pad = np.zeros(m)
    est_pad[:n] = est
    sdr = _safe_db(np.sum(s_true**2), np.sum((est_pad - s_true) ** 2))
    sir = _safe_db(np.sum(proj_target**2), np.sum((proj_all - proj_target) ** 2))
    sar = _safe_db(np.sum(proj_all**2), np.sum((est_pad - proj_all) ** 2))
    return BssMetrics(sdr, sir, sar)


def si_sdr(estimate: np.ndarray, reference: np.ndarray, zero_mean: bool = False) -> float:
    """Scale-invariant SDR (Le Roux et al., 2019) in dB: 10 log10(|a s|^2 / |a s - est|^2), a = <est, s>/|s|^2."""
    est = np.asarray(estimate, dtype=np.float64).reshape(-1)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if zero_mean:
        est, ref = est - est.mean(), ref - ref.mean()
    energy = np.dot(ref, ref)
    if energy == 0:
        return float("nan")
    target = np.dot(est, ref) / energy * ref
    return _safe_db(np.sum(target**2), np.sum((target - est) ** 2))


class SeparationMetrics(NamedTuple):
    sdr: float
    sir: float
    sar: float
    sdri: float  # SDR(estimate) - SDR(mixture as the estimate)
    si_sdr: float
    si_sdri: float  # SI-SDR(estimate) - SI-SDR(mixture)


def two_source_sdr(estimate: np.ndarray, target: np.ndarray, interference: np.ndarray) -> float:
    """BSS Eval v4 SDR (dB) of `estimate` (n,) for `target` (n,), `interference` (n,) being the
    mixture's other source."""
    references = np.stack([np.asarray(target, np.float64), np.asarray(interference, np.float64)])
    return float(bss_eval_v4(references, estimate, 0).sdr)


def separation_metrics(estimate: np.ndarray, target: np.ndarray, interference: np.ndarray, mixture: np.ndarray | None = None) -> SeparationMetrics:
    """All metrics of `estimate` for `target` in a two-source mixture (mixture = target + interference by default)."""
    references = np.stack([np.asarray(target, np.float64), np.asarray(interference, np.float64)])
    mix = references.sum(axis=0) if mixture is None else np.asarray(mixture, np.float64)
    est = bss_eval_v4(references, estimate, 0)
    base = bss_eval_v4(references, mix, 0)
    est_si, base_si = si_sdr(estimate, target), si_sdr(mix, target)
    return SeparationMetrics(est.sdr, est.sir, est.sar, est.sdr - base.sdr, est_si, est_si - base_si)


ENERGY_FLOOR_DB = -100.0  # energy_ratio_db of a silent estimate


def energy_ratio_db(estimate: np.ndarray, mixture: np.ndarray, floor_db: float = ENERGY_FLOOR_DB) -> float:
    """10 log10(|estimate|^2 / |mixture|^2), floored at `floor_db` (a silent estimate); NaN for a silent mixture."""
    mix_energy = float(np.sum(np.asarray(mixture, np.float64) ** 2))
    if mix_energy == 0:
        return math.nan
    ratio = float(np.sum(np.asarray(estimate, np.float64) ** 2)) / mix_energy
    return max(floor_db, 10 * math.log10(ratio)) if ratio > 0 else floor_db
