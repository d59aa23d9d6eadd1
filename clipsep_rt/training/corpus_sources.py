"""Where corpus v3's sounds come from: package files, archives, soundfont renders, TTS voices.

Packages are extracted one per folder under ``packages_root`` (``make corpus`` does it with
``apt-get download`` + ``dpkg-deb -x`` and writes ``<package>/.deb-version``). Everything here
is deterministic for the same package versions and seed.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.media import load_audio
from clipsep_rt.training.taxonomy import ARCHIVE_SUFFIXES, AUDIO_SUFFIXES
from clipsep_rt.training.taxonomy_instruments import DRUMS, INSTRUMENTS, SOUNDFONTS
from clipsep_rt.training.taxonomy_speech import TTS_VOICES

SAMPLE_RATE = 16000
PHRASE_SECONDS = 6.0


@dataclass
class Rendered:
    name: str  # class
    label: str
    source: str  # source id (also names the voice / soundfont)
    package: str
    samples: np.ndarray
    meta: dict


def list_packages(root: Path) -> list[str]:
    """Package folders under root (sorted)."""
    if not root.is_dir():
        raise ClipsepError(f"packages root {root}: no such folder")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def walk_package_files(root: Path, package: str) -> Iterator[tuple[Path, str]]:
    """(path, path inside the package as posix) for every file of ``root/package``, in a
    stable order (folders and files sorted by name)."""
    base = root / package
    for dirpath, dirnames, files in os.walk(base):
        dirnames.sort()
        for name in sorted(files):
            path = Path(dirpath) / name
            yield path, path.relative_to(base).as_posix()


def collect_files(root: Path, packages: list[str]) -> list[tuple[str, tuple]]:
    """(key, opener) for every audio file of the packages, archive members included.
    Symlinks are skipped (their targets are counted where they live)."""
    found: list[tuple[str, tuple]] = []
    for package in packages:
        for path, inner in walk_package_files(root, package):
            if path.is_symlink():
                continue
            low = path.name.lower()
            key = f"{package}/{inner}"
            if low.endswith(AUDIO_SUFFIXES):
                found.append((key, ("file", str(path), None)))
            elif low.endswith(ARCHIVE_SUFFIXES):
                try:
                    with zipfile.ZipFile(path) as archive:
                        members = sorted(m for m in archive.namelist() if m.lower().endswith(AUDIO_SUFFIXES))
                except (zipfile.BadZipFile, OSError):
                    continue
                found.extend((f"{key}!{m}", ("zip", str(path), m)) for m in members)
    return found


def decode(opener: tuple) -> np.ndarray:
    """Mono float32 at SAMPLE_RATE of a file or an archive member."""
    kind, path, member = opener
    if kind == "file":
        return load_audio(path, SAMPLE_RATE, min_samples=1).samples
    with zipfile.ZipFile(path) as archive:
        data = archive.read(member)
    with tempfile.NamedTemporaryFile(suffix=Path(member).suffix) as handle:
        handle.write(data)
        handle.flush()
        return load_audio(handle.name, SAMPLE_RATE, min_samples=1).samples


def package_version(root: Path, package: str) -> str:
    marker = root / package / ".deb-version"
    if marker.is_file():
        return marker.read_text(encoding="utf-8").strip()
    return tool_version(package)


def tool_version(package: str) -> str:
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown (no dpkg-query)"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "not installed"


_LICENCE_WORDS = (
    ("CC-BY-SA", r"cc-by-sa|creative commons attribution[- ]share ?alike"), ("CC-BY", r"cc-by(?!-sa)|creative commons attribution(?![- ]share)"),
    ("CC0", r"cc0|public domain dedication"), ("GPL", r"gnu general public license|\bgpl"), ("LGPL", r"lesser general public|\blgpl"),
    ("MIT", r"\bmit\b|expat"), ("BSD", r"\bbsd"), ("Artistic", r"artistic license"), ("public-domain", r"public domain"),
)


def package_licence(root: Path, package: str) -> dict:
    """{"licence": short names, "copyright_file": path} from the package's copyright file:
    the DEP-5 ``License:`` fields when present, else licence names found in the text."""
    candidates = [root / package / "usr/share/doc" / package / "copyright"]
    candidates += sorted((root / package / "usr/share/doc").glob("*/copyright")) if (root / package / "usr/share/doc").is_dir() else []
    candidates.append(Path("/usr/share/doc") / package / "copyright")
    for path in candidates:
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            names, how = [], "licence names mentioned in a free-form copyright file (check the file)"
            if text.lstrip().lower().startswith("format:"):
                how = "License fields of the machine-readable (DEP-5) copyright file"  # machine-readable (DEP-5): the License fields
                fields = re.findall(r"^License:[ \t]*(\S[^\n]*)$", text, re.MULTILINE)
                names = sorted({f.strip() for f in fields if f.strip() and len(f.strip()) <= 60})
            if not names:
                low = text.lower()
                names = [short for short, pattern in _LICENCE_WORDS if re.search(pattern, low)]
            shown = path.relative_to(root) if path.is_relative_to(root) else path
            return {"licence": ", ".join(names) or "see copyright file", "licence_source": how, "copyright_file": str(shown)}
    return {"licence": "unknown (no copyright file)", "copyright_file": None}


# ---------------------------------------------------------------------------- soundfonts


def _phrase(synth, channel: int, notes: list[int], rng: random.Random, sustained: bool, drum: bool) -> np.ndarray:
    tempo = rng.uniform(0.35, 0.9) if sustained else rng.uniform(0.2, 0.5)
    chunks, t, idx = [], 0.0, rng.randrange(len(notes))
    while t < PHRASE_SECONDS:
        if drum:
            idx = rng.randrange(len(notes))
        else:
            idx = max(0, min(len(notes) - 1, idx + rng.choice([-2, -1, -1, 1, 1, 2, 0, 3])))
        chord = [notes[idx]]
        if not sustained and not drum and rng.random() < 0.3 and idx + 2 < len(notes):
            chord.append(notes[idx + 2])
        dur = tempo * rng.choice([1, 1, 1, 2, 0.5])
        for note in chord:
            synth.noteon(channel, note, rng.randint(70, 120))
        chunks.append(np.asarray(synth.get_samples(int(dur * 0.9 * SAMPLE_RATE))))
        for note in chord:
            synth.noteoff(channel, note)
        chunks.append(np.asarray(synth.get_samples(int(dur * 0.1 * SAMPLE_RATE))))
        t += dur
    chunks.append(np.asarray(synth.get_samples(int(0.8 * SAMPLE_RATE))))
    stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2) / 32768.0
    mono = stereo.mean(axis=1)
    peak = float(np.max(np.abs(mono), initial=0.0))
    return mono * (0.7 / peak) if peak > 0 else mono


def render_soundfonts(root: Path, packages: set[str], per_class: int, seed: int, log) -> list[Rendered]:
    """Seeded phrases of every GM instrument (melodic soundfonts) and drum pattern (all), except a
    font's `skip` classes."""
    sounds: list[Rendered] = []
    wanted = [sf for sf in SOUNDFONTS if sf.package in packages and (root / sf.package / sf.path).is_file()]
    if not wanted:
        return sounds
    try:
        import fluidsynth  # pyfluidsynth; needs libfluidsynth3
    except (ImportError, OSError) as error:
        log(f"corpus: pyfluidsynth unavailable ({error}): soundfont classes skipped")
        return sounds
    for font in wanted:
        synth = fluidsynth.Synth(samplerate=float(SAMPLE_RATE))
        sfid = synth.sfload(str(root / font.package / font.path))
        tag = Path(font.path).stem
        jobs = []
        if font.kind == "melodic":
            for inst in INSTRUMENTS:
                jobs.append((inst.name, inst.label, 0, (0, inst.program), inst))
        for drum in DRUMS:
            jobs.append((drum.name, drum.label, 9, (128, 0) if font.kind == "melodic" else (0, 0), drum))
        for name, label, channel, (bank, program), spec in jobs:
            if name in font.skip:
                continue  # this preset plays another allowed font's samples
            for phrase in range(per_class):
                rng = random.Random(f"{seed}:{tag}:{name}:{phrase}")
                synth.program_select(channel, sfid, bank, program)
                if channel == 9:
                    notes, sustained, drum = list(spec.notes), False, True
                else:
                    scale = rng.choice([[0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10]])
                    tonic = rng.randint(spec.low, max(spec.low, spec.high - 12))
                    notes = [tonic + 12 * o + s for o in (0, 1) for s in scale if tonic + 12 * o + s <= spec.high]
                    sustained, drum = spec.sustained, False
                mono = _phrase(synth, channel, notes, rng, sustained, drum)
                sounds.append(Rendered(name, label, f"{font.package}:{tag}:{name}:phrase{phrase}", font.package, mono,
                                       {"soundfont": tag}))
                synth.system_reset()
        synth.delete()
        log(f"corpus: rendered {font.package}/{tag}")
    return sounds


