"""Rebuild the shipped demo example from the real-sound dev set (held-out packages only).

examples/dog_guitar/ holds mixture 31 of the dev set (`make devset`, devset/README.md): a dog
barking (scratch, Media/Sounds/Animal/Dog2.wav, CC-BY-SA-3.0) and an acoustic guitar
(sound-icons, guitar-12.wav, GPL-2+) at the dev set's target-to-interference ratio of +2.7 dB,
its 4.1 s played twice (8.2 s: enough network windows for `export --int8 --calibration`). Both
packages are held out from training, so the default model never trained on them:

    dog.wav        the target of the query "dog barking" (ground truth)
    guitar.wav     the interference (and the target of "acoustic guitar")
    mixture.wav    dog + guitar

It was chosen among the dev set's instrument/animal pairs as one whose two sounds both
separate well with model v3 (label SDRi 8.3 dB, the guitar's 6.6 dB; the dev set's mean is
4.2 dB): a demonstration, not a benchmark (BENCHMARKS.md has those).

    python examples/make_dog_guitar.py      # needs `make devset`

All three are 16 kHz mono 16-bit WAV; the mixture is the exact sample sum of the two others as
stored (so dog + guitar == mixture up to 16-bit rounding).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
DEVSET = ROOT / "devset" / "devset.json"
MIXTURE_INDEX = 31
OUT = Path(__file__).resolve().parent / "dog_guitar"
PEAK = 0.8  # mixture peak after scaling; the two sources keep their ratio
REPEATS = 2  # the dev-set window (4.1 s) played this many times


def main() -> None:
    if not DEVSET.is_file():
        raise SystemExit(f"error: {DEVSET} is missing: build the dev set first (make devset)")
    mixture_entry = json.loads(DEVSET.read_text())["mixtures"][MIXTURE_INDEX]
    assert mixture_entry["target_class"] == "dog" and mixture_entry["interference_class"] == "acoustic_guitar"
    sources = []
    for key in ("target_audio", "interference_audio"):
        samples, rate = sf.read(DEVSET.parent / mixture_entry[key], dtype="float32")
        assert rate == 16000, rate
        sources.append(np.tile(samples, REPEATS))
    dog, guitar = sources
    scale = PEAK / float(np.max(np.abs(dog + guitar)))
    target, other = (np.round(x * scale * 32767).astype(np.int16) for x in (dog, guitar))
    mixture = (target.astype(np.int32) + other.astype(np.int32)).clip(-32768, 32767).astype(np.int16)
    OUT.mkdir(exist_ok=True)
    for name, samples in (("dog", target), ("guitar", other), ("mixture", mixture)):
        sf.write(OUT / f"{name}.wav", samples, rate, subtype="PCM_16")
    print(f"wrote {OUT}: {len(dog) / rate:.2f} s at {rate} Hz")


if __name__ == "__main__":
    main()
