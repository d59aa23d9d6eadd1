"""Build the offline real-sound corpus from Debian packages (``make corpus``).

Sources (all installed with apt, read from ``packages_root``): 0ad-data (sounds inside
public.zip), wesnoth-1.16-data, hedgewars-data voices, asterisk-core-sounds-en-wav,
hydrogen-drumkits, and General-MIDI instruments rendered from fluid-soundfont-gm with
pyfluidsynth. Files are mapped to classes by `taxonomy.RULES`, decoded to 16 kHz mono,
trimmed of leading/trailing silence, deduplicated on their decoded audio, written as 16 kHz
PCM_16 WAVs under ``out_dir/audio/<class>/`` and split by source into train/val/test.
Writes ``out_dir/index.csv`` (see `index.write_index`) and ``out_dir/manifest.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.media import load_audio
from clipsep_rt.training.index import Clip, write_index
from clipsep_rt.training.taxonomy import AUDIO_SUFFIXES, HEDGEWARS, HYDROGEN, INSTRUMENTS, PACKAGES, SOUNDFONT, WESNOTH, ZAD_ZIP, ASTERISK, classify

SAMPLE_RATE = 16000
MIN_SECONDS = 1.0
GROUP_SECONDS = 1.5  # short one-shots are concatenated up to at least this
GROUP_GAP_S = 0.15
MIN_SOURCES = 3
PHRASES_PER_INSTRUMENT = 8
PHRASE_SECONDS = 6.0
FS_DIRS = (WESNOTH, HEDGEWARS, ASTERISK, HYDROGEN)


@dataclass
class Sound:
    name: str  # class
    label: str
    source: str  # source id (file key, group id or rendered phrase id)
    samples: np.ndarray  # float32 mono at SAMPLE_RATE, trimmed


def _collect_keys(root: Path) -> list[tuple[str, object]]:
    """(key, opener) for every audio file in the known package locations under root."""
    found: list[tuple[str, object]] = []
    zpath = root / ZAD_ZIP
    if zpath.is_file():
        with zipfile.ZipFile(zpath) as archive:
            for member in sorted(archive.namelist()):
                if member.startswith("audio/") and member.lower().endswith(AUDIO_SUFFIXES):
                    found.append((f"{ZAD_ZIP}!{member}", ("zip", zpath, member)))
    for folder in FS_DIRS:
        base = root / folder
        for dirpath, dirnames, files in os.walk(base):
            dirnames.sort()
            for name in sorted(files):
                if name.lower().endswith(AUDIO_SUFFIXES):
                    path = Path(dirpath) / name
                    found.append((path.relative_to(root).as_posix(), ("file", path, None)))
    return found


def _decode(opener) -> np.ndarray:
    kind, path, member = opener
    if kind == "file":
        return load_audio(path, SAMPLE_RATE, min_samples=1).samples
    with zipfile.ZipFile(path) as archive:
        data = archive.read(member)
    with tempfile.NamedTemporaryFile(suffix=Path(member).suffix) as handle:
        handle.write(data)
        handle.flush()
        return load_audio(handle.name, SAMPLE_RATE, min_samples=1).samples


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


def _render_instruments(root: Path, per_class: int, seed: int, log) -> list[Sound]:
    sf2 = root / SOUNDFONT
    if not sf2.is_file():
        log(f"corpus: no soundfont at {sf2}: instrument classes skipped")
        return []
    try:
        import fluidsynth  # pyfluidsynth; needs libfluidsynth3
    except (ImportError, OSError) as error:
        log(f"corpus: pyfluidsynth unavailable ({error}): instrument classes skipped")
        return []
    synth = fluidsynth.Synth(samplerate=float(SAMPLE_RATE))
    sfid = synth.sfload(str(sf2))
    sounds = []
    major = [0, 2, 4, 5, 7, 9, 11]
    minor = [0, 2, 3, 5, 7, 8, 10]
    for inst in INSTRUMENTS:
        for phrase in range(per_class):
            rng = random.Random(f"{seed}:{inst.name}:{phrase}")
            synth.program_select(0, sfid, 0, inst.program)
            scale = rng.choice([major, minor])
            tonic = rng.randint(inst.low, max(inst.low, inst.high - 12))
            notes = [tonic + 12 * o + s for o in (0, 1) for s in scale if tonic + 12 * o + s <= inst.high]
            tempo = rng.uniform(0.25, 0.6) if not inst.sustained else rng.uniform(0.35, 0.9)
            chunks, t, idx = [], 0.0, rng.randrange(len(notes))
            while t < PHRASE_SECONDS:
                idx = max(0, min(len(notes) - 1, idx + rng.choice([-2, -1, -1, 1, 1, 2, 0, 3])))
                chord = [notes[idx]]
                if not inst.sustained and rng.random() < 0.3 and idx + 2 < len(notes):
                    chord.append(notes[idx + 2])
                vel = rng.randint(70, 120)
                dur = tempo * rng.choice([1, 1, 1, 2, 0.5])
                for note in chord:
                    synth.noteon(0, note, vel)
                hold = int(dur * 0.9 * SAMPLE_RATE)
                chunks.append(np.asarray(synth.get_samples(hold)))
                for note in chord:
                    synth.noteoff(0, note)
                chunks.append(np.asarray(synth.get_samples(int(dur * 0.1 * SAMPLE_RATE))))
                t += dur
            chunks.append(np.asarray(synth.get_samples(int(0.8 * SAMPLE_RATE))))  # release tail
            stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2) / 32768.0
            mono = trim_silence(stereo.mean(axis=1))
            peak = float(np.max(np.abs(mono), initial=0.0))
            if peak > 0:
                mono = mono * (0.7 / peak)
            sounds.append(Sound(inst.name, inst.label, f"fluidsynth:{inst.name}:seed{seed}:phrase{phrase}", mono))
            synth.system_reset()
    synth.delete()
    return sounds


def _group_short(short: list[tuple[str, str, np.ndarray]], name: str, label: str) -> list[Sound]:
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
                out.append(Sound(name, label, f"group:{keys[0]}+{len(keys) - 1}", np.concatenate(current[:-1])))
                current, keys = [], []
        if keys and sum(len(c) for c in current[:-1]) >= MIN_SECONDS * SAMPLE_RATE:
            out.append(Sound(name, label, f"group:{keys[0]}+{len(keys) - 1}", np.concatenate(current[:-1])))
    return out


def split_sources(sources: list[str], seed: int, name: str = "") -> dict[str, str]:
    """Source -> split, ~80/10/10; with >= 3 sources every split gets at least one."""
    order = sorted(set(sources))
    random.Random(f"{seed}:{name}").shuffle(order)
    n = len(order)
    if n < MIN_SOURCES:
        return {s: "train" for s in order}
    n_val = n_test = max(1, round(0.1 * n))
    result = {}
    for i, source in enumerate(order):
        result[source] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    return result


def _package_versions() -> dict[str, str]:
    versions = {}
    for package in list(PACKAGES) + ["libfluidsynth3"]:
        try:
            done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, timeout=30)
            versions[package] = done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "not installed"
        except (OSError, subprocess.SubprocessError):
            versions[package] = "unknown (no dpkg-query)"
    return versions


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[-80:].strip("_.") or "clip"


def build_corpus(out_dir, packages_root="/", seed=0, max_files_per_class=None, log=print, command=None) -> Path:
    """Build the corpus under out_dir; returns the index CSV path. See the module docstring."""
    started = time.time()
    out_dir, root = Path(out_dir), Path(packages_root)
    stats = defaultdict(int)
    by_class: dict[str, list] = defaultdict(list)
    labels, group_flag = {}, {}
    for key, opener in _collect_keys(root):
        rule = classify(key)
        if rule is not None:
            by_class[rule.name].append((key, opener))
            labels[rule.name], group_flag[rule.name] = rule.label, rule.group_short
    sounds: list[Sound] = []
    seen: dict[str, str] = {}
    for name in sorted(by_class):
        files = by_class[name]
        if max_files_per_class and len(files) > max_files_per_class:
            files = sorted(random.Random(f"{seed}:{name}").sample(files, max_files_per_class))
            stats["capped_files"] += len(by_class[name]) - max_files_per_class
        short = []
        for key, opener in files:
            try:
                x = trim_silence(_decode(opener))
            except (ClipsepError, OSError, RuntimeError, ValueError, zipfile.BadZipFile) as error:
                stats["decode_errors"] += 1
                log(f"corpus: skip {key}: {error}")
                continue
            if len(x) == 0:
                stats["silent"] += 1
                continue
            digest = audio_hash(x)
            if digest in seen:
                stats["duplicates"] += 1
                continue
            seen[digest] = key
            if len(x) < MIN_SECONDS * SAMPLE_RATE:
                if group_flag[name]:
                    short.append((key, key.rsplit("/", 1)[0], x))
                else:
                    stats["too_short"] += 1
                continue
            sounds.append(Sound(name, labels[name], key, x))
        if short:
            sounds.extend(_group_short(short, name, labels[name]))
        log(f"corpus: {name}: {len(files)} files, {time.time() - started:.0f} s")
    per_inst = PHRASES_PER_INSTRUMENT if not max_files_per_class else min(PHRASES_PER_INSTRUMENT, max_files_per_class)
    for sound in _render_instruments(root, per_inst, seed, log):
        digest = audio_hash(sound.samples)
        if digest in seen or len(sound.samples) < MIN_SECONDS * SAMPLE_RATE:
            stats["duplicates" if digest in seen else "too_short"] += 1
            continue
        seen[digest] = sound.source
        sounds.append(sound)
    log(f"corpus: decoded {len(sounds)} clips in {time.time() - started:.0f} s")

    sources_of: dict[str, set] = defaultdict(set)
    for sound in sounds:
        sources_of[sound.name].add(sound.source)
    dropped = {n: len(s) for n, s in sorted(sources_of.items()) if len(s) < MIN_SOURCES}
    for name in by_class:
        if name not in sources_of:
            dropped[name] = 0
    splits = {n: split_sources(sorted(s), seed, n) for n, s in sources_of.items() if n not in dropped}

    clips, classes = [], {}
    for index, sound in enumerate(sounds):
        if sound.name in dropped:
            continue
        split = splits[sound.name][sound.source]
        stem = _safe(sound.source.split("!")[-1].rsplit("/", 1)[-1].rsplit(".", 1)[0])
        path = (out_dir / "audio" / sound.name / f"{stem}_{index:05d}.wav").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, overwrite=True) as temporary:
            sf.write(temporary, np.clip(sound.samples, -1, 1), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        duration = len(sound.samples) / SAMPLE_RATE
        clips.append(Clip(path, None, 0, sound.label, split, sound.source, duration))
        entry = classes.setdefault(sound.name, {"label": sound.label, "sources": 0, "clips": {s: 0 for s in ("train", "val", "test")}, "seconds": {s: 0.0 for s in ("train", "val", "test")}})
        entry["clips"][split] += 1
        entry["seconds"][split] = round(entry["seconds"][split] + duration, 3)
    for name, entry in classes.items():
        entry["sources"] = len(sources_of[name])
    index_path = out_dir / "index.csv"
    write_index(index_path, clips)
    total_s = sum(c.duration_s for c in clips)
    manifest = {
        "sample_rate": SAMPLE_RATE,
        "format": "WAV PCM_16 mono",
        "num_classes": len(classes),
        "num_clips": len(clips),
        "total_hours": round(total_s / 3600, 4),
        "split_clips": {s: sum(1 for c in clips if c.split == s) for s in ("train", "val", "test")},
        "split_hours": {s: round(sum(c.duration_s for c in clips if c.split == s) / 3600, 4) for s in ("train", "val", "test")},
        "classes": dict(sorted(classes.items())),
        "dropped_classes": {n: f"{k} distinct source(s) < {MIN_SOURCES}" for n, k in sorted(dropped.items())},
        "skipped": dict(stats),
        "seed": seed,
        "max_files_per_class": max_files_per_class,
        "package_versions": _package_versions(),
        "build_command": command or f"python -m clipsep_rt.training.corpus --out {out_dir} --seed {seed}"
        + (f" --max-files-per-class {max_files_per_class}" if max_files_per_class else ""),
        "build_seconds": round(time.time() - started, 1),
        "notes": [
            "Splits are by source file (a group of concatenated short one-shots counts as one source).",
            "Short one-shots (< 1 s) of classes marked group_short (footsteps, hooves, drum hits) are concatenated from one folder into >= 1.5 s clips; other clips < 1 s are skipped.",
            "Duplicates are detected on the 8-bit quantised, trimmed decoded audio.",
            "Instrument classes are General-MIDI phrases rendered with fluidsynth from FluidR3_GM.sf2 (each seeded phrase is one source).",
            "The 'noisy' variant (mixtures with background noise) is produced at training time by the sampler, not stored here.",
            "Audio and index.csv stay untracked; only this manifest is committed.",
        ],
    }
    with atomic_output(out_dir / "manifest.json", overwrite=True) as temporary:
        temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(f"corpus: {len(clips)} clips, {len(classes)} classes, {total_s / 3600:.2f} h, {time.time() - started:.0f} s -> {index_path}")
    return index_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build the offline sound corpus from Debian packages.")
    parser.add_argument("--out", default="corpus/", help="output folder (audio/, index.csv, manifest.json)")
    parser.add_argument("--packages-root", default="/", help="root the packages are installed under")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-files-per-class", type=int, default=None)
    args = parser.parse_args(argv)
    command = "python -m clipsep_rt.training.corpus " + " ".join(argv if argv is not None else sys.argv[1:])
    build_corpus(args.out, args.packages_root, args.seed, args.max_files_per_class, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
