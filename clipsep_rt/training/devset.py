"""The developers' real-sound dev set: two-source mixtures from the held-out Debian packages.

Recipes and checkpoints are chosen on this set, so it is built ONLY from the packages listed
in the held-out file (``shared/corpus/heldout_packages.txt``), which the training corpus never
reads. The build:

1. **Catalogue.** Every audio file of a held-out package (extracted one per folder under
   ``--packages-root``; openclonk's c4group archives are exploded in place with ``c4group``)
   is labelled by `HELDOUT_TABLE`, a reviewed list of (package, path regex, class) rows:
   the class is a class of the training taxonomy, ``AUTO`` takes the taxonomy's own rule
   (`taxonomy.classify_any`) where it was checked to be right, and files no row names are
   dropped (the taxonomy's keyword rules alone mislabel many of these files: openclonk's
   "Fire.ocg/Blast1" is an explosion, sound-icons' "electric-piano" no electricity). Files
   whose decoded audio is identical are kept once; classes with fewer than `MIN_FILES`
   distinct files are dropped.
2. **Sources.** A clip is decoded to 16 kHz mono, its leading and trailing silence trimmed,
   and turned into a window of exactly `WINDOW_SAMPLES` samples filled with sound: a longer
   clip gives a random crop among those with the highest active-frame fraction, a shorter one
   is looped from a random offset (a 10 ms crossfade between repeats of a sustained sound, a
   random gap of at most 0.2 s between repeats of a one-shot).
3. **Levels.** Both windows are normalised to `LEVEL_DBFS` on their *active* frames (RMS of
   the 20 ms frames within 40 dB of the loudest), the interference is scaled so that the
   target-to-interference ratio (TIR, on the same active-frame RMS) is uniform in
   `TIR_DB_RANGE`, and both are scaled together if a peak (of either or of the mixture) would
   reach `PEAK_LIMIT`.
4. **Pairs.** Targets go round-robin over the classes (a fresh random class order each round,
   files drawn from a shuffled cycle per class); the interference class never overlaps the
   target (`hierarchy.classes_overlap`) and comes from another category with probability
   `OTHER_CATEGORY_P` (else any non-overlapping class). Each mixture has three queries: the
   target's taxonomy labels, an unseen `PARAPHRASES` wording, and the labels of an unrelated
   class (overlapping neither source, not in the target's category).

Everything is seeded (default 0): the same packages give the same dev set (the same samples; float WAV headers hold a time stamp).
Output: ``audio/NNNN_target.wav`` and ``audio/NNNN_interference.wav`` (float32, already
scaled: the mixture is exactly their sum), ``devset.json`` and the card ``README.md``.
`load_devset` (`devset_reader`) reads it back. The catalogue is `devset_catalogue`, the
signal steps `devset_audio`, the reviewed tables `devset_tables`.

    python -m clipsep_rt.training.devset --packages-root .cache/heldout-pkgs \\
        --heldout ../shared/corpus/heldout_packages.txt --out devset/
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.media import write_audio_atomic
from clipsep_rt.training import hierarchy, taxonomy
from clipsep_rt.training.devset_audio import LEVEL_DBFS, SAMPLE_RATE, fill_window, oracle_ibm_sdri, scale_pair
from clipsep_rt.training.devset_catalogue import (
    Clip,
    catalogue,
    check_packages_root,
    explode_c4group_archives,
    package_version,
    read_heldout,
)
from clipsep_rt.training.devset_reader import VERSION
from clipsep_rt.training.devset_tables import PARAPHRASES

__all__ = ["DEFAULT_MIXTURES", "WINDOW_SAMPLES", "build_devset", "check_paraphrases", "main", "plan_mixtures",
           "render_card"]

_LOG = logging.getLogger(__name__)
WINDOW_SAMPLES = 65535
TIR_DB_RANGE = (-5.0, 5.0)
OTHER_CATEGORY_P = 0.8
DEFAULT_MIXTURES = 240


# ---------------------------------------------------------------------------- build


def labels_of(cls: str) -> list[str]:
    return taxonomy.all_class_labels()[cls].split("|")


def check_paraphrases(classes) -> None:
    """Every class has a paraphrase that is none of its taxonomy labels."""
    for cls in classes:
        if cls not in PARAPHRASES:
            raise ClipsepError(f"PARAPHRASES: no unseen paraphrase for class {cls!r}")
        if PARAPHRASES[cls].strip().lower() in {label.strip().lower() for label in labels_of(cls)}:
            raise ClipsepError(f"PARAPHRASES: {PARAPHRASES[cls]!r} is a taxonomy label of {cls!r}")


def plan_mixtures(classes: dict[str, int], n: int, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(target, interference, unrelated) class triples: targets round-robin over `classes`
    (shuffled each round), interferences never overlapping the target and from another
    category with probability OTHER_CATEGORY_P, unrelated classes overlapping neither and
    outside the target's category."""
    names = sorted(classes)
    cat = {c: taxonomy.category(c) for c in names}
    plan = []
    order: list[str] = []
    for index in range(n):
        if index % len(names) == 0:
            order = list(rng.permutation(names))
        target = str(order[index % len(names)])
        allowed = [c for c in names if not hierarchy.classes_overlap(target, c)]
        other = [c for c in allowed if cat[c] != cat[target]]
        pool = other if other and (rng.random() < OTHER_CATEGORY_P or len(other) == len(allowed)) else allowed
        if not pool:
            raise ClipsepError(f"class {target!r}: every other dev-set class overlaps it; no interference possible")
        interference = str(rng.choice(pool))
        unrelated_pool = [c for c in names if cat[c] != cat[target] and c != interference
                          and not hierarchy.classes_overlap(c, target) and not hierarchy.classes_overlap(c, interference)]
        if not unrelated_pool:
            raise ClipsepError(f"classes {target!r} + {interference!r}: no unrelated class left")
        plan.append((target, interference, str(rng.choice(unrelated_pool))))
    return plan


