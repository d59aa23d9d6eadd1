"""Writing corpus v3: the clips split by source (whole cross-source packages apart), as PCM_16
WAVs under ``audio/<class>/``, the index CSV and the manifest (classes, split hours, voices,
packages with versions and licences, what was skipped and why); audio of an earlier build that
this one dropped is removed."""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from clipsep_rt.io.files import atomic_output
from clipsep_rt.training.corpus_sources import SAMPLE_RATE, package_licence, package_version, tool_version
from clipsep_rt.training.index import Clip, write_index
from clipsep_rt.training.taxonomy import UNUSED_PACKAGES, category

if TYPE_CHECKING:
    from clipsep_rt.training.corpus import Sound

MIN_SOURCES = 3
SPLITS = ("train", "val", "test", "cross_source")
MANIFEST_VERSION = 3


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


def excluded_report(excluded: list[str], seen: list, packages: list[str], allowed: set[str]) -> dict:
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


def write_corpus(out_dir: Path, root: Path, sounds: list[Sound], cross: set[str], stats: dict, duplicates: dict,
                 refused: list[str], packages: list[str], seed: int, cap: int | None, command: str | None, started: float,
                 log: Callable[[str], None], excluded: dict | None = None, notes: tuple[str, ...] = ()) -> Path:
    """Split and write `sounds`, the index and the manifest (`notes` among its fields); the
    index CSV's path. `excluded`: the `excluded_report` of the build."""
    train_sources, dropped, splits = _assign_splits(sounds, cross, seed)
    clips, clip_packages, tally = _write_audio(out_dir, sounds, cross, splits)
    for name, entry in tally.classes.items():
        entry["sources"] = len(train_sources[name])
        entry["packages"] = sorted(entry["packages"])
    index_path = out_dir / "index.csv"
    write_index(index_path, clips)
    _remove_stale_audio(out_dir, {c.audio for c in clips}, log)
    manifest = {
        "version": MANIFEST_VERSION,
        "sample_rate": SAMPLE_RATE,
        "format": "WAV PCM_16 mono",
        **_clip_summary(clips, clip_packages, tally.classes, cross, set(tally.per_package)),
        "voices": {k: v | {"packages": sorted(v["packages"])} for k, v in sorted(tally.voices.items())},
        "classes": dict(sorted(tally.classes.items())),
        "dropped_classes": dict(sorted(dropped.items())),
        "skipped": dict(sorted(stats.items())),
        "duplicates_by_package": dict(sorted(duplicates.items())),
        "excluded_clips": excluded or excluded_report([], [], packages, set(packages)),
        "warnings": list((excluded or {}).get("warnings", [])),
        "unused_packages": {p: r for p, r in sorted(UNUSED_PACKAGES.items()) if p not in tally.per_package},
        "refused_packages": refused,
        "seed": seed,
        "max_files_per_class": cap,
        **_package_fields(root, tally.per_package, cross),
        "build_command": command or f"python -m clipsep_rt.training.corpus --out {out_dir} --packages-root {root} --seed {seed}",
        "build_seconds": round(time.time() - started, 1),
        "notes": list(notes),
    }
    with atomic_output(out_dir / "manifest.json", overwrite=True) as temporary:
        temporary.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    total_s = sum(c.duration_s for c in clips)
    log(f"corpus: {len(clips)} clips, {len(tally.classes)} classes, {total_s / 3600:.2f} h, {time.time() - started:.0f} s -> {index_path}")
    return index_path


def _assign_splits(sounds: list[Sound], cross: set[str], seed: int) -> tuple[dict[str, set], dict[str, str], dict]:
    """(class -> its training sources, dropped class -> why, kept class -> source -> split)."""
    train_sources: dict[str, set] = defaultdict(set)
    for s in sounds:
        if s.package not in cross:
            train_sources[s.name].add(s.source)
    dropped = {n: f"{len(v)} distinct source(s) < {MIN_SOURCES}" for n, v in train_sources.items() if len(v) < MIN_SOURCES}
    kept = {n for n in train_sources if n not in dropped}
    for s in sounds:
        if s.package in cross and s.name not in train_sources:
            dropped.setdefault(s.name, "only in cross-source packages")
    return train_sources, dropped, {n: split_sources(sorted(train_sources[n]), seed, n) for n in kept}


