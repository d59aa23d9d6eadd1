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
`load_devset` reads it back.

    python -m clipsep_rt.training.devset --packages-root .cache/heldout-pkgs \\
        --heldout ../shared/corpus/heldout_packages.txt --out devset/
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipsep_rt.dsp.levels import active_mask, active_rms, active_samples, frame_energies

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.media import load_audio, write_audio_atomic
from clipsep_rt.training import hierarchy, taxonomy

VERSION = 1
SAMPLE_RATE = 16000
WINDOW_SAMPLES = 65535
FRAME = 320  # 20 ms at 16 kHz
ACTIVE_DB = 40.0  # a frame is active within this many dB of the loudest frame
CROP_GATE_DB = 25.0  # stricter gate used only to rank crops of long clips
CROP_CANDIDATES = 48
CROSSFADE = 160  # 10 ms
MAX_GAP = int(0.2 * SAMPLE_RATE)
MIN_CLIP = int(0.05 * SAMPLE_RATE)  # shorter clips (after trimming) are dropped
LEVEL_DBFS = -26.0
TIR_DB_RANGE = (-5.0, 5.0)
PEAK_LIMIT = 0.99
OTHER_CATEGORY_P = 0.8
MIN_FILES = 2
DEFAULT_MIXTURES = 240
AUTO = "AUTO"  # table value: the taxonomy's own rule labels these files (checked to be right)
C4GROUP_SUFFIXES = (".ocg", ".ocd", ".ocf", ".ocs")

OC = r"usr/share/games/openclonk/"
SND = OC + r"Sound\.ocg/"
SCR = r"usr/share/scratch/Media/Sounds/"
MIC = r"usr/share/games/micropolis/res/sounds/"
SIM = r"usr/share/games/simutrans/pak/sound/"
HOM = r"usr/share/games/minetest/mods/homedecor/"
ICO = r"usr/share/sounds/sound-icons/"

