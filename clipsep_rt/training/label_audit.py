"""Label audit: one contact sheet per class (``python -m clipsep_rt.training.label_audit``).

Each sheet is a PNG of log-frequency spectrograms of a few clips of the class (a seeded
choice spread over its packages and splits), each titled with its split and source path, so
a wrong rule shows as clips that do not look (or, played, sound) like the label.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.media import load_audio
from clipsep_rt.training.index import read_index

logger = logging.getLogger(__name__)
SAMPLE_RATE = 16000


def log_frequency_spectrogram(x: np.ndarray, sr: int = SAMPLE_RATE, n_fft: int = 1024, hop: int = 256, bins: int = 96):
    """(bins, frames) dB magnitudes on a log-frequency axis from 40 Hz to sr/2; and the bin centres."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    mag = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1)).T  # (freq, frames)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    centres = np.geomspace(40, sr / 2, bins)
    out = np.stack([np.interp(centres, freqs, mag[:, t]) for t in range(frames)], axis=1)
    return 20 * np.log10(out + 1e-6), centres


def _pick(clips, per_class: int, seed: int, name: str):
    by_origin = defaultdict(list)
    for clip in clips:
        parts = re.split(r"[/:]", clip.source.removeprefix("group:"))
        by_origin[parts[1] if parts[0] == "tts" and len(parts) > 1 else parts[0]].append(clip)  # the package (or TTS engine)
    rng = random.Random(f"{seed}:{name}")
    pools = [sorted(v, key=lambda c: c.source) for _, v in sorted(by_origin.items())]
    for pool in pools:
        rng.shuffle(pool)
    chosen = []
    while len(chosen) < per_class and any(pools):  # round-robin over packages
        for pool in pools:
            if pool and len(chosen) < per_class:
                chosen.append(pool.pop())
    return chosen


def write_contact_sheets(index, out_dir, per_class: int = 6, seed: int = 0, max_seconds: float = 6.0, log=logger.info) -> list[Path]:
    """One PNG per class under out_dir (``<class>.png``); returns the paths written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ClipsepError(f"the label audit needs matplotlib (the train or report extra): {error}") from None
    clips = read_index(index)
    by_class = defaultdict(list)
    for clip in clips:
        by_class[clip.audio.parent.name].append(clip)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(by_class):
        chosen = _pick(by_class[name], per_class, seed, name)
        cols = 2
        rows = (len(chosen) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(12, 2.6 * rows), squeeze=False)
        label = by_class[name][0].paraphrases[0] if by_class[name][0].paraphrases else name
        fig.suptitle(f"{name}: \"{label}\" ({len(by_class[name])} clips)", fontsize=11)
        for ax, clip in zip(axes.ravel(), chosen):
            x = load_audio(clip.audio, SAMPLE_RATE, min_samples=1).samples[: int(max_seconds * SAMPLE_RATE)]
            spec, centres = log_frequency_spectrogram(x)
            top = float(spec.max())
            ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                      extent=(0, len(x) / SAMPLE_RATE, 0, len(centres)))
            ticks = [i for i, f in enumerate(centres) if i % 24 == 0]
            ax.set_yticks(ticks, [f"{centres[i]:.0f}" for i in ticks], fontsize=6)
            ax.tick_params(axis="x", labelsize=6)
            source = clip.source if len(clip.source) <= 90 else "..." + clip.source[-87:]
            ax.set_title(f"[{clip.split}] {source}", fontsize=6.5, loc="left")
        for ax in axes.ravel()[len(chosen):]:
            ax.axis("off")
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        with atomic_output(path, overwrite=True) as temporary:
            fig.savefig(temporary, format="png", dpi=80)
        plt.close(fig)
        written.append(path)
    log(f"label audit: {len(written)} contact sheets -> {out_dir}")
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write one contact sheet (spectrograms + source paths) per corpus class.")
    parser.add_argument("index", help="the corpus index CSV (corpus/index.csv)")
    parser.add_argument("--out", default="runs/label_audit/", help="folder for the PNGs")
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        write_contact_sheets(args.index, args.out, args.per_class, args.seed, log=print)
    except ClipsepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