# ---------------------------------------------------------------------------- text to speech

TEXTS_EN = (
    "The train to the coast leaves from platform four at half past nine.",
    "Please remember to water the plants while I am away next week.",
    "I think the weather will clear up by the afternoon.",
    "She opened the window and listened to the rain on the roof.",
    "Turn left at the second traffic light and the museum is on your right.",
    "We need three more chairs before the guests arrive tonight.",
    "The library closes early on Sundays, so go in the morning.",
    "Can you hear the music coming from the house next door?",
    "My brother bought a second hand bicycle at the market.",
    "Add a pinch of salt and stir the soup for another minute.",
    "The meeting has been moved to Thursday at eleven o'clock.",
    "A small dog followed us all the way home from the park.",
    "Thank you for calling, your order will be shipped tomorrow.",
    "The old bridge over the river was rebuilt last summer.",
    "Nobody expected the concert to sell out in an hour.",
    "Keep the receipt in case you want to return the shoes.",
    "The children were playing football until it got dark.",
    "He wrote a long letter to his grandmother in the country.",
    "It takes about twenty minutes to walk to the station.",
    "The recipe says to bake the bread for forty minutes.",
    "Please switch off your phone before the film begins.",
    "There is a strong wind coming in from the north tonight.",
    "We watched the boats sail out of the harbour at dawn.",
    "The new shop on the corner sells fresh fruit and flowers.",
)
TEXTS_RU = (
    "Поезд на побережье отправляется в половине десятого.",
    "Пожалуйста, не забудь полить цветы на следующей неделе.",
    "Я думаю, что к вечеру погода станет лучше.",
    "Она открыла окно и слушала дождь на крыше.",
    "Поверните налево у второго светофора, и музей будет справа.",
    "Нам нужно ещё три стула до прихода гостей.",
    "Библиотека закрывается рано по воскресеньям.",
    "Ты слышишь музыку из соседнего дома?",
    "Мой брат купил подержанный велосипед на рынке.",
    "Добавьте щепотку соли и помешайте суп ещё минуту.",
    "Собрание перенесли на четверг, на одиннадцать часов.",
    "Маленькая собака шла за нами от самого парка.",
    "Старый мост через реку отремонтировали прошлым летом.",
    "Дети играли в футбол, пока не стемнело.",
    "До вокзала идти пешком около двадцати минут.",
    "Сегодня ночью с севера придёт сильный ветер.",
)