# (package, regex searched in the path inside the package, class | AUTO). First match wins;
# files no row matches are not used. Reviewed 2026-12-07 by file name, duration and (where
# unsure) spectrum; left out on purpose: openclonk's fantasy animals (Chippie, Mooq, Puka,
# Wipf, Zap, Monster, LavaCore) and the Clonks' gibberish "Confirm/Doubt/Decline" voices,
# scratch's sung "Vocals", electronic effects and mixed music loops, micropolis' spoken
# vowels and words, one-of-a-kind clips (rain, wind, owl, wolf, rooster, seagulls, sea lion,
# a ship's horn, typing, a siren) and clips whose content the name does not settle
# (micropolis "police", "cuckoo", "ignition"; simutrans "horse" (neigh then hooves),
# "arctic", "desert", "tropic", "crossing", "tree-cutting"; openclonk "Rustle", "Bubble").
HELDOUT_TABLE: tuple[tuple[str, str, str | None], ...] = (
    # mp3s whose decoding (libsndfile / mpg123) differs from run to run: corrupt frames
    ("scratch", SCR + r"(?:Animal/Cat|Human/Laugh-male3|Human/Scream-male2|Effects/WaterDrop)\.mp3$", None),
    # ---------------------------------------------------------------- animals
    ("scratch", SCR + r"Animal/Dog[12]\.wav$", AUTO),
    ("scratch", SCR + r"Animal/(?:Kitten|Meow)\.wav$", AUTO),
    ("scratch", SCR + r"Animal/(?:Duck|Goose)\.wav$", AUTO),
    ("micropolis-data", MIC + r"quack(?:quack)?\.wav$", "duck"),
    ("scratch", SCR + r"Animal/Bird\.wav$", AUTO),
    ("sound-icons", ICO + r"canary-long\.wav$", "birds"),
    ("openclonk-data", SND + r"Environment\.ocg/BirdsLoop\.ogg$", "birds"),
    ("scratch", SCR + r"Animal/Crickets?\.wav$", AUTO),
    ("openclonk-data", SND + r"Animals\.ocg/Bat\.ocg/(?:Chirp|Flutter[0-9])\.wav$", "bat"),
    # ---------------------------------------------------------------- people (non-speech)
    ("scratch", SCR + r"Human/(?:Cough|Sneeze)-(?:fe)?male\.wav$", AUTO),
    ("scratch", SCR + r"Human/Laugh-[a-z0-9]+\.wav$", AUTO),
    ("openclonk-data", SND + r"Clonk\.ocg/Skin\.ocg/[^/]+/Laughter[0-9]\.wav$", "laughter"),
    ("scratch", SCR + r"Human/Scream-[a-z0-9]+\.wav$", AUTO),
    ("openclonk-data", SND + r"Clonk\.ocg/Skin\.ocg/[^/]+/Scream[0-9]\.wav$", "person_screaming"),
    ("scratch", SCR + r"Human/Footsteps-[12]\.(?:wav|mp3)$", AUTO),
    ("openclonk-data", SND + r"Clonk\.ocg/Movement\.ocg/Step(?:Hard|Soft)[0-9]\.ogg$", "footsteps"),
    ("openclonk-data", SND + r"Clonk\.ocg/Action\.ocg/Munch[0-9]\.(?:ogg|wav)$", "eating"),
    # ---------------------------------------------------------------- nature
    ("openclonk-data", SND + r"Environment\.ocg/Lightning\.ocg/Thunder[0-9]\.ogg$", AUTO),
    ("openclonk-data", SND + r"Environment\.ocg/Disasters\.ocg/Earthquake(?:End)?\.ogg$", "earthquake"),
    ("openclonk-data", SND + r"Fire\.ocg/Fire\.ogg$", "fire"),
    ("minetest-mod-homedecor", HOM + r"fake_fire/sounds/fire_small\.ogg$", AUTO),
    ("openclonk-data", SND + r"Liquids\.ocg/Splash[0-9]\.wav$", AUTO),
    ("scratch", SCR + r"Effects/Plunge\.wav$", "splash"),
    ("openclonk-data", SND + r"Liquids\.ocg/Waterdrop[0-9]\.wav$", "water_drip"),
    ("openclonk-data", SND + r"Hits\.ocg/Materials\.ocg/Rock\.ocg/Rockfall[0-9]\.wav$", "falling_rocks"),
    # ---------------------------------------------------------------- household and tools
    ("minetest-mod-homedecor", HOM + r"homedecor_doors_and_gates/sounds/homedecor_(?:door_open|door_close|gate_open_close)\.ogg$", "door"),
    ("scratch", SCR + r"Effects/Door(?:Close\.mp3|Creak\.wav)$", "door"),
    ("openclonk-data", SND + r"Structures\.ocg/Door(?:Open|Close)[0-9]\.wav$", "door"),
    ("openclonk-data", SND + r"Structures\.ocg/Chest\.ocg/(?:Open|Close)\.ogg$", AUTO),
    ("openclonk-data", SND + r"Hits\.ocg/Materials\.ocg/Glass\.ocg/Glass(?:Break|Shatter)\.ogg$", "glass_break"),
    ("openclonk-data", SND + r"Hits\.ocg/Materials\.ocg/Metal\.ocg/(?:Dull|Light)MetalHit[0-9]\.ogg$", "metal_clank"),
    ("openclonk-data", SND + r"Hits\.ocg/BucketHit[0-9]\.wav$", "metal_clank"),
    ("openclonk-data", SND + r"Hits\.ocg/Materials\.ocg/Wood\.ocg/(?:Dull)?WoodHit[0-9]\.ogg$", "wood_knock"),
    ("simutrans-pak64", SIM + r"gavel\.wav$", "wood_knock"),
    ("openclonk-data", SND + r"Objects\.ocg/Pickaxe\.ocg/Clang(?:Hard)?[0-9]\.wav$", "mining"),
    ("openclonk-data", SND + r"Clonk\.ocg/Action\.ocg/Dig\.ocg/Dig[0-9]\.wav$", "digging"),
    ("openclonk-data", SND + r"Environment\.ocg/Tree\.ocg/Chop[0-9]\.wav$", "chopping_wood"),
    ("simutrans-pak64", SIM + r"buzzsaw\.wav$", "sawing"),
    ("openclonk-data", SND + r"Structures\.ocg/SawmillRipcut\.ogg$", "sawing"),
    ("simutrans-pak64", SIM + r"jackhammer\.wav$", "drill"),
    ("openclonk-data", SND + r"Structures\.ocg/Elevator\.ocg/Drilling\.ogg$", AUTO),
    ("minetest-mod-homedecor", HOM + r"homedecor_gastronomy/sounds/insert_coin\.ogg$", AUTO),
    ("simutrans-pak64", SIM + r"cash\.wav$", AUTO),
    ("openclonk-data", SND + r"UI\.ocg/(?:Cash\.ogg|UnCash[0-9]\.wav)$", "coins"),
    ("minetest-mod-homedecor", HOM + r"homedecor_common/sounds/homedecor_faucet\.ogg$", "pouring"),
    ("scratch", SCR + r"Effects/WaterRunning\.mp3$", "pouring"),
    # ---------------------------------------------------------------- signals
    ("scratch", SCR + r"Effects/BellToll\.wav$", "bell"),
    ("scratch", SCR + r"Percussion/Gong\.wav$", AUTO),
    ("minetest-mod-homedecor", HOM + r"homedecor_electrical/sounds/homedecor_doorbell\.ogg$", "bell"),
    ("micropolis-data", MIC + r"beep\.wav$", AUTO),
    ("scratch", SCR + r"Electronic/ComputerBeeps[12]\.wav$", "beep"),
    ("simutrans-pak64", SIM + r"click\.wav$", AUTO),
    ("openclonk-data", SND + r"UI\.ocg/Click\.wav$", "click"),
    ("openclonk-data", SND + r"Structures\.ocg/SwitchFlip\.wav$", "click"),
    ("micropolis-data", MIC + r"honkhonk-(?:hi|high|low|med)\.wav$", "car_horn"),
    # ---------------------------------------------------------------- vehicles and machines
    ("simutrans-pak64", SIM + r"truck\.wav$", AUTO),
    ("simutrans-pak64", SIM + r"bus\.wav$", "truck"),
    ("micropolis-data", MIC + r"bulldozer\.wav$", AUTO),
    ("simutrans-pak64", SIM + r"(?:steam|diesel)\.wav$", "train"),
    ("simutrans-pak64", SIM + r"planelow\.wav$", "airplane"),
    ("openclonk-data", SND + r"Objects\.ocg/Plane\.ocg/PropellerLoop\.ogg$", "airplane"),
    ("openclonk-data", SND + r"Structures\.ocg/(?:SteamEngine|Pumpjack|FanLoop)\.ogg$", "machine"),
    ("openclonk-data", OC + r"Objects\.ocd/Structures\.ocd/Sawmill\.ocd/EngineLoop\.ogg$", "machine"),
    ("micropolis-data", MIC + r"explosion-(?:hi|high|low)\.wav$", AUTO),
    ("simutrans-pak64", SIM + r"explosion\.wav$", AUTO),
    ("openclonk-data", SND + r"Fire\.ocg/Blast[123]\.wav$", "explosion"),
    # ---------------------------------------------------------------- instruments
    ("scratch", SCR + r"Instruments/Trumpet[12]\.wav$", "trumpet"),
    ("sound-icons", ICO + r"trumpet-[0-9]+\.wav$", "trumpet"),
    ("scratch", SCR + r"Instruments/GuitarStrum\.wav$", "acoustic_guitar"),
    ("scratch", SCR + r"Music Loops/GuitarChords[12]\.mp3$", "acoustic_guitar"),
    ("sound-icons", ICO + r"guitar-[0-9]+\.wav$", "acoustic_guitar"),
    ("sound-icons", ICO + r"cembalo-[0-9]+\.wav$", "harpsichord"),
    ("scratch", SCR + r"Percussion/(?:CymbalCrash|RideCymbal)\.wav$", "cymbal"),
)

