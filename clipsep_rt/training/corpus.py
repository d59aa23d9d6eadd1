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
import hashlib
import json
import logging
import random
import re
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.training.corpus_sources import (
    SAMPLE_RATE, collect_files, decode, list_packages, package_licence, package_version, render_soundfonts,
    render_tts, tool_version,
)
from clipsep_rt.training.index import Clip, write_index
from clipsep_rt.training.taxonomy import TTS_VOICES, UNUSED_PACKAGES, category, classify_any

logger = logging.getLogger(__name__)

MIN_SECONDS = 1.0
GROUP_SECONDS = 1.5  # short one-shots are concatenated up to at least this
GROUP_GAP_S = 0.15
MIN_SOURCES = 3
MAX_CLIP_SECONDS = 30.0
MAX_FILES_PER_CLASS_PACKAGE = 250  # seeded sample of a (class, package)'s files
MAX_MUSIC_FILES_PER_PACKAGE = 14
PHRASES_PER_CLASS = 16  # per soundfont
SENTENCES_PER_VOICE = 24
CROSS_SOURCE_PACKAGES = ("denemo-data", "megaglest-data", "kajongg", "scorched3d-data")
SPLITS = ("train", "val", "test", "cross_source")
DEFAULT_ALLOWED = Path(__file__).resolve().parents[3] / "shared/corpus/allowed_packages.txt"
EXCLUDED_NAME = "excluded_clips.txt"  # beside the allowed list
MANIFEST_VERSION = 3
# Excluded on top of excluded_clips.txt: that file lists held-out minetest-mod-homedecor's
# fake_fire/sounds/fire_small.ogg as equal to a clip of an allowed package without naming it;
# minetest_game's fire_small.ogg is its namesake (homedecor's fake fire reuses minetest_game's
# fire sounds), so it stays out of training and the dev set may keep the held-out copy.
EXTRA_EXCLUDED = ("minetest-data/usr/share/games/minetest/games/minetest_game/mods/fire/sounds/fire_small.ogg",)


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