def render_tts(available_packages: set[str], per_voice: int, seed: int, log) -> list[Rendered]:
    """Sentences spoken by each installed festival / flite voice (TTS_VOICES); each sentence
    of each voice is one source. Voices whose engine or package is missing are skipped."""
    sounds: list[Rendered] = []
    flite, text2wave = shutil.which("flite"), shutil.which("text2wave")
    with tempfile.TemporaryDirectory() as tmp:
        for voice in TTS_VOICES:
            if voice.package not in available_packages:
                continue
            engine = flite if voice.engine == "flite" else text2wave
            if engine is None:
                log(f"corpus: {voice.engine} not installed: voice {voice.voice} skipped")
                continue
            texts = list(TEXTS_RU if voice.language == "ru" else TEXTS_EN)
            random.Random(f"{seed}:{voice.voice}").shuffle(texts)
            made = 0
            for number, text in enumerate(texts[:per_voice]):
                out = Path(tmp) / f"{voice.voice}_{number}.wav"
                if voice.engine == "flite":
                    cmd = [engine, "-voice", voice.voice, "-t", text, "-o", str(out)]
                else:
                    src = Path(tmp) / "text.txt"
                    src.write_text(text, encoding="utf-8")
                    cmd = [engine, "-eval", f"(voice_{voice.voice})", str(src), "-o", str(out)]
                try:
                    done = subprocess.run(cmd, capture_output=True, timeout=120)
                except (OSError, subprocess.SubprocessError) as error:
                    log(f"corpus: {voice.voice}: {error}")
                    break
                if done.returncode != 0 or not out.is_file() or out.stat().st_size < 1000:
                    log(f"corpus: {voice.voice} failed ({done.stderr.decode(errors='replace').strip()[:120]}): voice skipped")
                    break
                samples = load_audio(out, SAMPLE_RATE, min_samples=1).samples
                name = "man_speaking" if voice.gender == "male" else "woman_speaking"
                label = ("a man speaking|a male voice talking|a man says something" if voice.gender == "male"
                         else "a woman speaking|a female voice talking|a woman says something")
                sounds.append(Rendered(name, label, f"tts:{voice.engine}:{voice.voice}:{number}", voice.package, samples,
                                       {"voice": voice.speaker, "language": voice.language, "gender": voice.gender,
                                        "synthetic": True, "tts_voice": f"{voice.engine}:{voice.voice}"}))
                made += 1
            log(f"corpus: tts {voice.engine}:{voice.voice}: {made} sentences")
    return sounds