# One wording per class that is none of its taxonomy labels (checked by `check_paraphrases`).
PARAPHRASES: dict[str, str] = {
    "dog": "a dog yapping at someone",
    "cat": "a house cat mewling for attention",
    "duck": "a waterfowl honking and quacking on a pond",
    "birds": "small songbirds twittering in the trees",
    "crickets": "the steady chirr of crickets on a summer evening",
    "bat": "a bat fluttering and squeaking in the dark",
    "coughing": "a person clearing their throat and sneezing",
    "laughter": "someone bursting into loud laughs",
    "person_screaming": "a terrified shriek from a person",
    "footsteps": "a person's feet treading along a path",
    "eating": "someone chomping noisily on food",
    "thunder": "a thunderstorm rolling in over the hills",
    "earthquake": "the deep rumble of the earth trembling",
    "fire": "logs crackling in a burning campfire",
    "splash": "something plunging into a pool of water",
    "water_drip": "drops of water falling one by one",
    "falling_rocks": "stones and gravel tumbling down a slope",
    "door": "a door creaking on its hinges and shutting",
    "chest_open": "the hinged lid of a trunk being lifted",
    "glass_break": "a pane of glass smashing to pieces",
    "metal_clank": "a metal bucket being banged",
    "wood_knock": "someone rapping on a wooden plank",
    "mining": "a miner striking stone with a pick",
    "digging": "a spade scraping into dirt",
    "chopping_wood": "a lumberjack splitting logs with an axe",
    "sawing": "a circular saw cutting through a board",
    "drill": "a jackhammer pounding into concrete",
    "coins": "loose change rattling in a till",
    "pouring": "water gushing out of a tap",
    "bell": "a large bell tolling slowly",
    "beep": "a computer emitting short electronic tones",
    "click": "the snap of a light switch being flipped",
    "car_horn": "a driver tooting the horn",
    "truck": "a diesel lorry engine rumbling along",
    "train": "a locomotive chugging along the tracks",
    "airplane": "a propeller aircraft droning overhead",
    "machine": "an engine in a workshop running steadily",
    "explosion": "a bomb going off with a loud bang",
    "trumpet": "a trumpeter playing a fanfare on stage",
    "acoustic_guitar": "someone strumming chords on a six-string guitar",
    "harpsichord": "a few plucked notes on a cembalo",
    "cymbal": "a drummer hitting a crash cymbal hard",
}


