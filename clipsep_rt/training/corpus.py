"""Build corpus v3 from Debian packages (``make corpus``).

Packages are extracted one per folder under ``packages_root`` (see `corpus_sources`); only
those in the allowed list are read. Files are mapped to classes by `taxonomy.classify_any`,
decoded to 16 kHz mono (two worker processes), trimmed of leading/trailing silence, cut to
at most `MAX_CLIP_SECONDS`, deduplicated across packages (exact 8-bit hash, then a coarse
spectral fingerprint for re-encoded copies; the clips of ``excluded_clips.txt`` beside the
allowed list, copies of reserved clips, are skipped, and so are copies of them), written as
PCM_16 WAVs under ``out_dir/audio/<class>/`` and split: whole `CROSS_SOURCE_PACKAGES` go to ``cross_source``
(only classes that also occur in training), everything else is split by source into
train/val/test per class. General-MIDI instruments and drums are rendered from soundfonts,
synthetic speech from festival / flite voices. Writes ``out_dir/index.csv`` and
``out_dir/manifest.json`` (classes, split hours, voices, packages with versions and licences).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.training.corpus_dedup import Deduplicator, trim_silence
from clipsep_rt.training.corpus_sources import (
    SAMPLE_RATE, collect_files, decode, list_packages, render_soundfonts, render_tts, tool_version,
)
from clipsep_rt.training.corpus_write import excluded_report, write_corpus
from clipsep_rt.training.taxonomy import UNUSED_PACKAGES, classify_any
from clipsep_rt.training.taxonomy_speech import TTS_VOICES

__all__ = ["CROSS_SOURCE_PACKAGES", "Sound", "build_corpus", "main", "read_allowed", "read_excluded"]

logger = logging.getLogger(__name__)

MIN_SECONDS = 1.0
GROUP_SECONDS = 1.5  # short one-shots are concatenated up to at least this
GROUP_GAP_S = 0.15
MAX_CLIP_SECONDS = 30.0
MAX_FILES_PER_CLASS_PACKAGE = 250  # seeded sample of a (class, package)'s files
MAX_MUSIC_FILES_PER_PACKAGE = 14
PHRASES_PER_CLASS = 16  # per soundfont
SENTENCES_PER_VOICE = 24
CROSS_SOURCE_PACKAGES = ("denemo-data", "megaglest-data", "kajongg", "scorched3d-data")
DEFAULT_ALLOWED = Path(__file__).resolve().parents[3] / "shared/corpus/allowed_packages.txt"
EXCLUDED_NAME = "excluded_clips.txt"  # beside the allowed list
# Excluded on top of excluded_clips.txt: that file lists held-out minetest-mod-homedecor's
# fake_fire/sounds/fire_small.ogg as equal to a clip of an allowed package without naming it;
# minetest_game's fire_small.ogg is its namesake (homedecor's fake fire reuses minetest_game's
# fire sounds), so it stays out of training and the dev set may keep the held-out copy.
EXTRA_EXCLUDED = ("minetest-data/usr/share/games/minetest/games/minetest_game/mods/fire/sounds/fire_small.ogg",)
MANIFEST_NOTES = (  # the manifest's notes
    "Splits: whole cross-source packages form `cross_source` (classes also in train only); the rest is split by source per class ~80/10/10.",
    "A group of concatenated short one-shots (< 1 s, classes marked group_short) counts as one source.",
    f"Clips are trimmed of silence and cut to {MAX_CLIP_SECONDS:.0f} s; at most {MAX_FILES_PER_CLASS_PACKAGE} files per (class, package) and {MAX_MUSIC_FILES_PER_PACKAGE} music files per package (seeded sample).",
    "Excluded clips (excluded_clips.txt beside the allowed list: copies of reserved clips) are never used, nor are their exact or near copies in other packages (`excluded_clips`, `skipped.excluded_clips`, `skipped.excluded_copies`).",
    "Duplicates: exact on 8-bit quantised audio, near on a log band-energy fingerprint (cosine >= 0.995, duration within 3 %); the copy met first (training packages first, in name order) is kept.",
    "Instruments and drums: seeded phrases rendered with fluidsynth from each melodic / drum soundfont, plus sampled one-shots; speech: recorded prompts (voice per folder) and festival / flite sentences.",
    "The music class is also the background: the sampler's noisy mode adds clips of other classes, music included.",
    "Audio and index.csv stay untracked; only this manifest is committed.",
)


@dataclass
class Sound:
    name: str
    label: str
    source: str  # source id (file key, group id, rendered phrase or sentence id)
    package: str
    samples: np.ndarray
    meta: dict = field(default_factory=dict)


def read_allowed(path) -> list[str]:
    """Package names of an allowed-packages file (one a line, # comments)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ClipsepError(f"allowed packages {path}: cannot be read ({error.strerror or error})") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def read_excluded(path) -> list[str]:
    """Keys (``<package>/<path>[!member]``) of an excluded-clips file: ``PACKAGE<TAB>PATH`` a
    line, # comments. A missing file is an error (use `excluded=None` for none)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ClipsepError(f"excluded clips {path}: cannot be read ({error.strerror or error})") from None
    keys = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ClipsepError(f"excluded clips {path}:{number}: expected PACKAGE<TAB>PATH, got {line!r}")
        keys.append(f"{parts[0].strip()}/{parts[1].strip().lstrip('/')}")
    return keys


def _decode_trim(opener) -> np.ndarray | str:
    try:
        return trim_silence(decode(opener))
    except Exception as error:  # noqa: BLE001 - reported per file, the build goes on
        return f"{type(error).__name__}: {error}"


def _group_short(short: list[tuple[str, str, np.ndarray]], name: str, label: str, package: str) -> list[Sound]:
    """Concatenate short one-shots (sorted by key, grouped by folder) into >= GROUP_SECONDS clips."""
    by_folder: dict[str, list] = defaultdict(list)
    for key, folder, x in sorted(short, key=lambda item: item[0]):
        by_folder[folder].append((key, x))
    gap = np.zeros(int(GROUP_GAP_S * SAMPLE_RATE), dtype=np.float32)
    out = []
    for folder, items in by_folder.items():
        current, keys = [], []
        for key, x in items:
            current += [x, gap]
            keys.append(key)
            if sum(len(c) for c in current[:-1]) >= GROUP_SECONDS * SAMPLE_RATE:
                out.append(Sound(name, label, f"group:{keys[0]}+{len(keys) - 1}", package, np.concatenate(current[:-1])))
                current, keys = [], []
        if keys and sum(len(c) for c in current[:-1]) >= MIN_SECONDS * SAMPLE_RATE:
            out.append(Sound(name, label, f"group:{keys[0]}+{len(keys) - 1}", package, np.concatenate(current[:-1])))
    return out


def _select(files: list, cap: int, seed: int, tag: str) -> list:
    if len(files) <= cap:
        return files
    return sorted(random.Random(f"{seed}:{tag}").sample(files, cap))


def _gather_files(root: Path, packages: list[str], seed: int, cap: int | None, stats, excluded=frozenset(),
                  excluded_seen=None) -> dict[tuple[str, str], list]:
    """(class, package) -> [(key, opener, rule, meta)], capped by a seeded sample; the files of
    `excluded` (keys) are left out and appended to `excluded_seen` as (key, opener)."""
    excluded_seen = [] if excluded_seen is None else excluded_seen
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for key, opener in collect_files(root, packages):
        if key in excluded:
            excluded_seen.append((key, opener))  # a copy of a reserved clip: never used
            continue
        hit = classify_any(key)
        if hit is None:
            stats["unclassified_files"] += 1
            continue
        rule, meta = hit
        groups[(rule.name, key.split("/", 1)[0])].append((key, opener, rule, meta))
    for (name, package), files in groups.items():
        limit = MAX_MUSIC_FILES_PER_PACKAGE if name == "music" else MAX_FILES_PER_CLASS_PACKAGE
        if cap:
            limit = min(limit, cap)
        chosen = _select(files, limit, seed, f"{name}:{package}")
        stats["capped_files"] += len(files) - len(chosen)
        groups[(name, package)] = chosen
    return groups


def build_corpus(out_dir, packages_root, seed=0, max_files_per_class=None, allowed=None, cross_source=CROSS_SOURCE_PACKAGES,
                 workers=2, log=logger.info, command=None, excluded=None) -> Path:
    """Build the corpus under out_dir from the allowed packages under packages_root; returns
    the index CSV path. `allowed`: package names (None: every package folder); `excluded`:
    clip keys (``<package>/<path>[!member]``) never to use, see `read_excluded`. See the module doc."""
    started = time.time()
    out_dir, root = Path(out_dir), Path(packages_root)
    present = list_packages(root)
    allowed_set = set(allowed) if allowed is not None else set(present)
    refused = sorted(set(present) - allowed_set)
    packages = [p for p in present if p in allowed_set and p not in UNUSED_PACKAGES]
    cross = set(cross_source)
    stats: dict[str, int] = defaultdict(int)
    excluded = list(dict.fromkeys([*(excluded or ()), *EXTRA_EXCLUDED]))
    excluded_seen: list[tuple[str, tuple]] = []
    groups = _gather_files(root, packages, seed, max_files_per_class, stats, frozenset(excluded), excluded_seen)
    log(f"corpus: {sum(len(v) for v in groups.values())} files in {len(groups)} (class, package) groups, {time.time() - started:.0f} s")
    report = excluded_report(excluded, excluded_seen, packages, allowed_set)
    stats["excluded_clips"] = len(excluded_seen)
    log(f"corpus: skipped {len(excluded_seen)} of {len(excluded)} excluded clip(s) (copies of reserved clips)")
    for line in report["warnings"]:
        log(f"corpus: WARNING: {line}")

    dedup = Deduplicator()
    for key, opener in excluded_seen:  # their copies in other allowed packages are dropped too
        x = _decode_trim(opener)
        if not isinstance(x, str) and len(x):
            dedup.seen(x[: int(MAX_CLIP_SECONDS * SAMPLE_RATE)], f"excluded:{key}")
    duplicates: dict[str, int] = defaultdict(int)
    sounds: list[Sound] = []
    order = sorted(groups, key=lambda g: (g[1] in cross, g[1], g[0]))  # training packages first keep their copies
    jobs = [(g, item) for g in order for item in groups[g]]
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        decoded = pool.map(_decode_trim, [item[1] for _, item in jobs], chunksize=16) if pool else map(_decode_trim, [item[1] for _, item in jobs])
        short: dict[tuple[str, str], list] = defaultdict(list)
        for (group, (key, _opener, rule, meta)), x in zip(jobs, decoded):
            name, package = group
            if isinstance(x, str):
                stats["decode_errors"] += 1
                log(f"corpus: skip {key}: {x}")
                continue
            if len(x) == 0:
                stats["silent"] += 1
                continue
            x = x[: int(MAX_CLIP_SECONDS * SAMPLE_RATE)]
            other = dedup.seen(x, key)
            if other is not None and other.startswith("excluded:"):
                stats["excluded_copies"] += 1
                report["copies_skipped"].append(f"{key} = {other.split(':', 1)[1]}")
                continue
            if other is not None:
                stats["duplicates"] += 1
                duplicates[f"{package} <- {other.split('/', 1)[0]}"] += 1
                continue
            if len(x) < MIN_SECONDS * SAMPLE_RATE:
                if rule.group_short:
                    short[group].append((key, key.rsplit("/", 1)[0], x, rule.label))
                else:
                    stats["too_short"] += 1
                continue
            sounds.append(Sound(name, rule.label, key, package, x, dict(meta)))
        for (name, package), items in sorted(short.items()):
            sounds.extend(_group_short([i[:3] for i in items], name, items[0][3], package))
    finally:
        if pool:
            pool.shutdown()
    log(f"corpus: decoded {len(sounds)} clips in {time.time() - started:.0f} s")

    phrases = PHRASES_PER_CLASS if not max_files_per_class else min(PHRASES_PER_CLASS, max_files_per_class)
    rendered = render_soundfonts(root, set(packages), phrases, seed, log)
    tts_packages = {v.package for v in TTS_VOICES if v.package in allowed_set and tool_version(v.package) not in ("not installed", "unknown (no dpkg-query)")}
    sentences = SENTENCES_PER_VOICE if not max_files_per_class else min(SENTENCES_PER_VOICE, max_files_per_class)
    rendered += render_tts(tts_packages, sentences, seed, log)
    for item in rendered:
        x = trim_silence(item.samples)
        if len(x) < MIN_SECONDS * SAMPLE_RATE:
            stats["too_short"] += 1
            continue
        other = dedup.seen(x, item.source)
        if other is not None:
            stats["excluded_copies" if other.startswith("excluded:") else "duplicates"] += 1
            continue
        sounds.append(Sound(item.name, item.label, item.source, item.package, x, item.meta))
    log(f"corpus: {len(sounds)} clips with renders, {time.time() - started:.0f} s")
    return write_corpus(out_dir, root, sounds, cross, stats, duplicates, refused, packages, seed, max_files_per_class, command,
                        started, log, report, MANIFEST_NOTES)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build the offline sound corpus v3 from extracted Debian packages.")
    parser.add_argument("--out", default="corpus/", help="output folder (audio/, index.csv, manifest.json)")
    parser.add_argument("--packages-root", required=True, help="folder with one extracted package per sub-folder")
    parser.add_argument("--allowed", default=str(DEFAULT_ALLOWED), help="allowed-packages list (one a line)")
    parser.add_argument("--excluded", default=None,
                        help=f"excluded-clips list (PACKAGE<TAB>PATH a line; default: {EXCLUDED_NAME} beside --allowed, if present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-files-per-class", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    command = "python -m clipsep_rt.training.corpus " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        excluded_path = Path(args.excluded) if args.excluded else Path(args.allowed).parent / EXCLUDED_NAME
        excluded = read_excluded(excluded_path) if args.excluded or excluded_path.is_file() else []
        build_corpus(args.out, args.packages_root, args.seed, args.max_files_per_class, read_allowed(args.allowed),
                     workers=args.workers, log=print, command=command, excluded=excluded)
    except ClipsepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
