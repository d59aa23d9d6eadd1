"""Rebuild the shipped demo example from the corpus's held-out (test) clips.

examples/violin_cow/ holds a violin phrase (fluid-soundfont-gm rendered by the corpus
builder) and a cow mooing twice (0ad-data), both from the corpus's test split, so the
default model never trained on them:

    violin.wav     the target of the query "violin" (ground truth)
    cow.wav        the interference (the cow placed at 0.8 s and 4.2 s)
    mixture.wav    violin + cow, the cow at 0 dB against the violin where they overlap

    python examples/make_violin_cow.py      # needs a corpus v2 build (see below)

The violin was rendered from fluid-soundfont-gm by the corpus v2 builder; corpus v3 (`make
corpus`) no longer uses that package (it is no longer an allowed source), so this script needs a
corpus v2 build (the corpus builder of commit b1b621f with its allowed list of then). The
shipped WAVs stay as they are.

All three are 16 kHz mono 16-bit WAV; the mixture is the exact sample sum of the two
others as stored (so violin + cow == mixture up to 16-bit rounding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus" / "audio"
VIOLIN = CORPUS / "violin" / "fluidsynth_violin_seed0_phrase7_01279.wav"
COW = CORPUS / "cow" / "cattle_04_00426.wav"
OUT = Path(__file__).resolve().parent / "violin_cow"
COW_ONSETS_S = (0.8, 4.2)
PEAK = 0.8  # mixture peak after scaling


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def main() -> None:
    for source in (VIOLIN, COW):
        if not source.is_file():
            raise SystemExit(f"error: {source} is missing: this example is rebuilt from a corpus v2 build (see the docstring)")
    violin, rate = sf.read(VIOLIN, dtype="float32")
    cow, cow_rate = sf.read(COW, dtype="float32")
    assert rate == cow_rate == 16000, (rate, cow_rate)
    interference = np.zeros_like(violin)
    for onset in COW_ONSETS_S:
        start = int(onset * rate)
        piece = cow[: len(violin) - start]
        # 0 dB against the violin over the span the cow occupies
        span = violin[start : start + len(piece)]
        interference[start : start + len(piece)] += piece * (_rms(span) / max(_rms(piece), 1e-9))
    scale = PEAK / float(np.max(np.abs(violin + interference)))
    target, other = (np.round(x * scale * 32767).astype(np.int16) for x in (violin, interference))
    mixture = (target.astype(np.int32) + other.astype(np.int32)).clip(-32768, 32767).astype(np.int16)
    OUT.mkdir(exist_ok=True)
    for name, samples in (("violin", target), ("cow", other), ("mixture", mixture)):
        sf.write(OUT / f"{name}.wav", samples, rate, subtype="PCM_16")
    print(f"wrote {OUT}: {len(violin) / rate:.2f} s at {rate} Hz")


if __name__ == "__main__":
    main()