def build_devset(
    packages_root: str | os.PathLike,
    heldout: str | os.PathLike,
    out: str | os.PathLike,
    n_mixtures: int = DEFAULT_MIXTURES,
    seed: int = 0,
    overwrite: bool = False,
    oracle: bool = True,
    build_command: str = "",
    log: Callable[[str], None] = _LOG.info,
) -> dict:
    """Build the dev set into `out` (audio/, devset.json, README.md); returns the manifest.

    Where `out` already holds a devset.json (the committed one on a fresh checkout) and not
    `overwrite`, only the audio is rebuilt, and it must be the same dev set: the same mixtures
    of the same files at the same ratios, else a ClipsepError (the packages changed; rebuild
    with `overwrite` and say so). The committed devset.json and README.md are left as they are."""
    start_time = time.monotonic()
    root, out = Path(packages_root), Path(out)
    listed = read_heldout(heldout)
    packages = check_packages_root(root, listed)
    manifest_path = out / "devset.json"
    committed = _committed_mixtures(manifest_path) if manifest_path.exists() and not overwrite else None
    oracle = oracle and committed is None
    for package in packages:
        explode_c4group_archives(root / package)
    versions = {p: package_version(root / p) for p in packages}
    clips = catalogue(root, packages, log)
    if len(clips) < 3:
        raise ClipsepError(f"{root}: only {len(clips)} usable class(es) in the held-out packages; need at least 3")
    check_paraphrases(clips)
    rng = np.random.default_rng(seed)
    plan = plan_mixtures({c: len(v) for c, v in clips.items()}, n_mixtures, rng)
    mixtures = _write_mixtures(plan, clips, out / "audio", rng, seed, oracle, log)
    manifest = _manifest(mixtures, clips, versions, seed, build_command, oracle)
    if committed is not None:
        if _mixture_keys(mixtures) != committed:
            raise ClipsepError(f"{manifest_path}: the held-out packages under {root} give another dev set than this one "
                               f"(package versions now {versions}); rebuild it with --overwrite and say so")
        log(f"devset: audio of the existing {manifest_path} rebuilt and checked ({len(mixtures)} mixtures)")
        return json.loads(manifest_path.read_text())
    manifest["build_seconds"] = round(time.monotonic() - start_time, 1)
    with atomic_output(manifest_path, overwrite=True) as temp:
        temp.write_text(json.dumps(manifest, indent=1) + "\n")
    with atomic_output(out / "README.md", overwrite=True) as temp:
        temp.write_text(render_card(manifest))
    return manifest