# ---------------------------------------------------------------------------- catalogue


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


def catalogue(root: Path, packages: list[str], log=print) -> dict[str, list[Clip]]:
    """class -> its distinct clips (decoded, trimmed), classes with >= MIN_FILES clips only."""
    by_class: dict[str, list[Clip]] = {}
    seen: dict[str, str] = {}
    kept: list[tuple[str, np.ndarray]] = []
    known = taxonomy.all_class_labels()
    for package in packages:
        base = root / package
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath) / name
                path = full.relative_to(base).as_posix()
                if not name.lower().endswith(taxonomy.AUDIO_SUFFIXES):
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


# ---------------------------------------------------------------------------- signal helpers


def trim_silence(x: np.ndarray, gate_db: float = ACTIVE_DB) -> np.ndarray:
    """`x` without leading and trailing 20 ms frames more than `gate_db` below the loudest."""
    x = np.asarray(x, dtype=np.float32)
    if not np.any(x):
        return x[:0]
    idx = np.flatnonzero(active_mask(frame_energies(x, FRAME)[0], gate_db))
    return x[idx[0] * FRAME : min(len(x), (idx[-1] + 1) * FRAME)]


def _is_sustained(x: np.ndarray) -> bool:
    """A sound whose ends are about as loud as its body (a loop): repeats join by crossfade."""
    edge = min(len(x) // 4, 800)
    if edge < FRAME:
        return False
    body = active_rms(x)
    ends = [np.sqrt(np.mean(np.asarray(seg, np.float64) ** 2)) for seg in (x[:edge], x[-edge:])]
    return body > 0 and min(ends) > body * 10 ** (-12 / 20)


def fill_window(x: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A window of exactly `n` samples filled with the sound of clip `x` (trimmed): a random
    high-activity crop of a long clip, or a short clip looped from a random offset. Returns
    (window, how) where how is "crop", "loop-crossfade" or "loop-gaps"."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) >= n:
        span = len(x) - n
        starts = np.unique(np.concatenate([[0, span], rng.integers(0, span + 1, CROP_CANDIDATES)]))
        strict = active_samples(x, FRAME, CROP_GATE_DB).astype(np.float64)
        csum = np.concatenate([[0.0], np.cumsum(strict)])
        fractions = (csum[starts + n] - csum[starts]) / n
        good = starts[fractions >= fractions.max() * 0.95]
        start = int(rng.choice(good))
        return x[start : start + n].copy(), "crop"
    sustained = _is_sustained(x) and len(x) > 4 * CROSSFADE
    pieces: list[np.ndarray] = []
    total = 0
    need = n + len(x) + MAX_GAP
    if sustained:
        fade_in = np.sin(np.linspace(0, np.pi / 2, CROSSFADE, dtype=np.float64)) ** 2
        out = np.asarray(x, np.float64).copy()
        while len(out) < need:
            head = out[:-CROSSFADE]
            joint = out[-CROSSFADE:] * (1 - fade_in) + x[:CROSSFADE] * fade_in
            out = np.concatenate([head, joint, x[CROSSFADE:]])
        period = len(x) - CROSSFADE
        offset = int(rng.integers(0, period))
        return out[offset : offset + n].astype(np.float32), "loop-crossfade"
    while total < need:
        pieces.append(x)
        gap = np.zeros(int(rng.integers(0, MAX_GAP + 1)), dtype=np.float32)
        pieces.append(gap)
        total += len(x) + len(gap)
    out = np.concatenate(pieces)
    offset = int(rng.integers(0, len(x) + len(pieces[1])))
    return out[offset : offset + n].copy(), "loop-gaps"


def scale_pair(target: np.ndarray, interference: np.ndarray, tir_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Both at LEVEL_DBFS active RMS, interference then at `tir_db` below the target, both
    scaled together so no peak (target, interference, mixture) reaches PEAK_LIMIT."""
    level = 10 ** (LEVEL_DBFS / 20)
    t = np.asarray(target, np.float64) * (level / active_rms(target))
    i = np.asarray(interference, np.float64) * (level / active_rms(interference) * 10 ** (-tir_db / 20))
    peak = max(np.abs(t).max(), np.abs(i).max(), np.abs(t + i).max())
    if peak >= PEAK_LIMIT:
        gain = PEAK_LIMIT * 0.999 / peak
        t, i = t * gain, i * gain
    return t.astype(np.float32), i.astype(np.float32)


def tir_db(target: np.ndarray, interference: np.ndarray) -> float:
    """Target-to-interference ratio (dB) on active-frame RMS."""
    return 20 * math.log10(active_rms(target) / active_rms(interference))


def oracle_ibm_sdri(target: np.ndarray, interference: np.ndarray, n_fft: int = 1024, hop: int = 256) -> float:
    """SDRi (BSS Eval v4) of the ideal binary mask |T| > 0.5 |M| on a Hann STFT."""
    from scipy.signal import istft, stft

    from clipsep_rt.dsp.metrics import separation_metrics

    t = np.asarray(target, np.float64)
    i = np.asarray(interference, np.float64)
    mix = t + i
    kwargs = dict(fs=SAMPLE_RATE, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    _, _, T = stft(t, **kwargs)
    _, _, M = stft(mix, **kwargs)
    mask = np.abs(T) > 0.5 * np.abs(M)
    _, est = istft(M * mask, **kwargs)
    est = est[: len(t)]
    if len(est) < len(t):
        est = np.pad(est, (0, len(t) - len(est)))
    return float(separation_metrics(est, t, i, mix).sdri)


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
    log=print,
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
    cycles: dict[str, list[int]] = {}

    def next_clip(cls: str) -> Clip:  # shuffled cycle over the class's files
        if not cycles.get(cls):
            cycles[cls] = list(rng.permutation(len(clips[cls])))
        return clips[cls][cycles[cls].pop()]

    audio_dir = out / "audio"
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
        "  Read it with `clipsep_rt.training.devset.load_devset`.",
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


# ---------------------------------------------------------------------------- reader


@dataclass(frozen=True)
class DevMixture:
    index: int
    target_class: str
    target_labels: list[str]
    paraphrase: str
    interference_class: str
    interference_labels: list[str]
    unrelated_class: str
    unrelated_labels: list[str]
    tir_db: float
    target_audio: str
    interference_audio: str
    target_source: str
    interference_source: str
    target_category: str
    extra: dict = field(default_factory=dict)


_MIXTURE_FIELDS = tuple(f for f in DevMixture.__dataclass_fields__ if f != "extra")


@dataclass(frozen=True)
class DevSet:
    root: Path
    sample_rate: int
    window_samples: int
    seed: int
    classes: dict[str, int]
    mixtures: list[DevMixture]

    def __len__(self) -> int:
        return len(self.mixtures)

    def load_mixture(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(target, interference) float32 arrays of `window_samples`; their sum is the mixture."""
        import soundfile as sf

        mixture = self.mixtures[index]
        out = []
        for rel in (mixture.target_audio, mixture.interference_audio):
            path = self.root / rel
            try:
                samples, rate = sf.read(path, dtype="float32", always_2d=False)
            except (OSError, RuntimeError) as exc:
                raise ClipsepError(f"{path}: cannot read dev-set audio ({exc})") from None
            if rate != self.sample_rate or samples.ndim != 1 or len(samples) != self.window_samples:
                raise ClipsepError(f"{path}: expected mono {self.window_samples} samples at {self.sample_rate} Hz, "
                                   f"got shape {samples.shape} at {rate} Hz")
            out.append(samples)
        return out[0], out[1]


def load_devset(path: str | os.PathLike) -> DevSet:
    """Read a dev set (its folder or its devset.json)."""
    path = Path(path)
    manifest_path = path / "devset.json" if path.is_dir() else path
    try:
        data = json.loads(manifest_path.read_text())
    except OSError as exc:
        raise ClipsepError(f"{manifest_path}: cannot read the dev set ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ClipsepError(f"{manifest_path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ClipsepError(f"{manifest_path}: not a version-{VERSION} dev set manifest")
    try:
        mixtures = [
            DevMixture(**{k: m[k] for k in _MIXTURE_FIELDS}, extra={k: v for k, v in m.items() if k not in _MIXTURE_FIELDS})
            for m in data["mixtures"]
        ]
        return DevSet(manifest_path.parent, int(data["sample_rate"]), int(data["window_samples"]), int(data["seed"]),
                      dict(data["classes"]), mixtures)
    except (KeyError, TypeError) as exc:
        raise ClipsepError(f"{manifest_path}: dev set manifest lacks a field ({exc})") from None


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