class _Tally:
    """Per class, voice and package: clips and durations of what was written."""

    def __init__(self):
        self.classes: dict[str, dict] = {}
        self.voices: dict[str, dict] = {}
        self.per_package = defaultdict(lambda: {"clips": 0, "seconds": 0.0, "classes": set()})

    def add(self, sound: Sound, split: str, duration: float) -> None:
        empty = lambda kind: {s: (0 if kind is int else 0.0) for s in SPLITS}  # noqa: E731
        entry = self.classes.setdefault(sound.name, {"label": sound.label, "category": category(sound.name), "sources": 0,
                                                     "packages": set(), "clips": empty(int), "seconds": empty(float)})
        entry["clips"][split] += 1
        entry["seconds"][split] = round(entry["seconds"][split] + duration, 3)
        entry["packages"].add(sound.package)
        pkg = self.per_package[sound.package]
        pkg["clips"] += 1
        pkg["seconds"] += duration
        pkg["classes"].add(sound.name)
        if "voice" in sound.meta:
            v = self.voices.setdefault(sound.meta["voice"], {k: sound.meta[k] for k in ("gender", "language")} | {
                "kind": "synthetic" if sound.meta.get("synthetic") else "recorded", "packages": set(), "clips": 0, "seconds": 0.0})
            v["packages"].add(sound.package)
            v["clips"] += 1
            v["seconds"] = round(v["seconds"] + duration, 2)


def _write_audio(out_dir: Path, sounds: list[Sound], cross: set[str], splits: dict) -> tuple[list[Clip], list[str], _Tally]:
    """Each sound of a kept class as out_dir/audio/<class>/<stem>_<number>.wav: the clips, their
    packages and the tally."""
    clips: list[Clip] = []
    clip_packages: list[str] = []
    tally = _Tally()
    for number, sound in enumerate(sounds):
        if sound.name not in splits:
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
        tally.add(sound, split, duration)
    return clips, clip_packages, tally


def _remove_stale_audio(out_dir: Path, written: set[Path], log: Callable[[str], None]) -> None:
    """Remove the audio of an earlier build that this index does not list, and emptied class folders."""
    removed = 0
    for stale in sorted((out_dir / "audio").glob("*/*.wav")) if (out_dir / "audio").is_dir() else []:
        if stale.resolve() not in written:  # from an earlier build: not in this index
            stale.unlink()
            removed += 1
    for folder in sorted((out_dir / "audio").iterdir()) if (out_dir / "audio").is_dir() else []:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a class of an earlier build that this one dropped
    if removed:
        log(f"corpus: removed {removed} audio file(s) of an earlier build")


def _clip_summary(clips: list[Clip], clip_packages: list[str], classes: dict, cross: set[str], used: set[str]) -> dict:
    """The manifest's counts: clips and hours per split and category, classes from several
    packages, the cross-source classes."""
    train_pkgs = defaultdict(set)
    for c, package in zip(clips, clip_packages):
        if c.split == "train":
            train_pkgs[c.audio.parent.name].add(package)
    multi = sorted(n for n, p in train_pkgs.items() if len(p) >= 2)
    cross_classes = sorted(n for n, e in classes.items() if e["clips"]["cross_source"] and e["clips"]["train"])
    categories = defaultdict(lambda: {"classes": 0, "hours": 0.0, "train_hours": 0.0})
    for entry in classes.values():
        cat = categories[entry["category"]]
        cat["classes"] += 1
        cat["hours"] = round(cat["hours"] + sum(entry["seconds"].values()) / 3600, 4)
        cat["train_hours"] = round(cat["train_hours"] + entry["seconds"]["train"] / 3600, 4)
    return {
        "num_classes": len(classes),
        "num_clips": len(clips),
        "total_hours": round(sum(c.duration_s for c in clips) / 3600, 4),
        "split_clips": {s: sum(1 for c in clips if c.split == s) for s in SPLITS},
        "split_hours": {s: round(sum(c.duration_s for c in clips if c.split == s) / 3600, 4) for s in SPLITS},
        "num_packages": len(used),
        "classes_from_two_or_more_packages": {"count": len(multi), "classes": multi},
        "cross_source": {"packages": sorted(cross & used), "classes_also_in_train": len(cross_classes), "classes": cross_classes},
        "category_hours": dict(sorted(categories.items())),
    }


def _package_fields(root: Path, per_package: dict, cross: set[str]) -> dict:
    """The manifest's package_versions and packages (version, role, clips, hours, classes,
    licence), the renderers included."""
    package_info = {}
    for p in sorted(per_package):
        info = {"version": package_version(root, p) if (root / p).is_dir() else tool_version(p),
                "role": "cross_source" if p in cross else "train/val/test", "clips": per_package[p]["clips"],
                "hours": round(per_package[p]["seconds"] / 3600, 4), "classes": sorted(per_package[p]["classes"])}
        info.update(package_licence(root, p))
        package_info[p] = info
    for tool in ("festival", "flite", "libfluidsynth3"):
        if tool_version(tool) not in ("not installed", "unknown (no dpkg-query)"):
            package_info.setdefault(tool, {"version": tool_version(tool), "role": "renderer (no sounds of its own)"} | package_licence(root, tool))
    return {
        "package_versions": {p: i["version"] for p, i in sorted(package_info.items())},
        "packages": dict(sorted(package_info.items())),
    }