def _write_mixtures(plan: list[tuple[str, str, str]], clips: dict[str, list[Clip]], audio_dir: Path,
                    rng: np.random.Generator, seed: int, oracle: bool, log: Callable[[str], None]) -> list[dict]:
    """Render the planned mixtures into `audio_dir`: files cycled per class, windows filled,
    levels set at a drawn TIR; their manifest entries."""
    cycles: dict[str, list[int]] = {}

    def next_clip(cls: str) -> Clip:  # shuffled cycle over the class's files
        if not cycles.get(cls):
            cycles[cls] = list(rng.permutation(len(clips[cls])))
        return clips[cls][cycles[cls].pop()]

    audio_dir.mkdir(parents=True, exist_ok=True)
    mixtures = []
    for index, (t_cls, i_cls, u_cls) in enumerate(plan):
        t_clip, i_clip = next_clip(t_cls), next_clip(i_cls)
        tir = float(np.round(rng.uniform(*TIR_DB_RANGE), 2))
        local = np.random.default_rng([seed, index])
        t_win, t_how = fill_window(t_clip.samples, WINDOW_SAMPLES, local)
        i_win, i_how = fill_window(i_clip.samples, WINDOW_SAMPLES, local)
        t_win, i_win = scale_pair(t_win, i_win, tir)
        stem = f"{index:04d}"
        write_audio_atomic(audio_dir / f"{stem}_target.wav", t_win, SAMPLE_RATE, overwrite=True)
        write_audio_atomic(audio_dir / f"{stem}_interference.wav", i_win, SAMPLE_RATE, overwrite=True)
        entry = {
            "index": index,
            "target_class": t_cls,
            "target_labels": labels_of(t_cls),
            "paraphrase": PARAPHRASES[t_cls],
            "interference_class": i_cls,
            "interference_labels": labels_of(i_cls),
            "unrelated_class": u_cls,
            "unrelated_labels": labels_of(u_cls),
            "tir_db": tir,
            "target_audio": f"audio/{stem}_target.wav",
            "interference_audio": f"audio/{stem}_interference.wav",
            "target_source": t_clip.key,
            "interference_source": i_clip.key,
            "target_category": taxonomy.category(t_cls),
            "interference_category": taxonomy.category(i_cls),
            "target_fill": t_how,
            "interference_fill": i_how,
        }
        if oracle:
            entry["oracle_ibm_sdri_db"] = round(oracle_ibm_sdri(t_win, i_win), 3)
        mixtures.append(entry)
        if (index + 1) % 40 == 0:
            log(f"devset: {index + 1}/{len(plan)} mixtures")
    return mixtures


