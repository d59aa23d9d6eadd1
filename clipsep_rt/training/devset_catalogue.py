"""The dev set's catalogue: the held-out packages (checked against the held-out list,
openclonk's archives exploded), their audio files labelled by `HELDOUT_TABLE`, decoded,
trimmed and kept once per distinct recording."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.media import load_audio
from clipsep_rt.training import taxonomy
from clipsep_rt.training.corpus_sources import walk_package_files
from clipsep_rt.training.devset_audio import SAMPLE_RATE, trim_silence
from clipsep_rt.training.devset_tables import AUTO, HELDOUT_TABLE

_LOG = logging.getLogger(__name__)
MIN_CLIP = int(0.05 * SAMPLE_RATE)  # shorter clips (after trimming) are dropped
MIN_FILES = 2
C4GROUP_SUFFIXES = (".ocg", ".ocd", ".ocf", ".ocs")


def read_heldout(path: str | os.PathLike) -> list[str]:
    """The package names of the held-out list (one per line, "#" comments)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ClipsepError(f"{path}: cannot read the held-out package list ({exc.strerror or exc})") from None
    names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    names = [n for n in names if n]
    if not names:
        raise ClipsepError(f"{path}: the held-out package list names no package")
    return names


def check_packages_root(root: Path, heldout: list[str]) -> list[str]:
    """The held-out packages found under `root`; refuses a folder that is not held out
    (the dev set must never read a training package) and a listed package that is missing."""
    if not root.is_dir():
        raise ClipsepError(f"{root}: packages root is not a directory")
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    foreign = [p for p in present if p not in heldout]
    if foreign:
        raise ClipsepError(f"{root / foreign[0]}: package {foreign[0]!r} is not in the held-out list; "
                           "refusing to build a dev set from it")
    missing = [p for p in heldout if p not in present]
    if missing:
        raise ClipsepError(f"{root / missing[0]}: held-out package {missing[0]!r} is not extracted "
                           f"(dpkg-deb -x <deb> {root / missing[0]}/)")
    return present


def explode_c4group_archives(package_dir: Path) -> list[Path]:
    """Explode openclonk's c4group archives (files named *.ocg, *.ocd, *.ocf) in place with
    `c4group <archive> -x` (which unpacks nested groups too); returns the exploded ones."""
    archives = sorted(p for p in package_dir.rglob("*") if p.is_file() and p.suffix.lower() in C4GROUP_SUFFIXES)
    if archives and shutil.which("c4group") is None:
        raise ClipsepError(f"{archives[0]}: c4group archive, but `c4group` is not installed (apt-get install openclonk)")
    for archive in archives:
        result = subprocess.run(["c4group", archive.name, "-x"], cwd=archive.parent, capture_output=True, text=True)
        if result.returncode != 0 or archive.is_file():
            said = (result.stdout + result.stderr).strip()[-200:]
            raise ClipsepError(f"{archive}: c4group could not explode the archive ({said})")
    return archives


def package_version(package_dir: Path) -> str:
    """The Debian version from the package's changelog.Debian.gz, else "unknown"."""
    docs = package_dir / "usr" / "share" / "doc"
    candidates = [docs / package_dir.name / "changelog.Debian.gz", *sorted(docs.glob("*/changelog.Debian.gz"))]
    for changelog in candidates:
        try:
            with gzip.open(changelog, "rt", errors="replace") as handle:
                match = re.match(r"\S+ \(([^)]+)\)", handle.readline())
        except OSError:
            continue
        if match:
            return match.group(1)
    return "unknown"


@dataclass(frozen=True)
class Clip:
    key: str  # <package>/<path inside the package>
    cls: str
    label_source: str  # "taxonomy" (classify_any agrees) or "table"
    samples: np.ndarray  # trimmed, 16 kHz mono float32


