"""BSS Eval v4 (whole-signal window) against museval; SI-SDR and SDRi hand checks."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from clipsep_rt.dsp.metrics import bss_eval_v4, separation_metrics, si_sdr


def _museval_metrics():
    """museval.metrics, loaded from its file: `import museval` needs musdb/stempeg and ffmpeg."""
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("museval is not installed (pip install museval): cannot compare BSS Eval v4 with it")
    path = f"{list(spec.submodule_search_locations)[0]}/metrics.py"
    module_spec = importlib.util.spec_from_file_location("_museval_metrics", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _examples():
    rng = np.random.default_rng(1234)
    n = 16000
    t = np.arange(n) / 16000
    tone = np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    noise = 0.3 * rng.standard_normal(n)
    chirp = np.sin(2 * np.pi * (200 + 800 * t) * t)
    yield np.stack([tone, noise]), np.stack([tone + 0.3 * noise + 0.05 * rng.standard_normal(n),
                                             np.convolve(noise, [0.6, 0.3, 0.1])[:n] + 0.2 * tone])
    yield np.stack([chirp, tone]), np.stack([0.5 * chirp + 0.5 * tone + 0.05 * noise, np.roll(tone, 40) + 0.1 * chirp])
    yield np.stack([noise, chirp]), np.stack([0.8 * noise + 0.4 * chirp ** 3, chirp + 0.9 * noise + 0.05 * tone])


def test_agrees_with_museval_v4_whole_signal():
    metrics = _museval_metrics()
    for references, estimates in _examples():
        sdr, _, sir, sar, _ = metrics.bss_eval(
            references[..., None], estimates[..., None], window=np.inf, hop=np.inf,
            compute_permutation=False, bsseval_sources_version=False,
        )
        for j in range(2):
            ours = bss_eval_v4(references, estimates[j], j)
            assert ours.sdr == pytest.approx(sdr[j, 0], abs=0.01)
            assert ours.sir == pytest.approx(sir[j, 0], abs=0.01)
            assert ours.sar == pytest.approx(sar[j, 0], abs=0.01)


def test_si_sdr_by_hand():
    reference = np.array([1.0, 0.0, -1.0, 0.0])
    # estimate = 2 * reference + e with e orthogonal to the reference: target 2s (energy 8), error e (energy 2)
    estimate = 2 * reference + np.array([0.0, 1.0, 0.0, 1.0])
    assert si_sdr(estimate, reference) == pytest.approx(10 * np.log10(8 / 2))
    assert si_sdr(5 * estimate, reference) == pytest.approx(10 * np.log10(4))  # scale-invariant


def test_sdri_of_the_mixture_is_zero():
    rng = np.random.default_rng(0)
    target, interference = rng.standard_normal(8000), 0.5 * rng.standard_normal(8000)
    scores = separation_metrics(target + interference, target, interference)
    assert scores.sdri == pytest.approx(0.0, abs=1e-9)
    assert scores.si_sdri == pytest.approx(0.0, abs=1e-9)
    better = separation_metrics(target + 0.1 * interference, target, interference)
    assert better.sdri > 10


def test_silent_estimate_is_nan():
    references = np.ones((2, 1000))
    assert np.isnan(bss_eval_v4(references, np.zeros(1000), 0).sdr)
