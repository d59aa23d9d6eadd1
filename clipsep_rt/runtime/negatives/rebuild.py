"""Rebuild the bundled "other sounds" of query by example from the training corpus.

    .venv/bin/python clipsep_rt/runtime/negatives/rebuild.py [--corpus corpus] [--packages .cache/corpus-pkgs]

For each class of CLASSES: the first train-split clip of corpus/index.csv (by path) that is at
least SECONDS long, from a package of ../shared/corpus/allowed_packages.txt and not listed in
../shared/corpus/excluded_clips.txt; its loudest SECONDS (1 s steps) as 16 kHz mono FLAC,
peak-normalised to -3 dBFS. NOTICE.md lists each file's package, source file and the
package's copyright file. Only training-corpus audio: never the dev set or held-out packages.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CLASSES = ("man_speaking", "woman_speaking", "music", "rain", "wind", "crowd", "traffic", "car_engine", "birds",
           "river", "waterfall", "piano")
SECONDS = 4
RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--packages", type=Path, default=ROOT / ".cache" / "corpus-pkgs")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    allowed = _listed(args.shared / "allowed_packages.txt")
    excluded = {"/".join(line.split("\t")) for line in _listed(args.shared / "excluded_clips.txt")}
    rows = sorted(csv.DictReader(open(args.corpus / "index.csv", newline="")), key=lambda row: row["audio"])
    for old in HERE.glob("*.flac"):
        old.unlink()
    notes = []
    for name in CLASSES:
        row = next(row for row in rows if row["split"] == "train" and row["audio"].split("/")[1] == name
                   and float(row["duration_s"]) >= SECONDS and row["source"].split("/")[0] in allowed
                   and row["source"] not in excluded)
        samples, rate = sf.read(args.corpus / row["audio"], dtype="float32")
        assert rate == RATE and samples.ndim == 1, row["audio"]
        starts = range(0, len(samples) - SECONDS * RATE + 1, RATE)
        first = max(starts, key=lambda start: float(np.sum(samples[start:start + SECONDS * RATE] ** 2)))
        piece = samples[first:first + SECONDS * RATE]
        piece = piece * (10 ** (-3 / 20) / max(float(np.abs(piece).max()), 1e-9))
        sf.write(HERE / f"{name}.flac", piece, RATE, subtype="PCM_16")
        package = row["source"].split("/")[0]
        notes.append((name, package, row["source"], _license(args.packages / package, package)))
    _write_notice(notes)


def _listed(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def _license(root: Path, package: str) -> str:
    """The package's copyright file's License: lines (its first few distinct ones)."""
    copyright_file = root / "usr" / "share" / "doc" / package / "copyright"
    if not copyright_file.is_file():
        return "see the package's copyright file"
    found = []
    for line in copyright_file.read_text(errors="replace").splitlines():
        if line.startswith("License:") and line[8:].strip() and line[8:].strip() not in found:
            found.append(line[8:].strip())
    if found:
        return ", ".join(found[:4])
    text = copyright_file.read_text(errors="replace")
    kinds = [name for phrase, name in (("General Public License", "GPL"), ("Creative Commons", "Creative Commons"),
                                       ("Redistribution and use", "BSD-style")) if phrase in text]
    return f"not machine-readable; its text names: {', '.join(kinds) or 'see it'}"


def _write_notice(notes: list[tuple[str, str, str, str]]) -> None:
    lines = ["# Other sounds for query by example", "",
             "Query by example (`--query-audio`, `clipsep-rt embed --audio`) mixes the example with these "
             "sounds to fit a query vector. They are cut from the training corpus (Debian packages of "
             "`../shared/corpus/allowed_packages.txt`) by `rebuild.py` in this folder: "
             f"{SECONDS} s each, 16 kHz mono FLAC, the loudest part of one train clip per class.", "",
             "| file | package | source file (in the package) | license (the package's copyright file) |",
             "|---|---|---|---|"]
    lines += [f"| {name}.flac | {package} | `{source.split('/', 1)[1]}` | {license_} |"
              for name, package, source, license_ in notes]
    (HERE / "NOTICE.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