def table_class(package: str, path: str) -> str | None:
    """The class `HELDOUT_TABLE` gives a file, or None when it is not used."""
    for pkg, pattern, cls in HELDOUT_TABLE:
        if pkg == package and re.search(pattern, path):
            if cls is None:
                return None
            if cls != AUTO:
                return cls
            hit = taxonomy.classify_any(f"{package}/{path}")
            if hit is None:
                raise ClipsepError(f"{package}/{path}: table row {pattern!r} says AUTO but the taxonomy gives no class")
            return hit[0].name
    return None


def near_duplicate_of(samples: np.ndarray, kept: list[tuple[str, np.ndarray]], threshold: float = 0.8) -> str | None:
    """The key of an earlier clip that is the same recording (length within 1%, normalised
    correlation above `threshold`: micropolis ships "-hi" and "-high" copies of one sound)."""
    for key, other in kept:
        if abs(len(other) - len(samples)) > 0.01 * max(len(other), len(samples)):
            continue
        n = min(len(other), len(samples))
        a, b = np.asarray(samples[:n], np.float64), np.asarray(other[:n], np.float64)
        norm = np.linalg.norm(a) * np.linalg.norm(b)
        if norm > 0 and abs(np.dot(a, b)) / norm > threshold:
            return key
    return None


def _decodes_stably(path: Path, first: np.ndarray, tries: int = 2) -> bool:
    """Whether decoding `path` again gives `first` (mpg123 fills corrupt frames at random)."""
    for _ in range(tries):
        again = trim_silence(load_audio(path, SAMPLE_RATE, min_samples=1).samples)
        if again.shape != first.shape or not np.array_equal(again, first):
            return False
    return True


def catalogue(root: Path, packages: list[str], log: Callable[[str], None] = _LOG.info) -> dict[str, list[Clip]]:
    """class -> its distinct clips (decoded, trimmed), classes with >= MIN_FILES clips only."""
    by_class: dict[str, list[Clip]] = {}
    seen: dict[str, str] = {}
    kept: list[tuple[str, np.ndarray]] = []
    known = taxonomy.all_class_labels()
    for package in packages:
        for full, path in walk_package_files(root, package):
            if not full.name.lower().endswith(taxonomy.AUDIO_SUFFIXES):
                continue
            cls = table_class(package, path)
            if cls is None:
                continue
            key = f"{package}/{path}"
            if cls not in known:
                raise ClipsepError(f"{package}/{path}: class {cls!r} is not a class of the training taxonomy")
            try:
                samples = trim_silence(load_audio(full, SAMPLE_RATE, min_samples=1).samples)
                if full.suffix.lower() == ".mp3" and not _decodes_stably(full, samples):
                    log(f"devset: {key}: decodes differently from run to run (corrupt mp3 frames), dropped")
                    continue
            except ClipsepError as exc:  # a broken file (e.g. an mp3 decoding to NaN) is left out
                log(f"devset: {key}: not decodable, dropped ({exc})")
                continue
            if len(samples) and np.abs(samples).max() > 4.0:
                log(f"devset: {key}: decodes to samples beyond +-4 (a broken stream), dropped")
                continue
            if len(samples) < MIN_CLIP:
                log(f"devset: {key}: under {MIN_CLIP} samples after trimming, dropped")
                continue
            digest = hashlib.sha256(np.round(samples, 4).astype(np.float32).tobytes()).hexdigest()
            twin = seen.get(digest) or near_duplicate_of(samples, kept)
            if twin is not None:
                log(f"devset: {key}: same audio as {twin}, dropped")
                continue
            seen[digest] = key
            kept.append((key, samples))
            auto = taxonomy.classify_any(key)
            source = "taxonomy" if auto is not None and auto[0].name == cls else "table"
            by_class.setdefault(cls, []).append(Clip(key, cls, source, samples))
    for cls in sorted(by_class):
        if len(by_class[cls]) < MIN_FILES:
            log(f"devset: class {cls}: {len(by_class[cls])} distinct file(s), dropped")
            del by_class[cls]
    return by_class