def trim_silence(x: np.ndarray, frame: int = 320, floor_db: float = -50.0) -> np.ndarray:
    """Drop leading/trailing 20 ms frames quieter than floor_db below the loudest (or ~silent)."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x) // frame
    if n == 0:
        return x[:0] if np.max(np.abs(x), initial=0.0) < 1e-4 else x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    threshold = max(float(rms.max()) * 10 ** (floor_db / 20), 1e-4)
    loud = np.flatnonzero(rms > threshold)
    if len(loud) == 0:
        return x[:0]
    end = (loud[-1] + 1) * frame if loud[-1] < n - 1 else len(x)
    return x[loud[0] * frame : end]


def audio_hash(x: np.ndarray) -> str:
    """Hash of the audio quantised to 8 bits: identical sounds under two names collide."""
    q = np.clip(np.round(np.asarray(x, dtype=np.float32) * 127), -127, 127).astype(np.int8)
    return hashlib.sha1(q.tobytes()).hexdigest()


def fingerprint(x: np.ndarray, bands: int = 32, frames: int = 24) -> np.ndarray:
    """Unit vector of log band energies on a fixed time grid: re-encoded or resampled copies
    of one recording have near-identical fingerprints (cosine > 0.99), other sounds do not."""
    x = np.asarray(x, dtype=np.float32)
    n_fft = 1024
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    hop = max(1, (len(x) - n_fft) // (frames - 1)) if len(x) > n_fft else 1
    starts = np.minimum(np.arange(frames) * hop, len(x) - n_fft)
    spec = np.abs(np.fft.rfft(np.stack([x[s : s + n_fft] for s in starts]) * np.hanning(n_fft), axis=1)) ** 2
    edges = np.unique(np.geomspace(8, spec.shape[1], bands + 1).astype(int))
    energy = np.stack([spec[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    v = np.log10(energy + 1e-3 * float(energy.max()) + 1e-12).ravel()  # floor 30 dB under the peak
    v = v - v.mean()
    return (v / (np.linalg.norm(v) + 1e-12)).astype(np.float32)


class Deduplicator:
    """Exact (hash) and near (fingerprint within 3 % duration) duplicate detection."""

    def __init__(self, threshold: float = 0.995):
        self.threshold = threshold
        self.hashes: dict[str, str] = {}
        self.buckets: dict[int, list[tuple[float, np.ndarray, str]]] = defaultdict(list)

    def seen(self, x: np.ndarray, source: str) -> str | None:
        """The source `x` duplicates, or None (and `x` is remembered)."""
        digest = audio_hash(x)
        if digest in self.hashes:
            return self.hashes[digest]
        seconds = len(x) / SAMPLE_RATE
        bucket = int(np.log(max(seconds, 0.05)) / 0.03)
        fp = fingerprint(x)
        for b in (bucket - 1, bucket, bucket + 1):
            for other_s, other_fp, other in self.buckets.get(b, ()):
                if abs(other_s - seconds) <= 0.03 * max(seconds, other_s) and float(other_fp @ fp) >= self.threshold:
                    return other
        self.hashes[digest] = source
        self.buckets[bucket].append((seconds, fp, source))
        return None


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


def split_sources(sources: list[str], seed: int, name: str = "") -> dict[str, str]:
    """Source -> split, ~80/10/10; with >= 3 sources every split gets at least one."""
    order = sorted(set(sources))
    random.Random(f"{seed}:{name}").shuffle(order)
    n = len(order)
    if n < MIN_SOURCES:
        return {s: "train" for s in order}
    n_val = n_test = max(1, round(0.1 * n))
    return {s: "val" if i < n_val else "test" if i < n_val + n_test else "train" for i, s in enumerate(order)}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[-80:].strip("_.") or "clip"


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
    excluded_report = _excluded_report(excluded, excluded_seen, packages, allowed_set)
    stats["excluded_clips"] = len(excluded_seen)
    log(f"corpus: skipped {len(excluded_seen)} of {len(excluded)} excluded clip(s) (copies of reserved clips)")
    for line in excluded_report["warnings"]:
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
                excluded_report["copies_skipped"].append(f"{key} = {other.split(':', 1)[1]}")
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
    return _write(out_dir, root, sounds, cross, stats, duplicates, refused, packages, tts_packages, seed, max_files_per_class, command,
                  started, log, excluded_report)


def _excluded_report(excluded: list[str], seen: list, packages: list[str], allowed: set[str]) -> dict:
    """What became of each excluded-clips entry: skipped, in a package this build does not read,
    or never seen (a warning: the path is stale or the package changed)."""
    found = {key for key, _ in seen}
    read = set(packages)
    not_read, never_seen = [], []
    for key in excluded:
        package = key.split("/", 1)[0]
        if key in found:
            continue
        if package not in read:
            reason = "not in the allowed list" if package not in allowed else "allowed but not read (unused or absent)"
            not_read.append(f"{key} ({reason})")
        else:
            never_seen.append(key)
    return {
        "listed": len(excluded),
        "skipped": len(found),
        "skipped_by_package": dict(sorted(Counter(k.split("/", 1)[0] for k in found).items())),
        "in_packages_not_read": not_read,
        "never_seen": never_seen,
        "copies_skipped": [],
        "warnings": [f"excluded clip never seen in its (read) package: {key}" for key in never_seen],
    }


def _write(out_dir, root, sounds, cross, stats, duplicates, refused, packages, tts_packages, seed, cap, command, started, log,
           excluded_report=None) -> Path:
    train_sources: dict[str, set] = defaultdict(set)
    for s in sounds:
        if s.package not in cross:
            train_sources[s.name].add(s.source)
    dropped = {n: f"{len(v)} distinct source(s) < {MIN_SOURCES}" for n, v in train_sources.items() if len(v) < MIN_SOURCES}
    kept = {n for n in train_sources if n not in dropped}
    for s in sounds:
        if s.package in cross and s.name not in train_sources:
            dropped.setdefault(s.name, "only in cross-source packages")
    splits = {n: split_sources(sorted(train_sources[n]), seed, n) for n in kept}
    clip_packages: list[str] = []
    clips, classes, voices, per_package = [], {}, {}, defaultdict(lambda: {"clips": 0, "seconds": 0.0, "classes": set()})
    empty = lambda kind: {s: (0 if kind is int else 0.0) for s in SPLITS}  # noqa: E731
    for number, sound in enumerate(sounds):
        if sound.name not in kept:
            continue
        split = "cross_source" if sound.package in cross else splits[sound.name][sound.source]
        stem = _safe(sound.source.split("!")[-1].rsplit("/", 1)[-1].rsplit(".", 1)[0])
        path = (out_dir / "audio" / sound.name / f"{stem}_{number:05d}.wav").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, overwrite=True) as temporary:
            sf.write(temporary, np.clip(sound.samples, -1, 1), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        duration = len(sound.samples) / SAMPLE_RATE
        clips.append(Clip(path, None, 0, sound.label, split, sound.source, duration))
        clip_packages.append(sound.package)
        entry = classes.setdefault(sound.name, {"label": sound.label, "category": category(sound.name), "sources": 0,
                                                "packages": set(), "clips": empty(int), "seconds": empty(float)})
        entry["clips"][split] += 1
        entry["seconds"][split] = round(entry["seconds"][split] + duration, 3)
        entry["packages"].add(sound.package)
        pkg = per_package[sound.package]
        pkg["clips"] += 1
        pkg["seconds"] += duration
        pkg["classes"].add(sound.name)
        if "voice" in sound.meta:
            v = voices.setdefault(sound.meta["voice"], {k: sound.meta[k] for k in ("gender", "language")} | {
                "kind": "synthetic" if sound.meta.get("synthetic") else "recorded", "packages": set(), "clips": 0, "seconds": 0.0})
            v["packages"].add(sound.package)
            v["clips"] += 1
            v["seconds"] = round(v["seconds"] + duration, 2)
    for name, entry in classes.items():
        entry["sources"] = len(train_sources[name])
        entry["packages"] = sorted(entry["packages"])
    index_path = out_dir / "index.csv"
    write_index(index_path, clips)
    written, removed = {c.audio for c in clips}, 0
    for stale in sorted((out_dir / "audio").glob("*/*.wav")) if (out_dir / "audio").is_dir() else []:
        if stale.resolve() not in written:  # from an earlier build: not in this index
            stale.unlink()
            removed += 1
    for folder in sorted((out_dir / "audio").iterdir()) if (out_dir / "audio").is_dir() else []:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a class of an earlier build that this one dropped
    if removed:
        log(f"corpus: removed {removed} audio file(s) of an earlier build")
    train_pkgs = defaultdict(set)
    for c, package in zip(clips, clip_packages):
        if c.split == "train":
            train_pkgs[c.audio.parent.name].add(package)
    multi = sorted(n for n, p in train_pkgs.items() if len(p) >= 2)
    cross_classes = sorted(n for n, e in classes.items() if e["clips"]["cross_source"] and e["clips"]["train"])
    categories = defaultdict(lambda: {"classes": 0, "hours": 0.0, "train_hours": 0.0})
    for name, entry in classes.items():
        cat = categories[entry["category"]]
        cat["classes"] += 1
        cat["hours"] = round(cat["hours"] + sum(entry["seconds"].values()) / 3600, 4)
        cat["train_hours"] = round(cat["train_hours"] + entry["seconds"]["train"] / 3600, 4)
    used = sorted(per_package)
    package_info = {}
    for p in used:
        info = {"version": package_version(root, p) if (root / p).is_dir() else tool_version(p),
                "role": "cross_source" if p in cross else "train/val/test", "clips": per_package[p]["clips"],
                "hours": round(per_package[p]["seconds"] / 3600, 4), "classes": sorted(per_package[p]["classes"])}
        info.update(package_licence(root, p))
        package_info[p] = info
    for tool in ("festival", "flite", "libfluidsynth3"):
        if tool_version(tool) not in ("not installed", "unknown (no dpkg-query)"):
            package_info.setdefault(tool, {"version": tool_version(tool), "role": "renderer (no sounds of its own)"} | package_licence(root, tool))
    total_s = sum(c.duration_s for c in clips)
    manifest = {
        "version": MANIFEST_VERSION,
        "sample_rate": SAMPLE_RATE,
        "format": "WAV PCM_16 mono",
        "num_classes": len(classes),
        "num_clips": len(clips),
        "total_hours": round(total_s / 3600, 4),
        "split_clips": {s: sum(1 for c in clips if c.split == s) for s in SPLITS},
        "split_hours": {s: round(sum(c.duration_s for c in clips if c.split == s) / 3600, 4) for s in SPLITS},
        "num_packages": len(used),
        "classes_from_two_or_more_packages": {"count": len(multi), "classes": multi},
        "cross_source": {"packages": sorted(cross & set(used)), "classes_also_in_train": len(cross_classes), "classes": cross_classes},
        "category_hours": dict(sorted(categories.items())),
        "voices": {k: v | {"packages": sorted(v["packages"])} for k, v in sorted(voices.items())},
        "classes": dict(sorted(classes.items())),
        "dropped_classes": dict(sorted(dropped.items())),
        "skipped": dict(sorted(stats.items())),
        "duplicates_by_package": dict(sorted(duplicates.items())),
        "excluded_clips": excluded_report or _excluded_report([], [], packages, set(packages)),
        "warnings": list((excluded_report or {}).get("warnings", [])),
        "unused_packages": {p: r for p, r in sorted(UNUSED_PACKAGES.items()) if p not in used},
        "refused_packages": refused,
        "seed": seed,
        "max_files_per_class": cap,
        "package_versions": {p: i["version"] for p, i in sorted(package_info.items())},
        "packages": dict(sorted(package_info.items())),
        "build_command": command or f"python -m clipsep_rt.training.corpus --out {out_dir} --packages-root {root} --seed {seed}",
        "build_seconds": round(time.time() - started, 1),
        "notes": [
            "Splits: whole cross-source packages form `cross_source` (classes also in train only); the rest is split by source per class ~80/10/10.",
            "A group of concatenated short one-shots (< 1 s, classes marked group_short) counts as one source.",
            f"Clips are trimmed of silence and cut to {MAX_CLIP_SECONDS:.0f} s; at most {MAX_FILES_PER_CLASS_PACKAGE} files per (class, package) and {MAX_MUSIC_FILES_PER_PACKAGE} music files per package (seeded sample).",
            "Excluded clips (excluded_clips.txt beside the allowed list: copies of reserved clips) are never used, nor are their exact or near copies in other packages (`excluded_clips`, `skipped.excluded_clips`, `skipped.excluded_copies`).",
            "Duplicates: exact on 8-bit quantised audio, near on a log band-energy fingerprint (cosine >= 0.995, duration within 3 %); the copy met first (training packages first, in name order) is kept.",
            "Instruments and drums: seeded phrases rendered with fluidsynth from each melodic / drum soundfont, plus sampled one-shots; speech: recorded prompts (voice per folder) and festival / flite sentences.",
            "The music class is also the background: the sampler's noisy mode adds clips of other classes, music included.",
            "Audio and index.csv stay untracked; only this manifest is committed.",
        ],
    }
    with atomic_output(out_dir / "manifest.json", overwrite=True) as temporary:
        temporary.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"corpus: {len(clips)} clips, {len(classes)} classes, {total_s / 3600:.2f} h, {time.time() - started:.0f} s -> {index_path}")
    return index_path


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