def _manifest(mixtures: list[dict], clips: dict[str, list[Clip]], versions: dict[str, str], seed: int,
              build_command: str, oracle: bool) -> dict:
    """devset.json's contents (without the build time)."""
    counts = Counter(m["target_class"] for m in mixtures)
    manifest = {
        "version": VERSION,
        "sample_rate": SAMPLE_RATE,
        "window_samples": WINDOW_SAMPLES,
        "seed": seed,
        "tir_db_range": list(TIR_DB_RANGE),
        "level_dbfs_active": LEVEL_DBFS,
        "packages": versions,
        "build_command": build_command,
        "classes": {c: counts.get(c, 0) for c in sorted(clips)},
        "class_categories": {c: taxonomy.category(c) for c in sorted(clips)},
        "class_files": {c: sorted(clip.key for clip in clips[c]) for c in sorted(clips)},
        "label_sources": {clip.key: clip.label_source for c in sorted(clips) for clip in clips[c]},
        "mixtures": mixtures,
    }
    if oracle:
        scores = [m["oracle_ibm_sdri_db"] for m in mixtures if math.isfinite(m["oracle_ibm_sdri_db"])]
        manifest["oracle_ibm_sdri_db_mean"] = round(float(np.mean(scores)), 3) if scores else None
        manifest["oracle_ibm_sdri_db_median"] = round(float(np.median(scores)), 3) if scores else None
    return manifest


def _mixture_keys(mixtures: list[dict]) -> list[tuple]:
    """What makes two dev sets the same: each mixture's classes, files and ratio."""
    return [(m["target_class"], m["interference_class"], m["unrelated_class"], m["target_source"],
             m["interference_source"], float(m["tir_db"])) for m in mixtures]


