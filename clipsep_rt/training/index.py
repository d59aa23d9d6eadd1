"""The dataset index shared by training and evaluation: one CSV, one row per clip.

Header: ``audio,frames,frame_count,label,split,source,duration_s``

- ``audio``: an audio (or video) file, relative to the CSV's folder; any rate (resampled on load).
- ``frames``: a folder of frames sampled at 1 fps (video datasets), relative to the CSV's
  folder; empty for text-labelled corpora. Frame i is the i-th image file in name order.
- ``frame_count``: number of frames (0 when there are none).
- ``label``: the text label (corpora; "|" separates paraphrases); empty for videos.
- ``split``: train, val, test (splits are made by source) or cross_source (whole packages
  held out of training and validation: the same classes recorded elsewhere).
- ``source``: the original source file id.
- ``duration_s``: the clip's duration in seconds.
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output

COLUMNS = ("audio", "frames", "frame_count", "label", "split", "source", "duration_s")
SPLITS = ("train", "val", "test", "cross_source")  # cross_source: held-out packages (corpus v2)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class Clip:
    audio: Path  # absolute
    frames: Path | None  # absolute folder of 1-fps frames, or None
    frame_count: int
    label: str  # "" for videos; "|"-separated paraphrases allowed
    split: str
    source: str
    duration_s: float

    @property
    def paraphrases(self) -> tuple[str, ...]:
        """The label's paraphrases (empty tuple when there is no label)."""
        return tuple(part.strip() for part in self.label.split("|") if part.strip())

    @property
    def has_frames(self) -> bool:
        return self.frames is not None and self.frame_count > 0

    def frame_path(self, index: int) -> Path:
        """Frame `index` (clamped to [0, frame_count - 1]): the index-th image file by name."""
        if not self.has_frames:
            raise ClipsepError(f"clip {self.audio}: has no frames")
        files = _frame_files(str(self.frames))
        if not files:
            raise ClipsepError(f"clip {self.audio}: frame folder {self.frames} holds no images")
        index = max(0, min(int(index), self.frame_count - 1, len(files) - 1))
        return Path(self.frames) / files[index]


@functools.lru_cache(maxsize=100_000)
def _frame_files(folder: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES)))
    except OSError:
        return ()


def read_index(path: str | os.PathLike) -> list[Clip]:
    """Read an index CSV; a bad file or row raises a one-line ClipsepError naming it."""
    path = Path(path)
    base = path.resolve().parent
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ClipsepError(f"index {path}: missing column(s) {', '.join(missing)}")
            clips = []
            for number, row in enumerate(reader, start=2):  # line 1 is the header
                clips.append(_parse_row(path, base, number, row))
    except FileNotFoundError:
        raise ClipsepError(f"index {path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ClipsepError(f"index {path}: cannot be read ({type(error).__name__}: {error})") from None
    return clips


def _parse_row(path: Path, base: Path, number: int, row: dict) -> Clip:
    where = f"index {path} line {number}"
    try:
        audio = (row.get("audio") or "").strip()
        if not audio:
            raise ValueError("empty audio path")
        frames = (row.get("frames") or "").strip()
        frame_count = int((row.get("frame_count") or "0").strip() or 0)
        if frame_count < 0:
            raise ValueError(f"negative frame_count {frame_count}")
        if frame_count > 0 and not frames:
            raise ValueError("frame_count > 0 but no frames folder")
        split = (row.get("split") or "").strip()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {'/'.join(SPLITS)}, got {split!r}")
        duration = float((row.get("duration_s") or "0").strip() or 0)
        if duration < 0:
            raise ValueError(f"negative duration_s {duration}")
        label = (row.get("label") or "").strip()
        source = (row.get("source") or "").strip() or audio
    except (ValueError, AttributeError) as error:
        raise ClipsepError(f"{where}: {error}") from None
    return Clip(
        audio=Path(os.path.normpath(base / audio)),
        frames=Path(os.path.normpath(base / frames)) if frames else None,
        frame_count=frame_count,
        label=label,
        split=split,
        source=source,
        duration_s=duration,
    )


def write_index(path: str | os.PathLike, clips: Iterable[Clip]) -> None:
    """Write clips as an index CSV atomically; paths are stored relative to its folder."""
    path = Path(path)
    base = path.resolve().parent
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for clip in clips:
            writer.writerow(
                [
                    _relative(clip.audio, base),
                    _relative(clip.frames, base) if clip.frames is not None else "",
                    clip.frame_count,
                    clip.label,
                    clip.split,
                    clip.source,
                    f"{clip.duration_s:.6g}",
                ]
            )


def _relative(target: Path, base: Path) -> str:
    target = Path(target)
    if not target.is_absolute():
        return target.as_posix()
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:  # another drive on Windows
        return target.as_posix()