def _committed_mixtures(manifest_path: Path) -> list[tuple]:
    try:
        return _mixture_keys(json.loads(manifest_path.read_text())["mixtures"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClipsepError(f"{manifest_path}: not a readable dev set manifest ({exc}); rebuild it with --overwrite") from None


# ---------------------------------------------------------------------------- card


def render_card(manifest: dict) -> str:
    """The dev set's card (README.md) from its manifest."""
    by_cat: dict[str, list[str]] = {}
    for cls, cat in manifest["class_categories"].items():
        by_cat.setdefault(cat, []).append(cls)
    lines = [
        "# Dev set: real-sound two-source mixtures from the held-out packages",
        "",
        "Training recipes and checkpoints are chosen on this set. It is built only from the Debian",
        "packages of `shared/corpus/heldout_packages.txt`, which the training corpus never reads:",
        "never train on it. Built by `clipsep_rt/training/devset.py` (see its docstring).",
        "",
        f"- {len(manifest['mixtures'])} mixtures of {manifest['window_samples']} samples at "
        f"{manifest['sample_rate']} Hz ({manifest['window_samples'] / manifest['sample_rate']:.2f} s), seed {manifest['seed']}",
        f"- {len(manifest['classes'])} classes of the training taxonomy, {len(manifest['label_sources'])} distinct source files",
    ]
    if manifest.get("oracle_ibm_sdri_db_mean") is not None:
        lines.append(f"- ideal binary mask (|T| > 0.5 |M|, STFT n_fft 1024, hop 256, Hann, linear grid): SDRi "
                     f"mean {manifest['oracle_ibm_sdri_db_mean']:.2f} dB, median {manifest['oracle_ibm_sdri_db_median']:.2f} dB "
                     "(BSS Eval v4, `clipsep_rt.dsp.metrics`); a sanity ceiling, not a target")
    lines += ["", "## Packages", "", "| package | version | files used |", "|---|---|---|"]
    used = Counter(key.split("/", 1)[0] for key in manifest["label_sources"])
    for package, version in manifest["packages"].items():
        lines.append(f"| {package} | {version} | {used.get(package, 0)} |")
    lines += ["", "## Classes (mixtures as target; distinct files)", ""]
    for cat in sorted(by_cat):
        classes = sorted(by_cat[cat])
        total = sum(manifest["classes"][c] for c in classes)
        items = ", ".join(f"{c} {manifest['classes'][c]} ({len(manifest['class_files'][c])})" for c in classes)
        lines.append(f"- **{cat}** ({total} mixtures): {items}")
    auto = sum(1 for v in manifest["label_sources"].values() if v == "taxonomy")
    lines += [
        "",
        "## How the mixtures are made",
        "",
        f"- Labels: a reviewed table (`HELDOUT_TABLE`: package, path regex -> class); {auto} of the",
        f"  {len(manifest['label_sources'])} files get the class the taxonomy's own rules (`classify_any`) give, the",
        "  others a class set by hand where the keyword rules are wrong or silent. Unclear files, fantasy",
        "  creatures, speech-like vocals, music loops and classes with fewer than 2 distinct files are left out;",
        "  identical audio is kept once.",
        "- Each clip: decoded to 16 kHz mono, leading/trailing silence trimmed (20 ms frames more than",
        "  40 dB below the loudest). Longer than the window: a random crop among the most active ones;",
        "  shorter: looped from a random offset, repeats of a sustained sound joined by a 10 ms crossfade,",
        "  repeats of a one-shot separated by random gaps of 0 to 0.2 s.",
        f"- Levels: each source at {manifest['level_dbfs_active']:.0f} dBFS RMS over its active frames (20 ms frames within",
        "  40 dB of the loudest); the interference then scaled to a target-to-interference ratio drawn",
        "  uniformly in [-5, +5] dB (same active-frame RMS); both scaled together if a peak would reach 0.99.",
        "- Pairs: targets round-robin over the classes, files cycled at random; the interference class",
        "  never overlaps the target (`hierarchy.classes_overlap`), from another category 80% of the time.",
        "- Queries: `target_labels` (the taxonomy's labels, canonical first), `paraphrase` (an unseen",
        "  wording, `PARAPHRASES`), `unrelated_labels` (a class overlapping neither source, outside the",
        "  target's category) for negative-query tests.",
        "- Files: `audio/NNNN_target.wav`, `audio/NNNN_interference.wav` (float32 WAV, already scaled:",
        "  the mixture is exactly their sum); `devset.json` lists the mixtures, the classes and their files.",
        "  Read it with `clipsep_rt.training.devset_reader.load_devset`.",
        "",
        "## Rebuild",
        "",
        "```",
        "apt-get download " + " ".join(manifest["packages"]) + "   # into .cache/heldout-debs",
        "for d in .cache/heldout-debs/*.deb; do p=$(dpkg-deb -f $d Package); dpkg-deb -x $d .cache/heldout-pkgs/$p/; done",
        "apt-get install openclonk   # c4group: the build explodes openclonk-data's archives in place",
        manifest["build_command"] or "python -m clipsep_rt.training.devset --packages-root .cache/heldout-pkgs "
        "--heldout ../shared/corpus/heldout_packages.txt --out devset/",
        "```",
        "",
        f"Same package versions and seed give the same mixtures. Last build took {manifest.get('build_seconds', 0):.0f} s.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipsep_rt.training.devset", description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages-root", required=True, help="folder with one extracted held-out package per subfolder")
    parser.add_argument("--heldout", required=True, help="the held-out package list (heldout_packages.txt)")
    parser.add_argument("--out", required=True, help="output folder (audio/, devset.json, README.md)")
    parser.add_argument("--mixtures", type=int, default=DEFAULT_MIXTURES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true",
                        help="build a new dev set over an existing one (without it, an existing devset.json only has its "
                             "audio rebuilt, checked to be the same mixtures)")
    parser.add_argument("--no-oracle", action="store_true", help="skip the ideal-binary-mask SDRi")
    args = parser.parse_args(argv)
    command = "python -m clipsep_rt.training.devset " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        if args.mixtures < 1:
            raise ClipsepError(f"--mixtures: must be at least 1, got {args.mixtures}")
        manifest = build_devset(args.packages_root, args.heldout, args.out, args.mixtures, args.seed,
                                args.overwrite, not args.no_oracle, command,
                                log=lambda msg: print(msg, file=sys.stderr))
    except ClipsepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"devset: {len(manifest['mixtures'])} mixtures, {len(manifest['classes'])} classes -> {args.out}"
          + (f"; oracle IBM SDRi mean {manifest['oracle_ibm_sdri_db_mean']:.2f} dB" if manifest.get("oracle_ibm_sdri_db_mean") is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
