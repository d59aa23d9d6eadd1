"""The inputs of a file job: paths, folders, glob patterns and lists of them -> media files.

    found = collect_inputs(["song.wav", "clips/", "takes/**/*.flac", "paths.csv"])
    found.files    # the media files, in order, without duplicates
    found.errors   # one message per spec (or list entry) that names nothing
    found.roots    # the folders they were found in: their subfolders are kept in output names

A list is a .txt file (one path per line; blank lines and lines starting with `#` skipped)
or a .csv file (the column named `path`, `input` or `file`, the first of these in its header,
or else its first column). Each entry is expanded like a command-line input; a relative
entry is relative to the list file's folder. Large collections are easier to hand over as a
list than as a glob: a catalogue export, a dataset's index.
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.media import MEDIA_EXTENSIONS

LIST_EXTENSIONS = (".txt", ".csv")
PATH_COLUMNS = ("path", "input", "file")
GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class InputSet:
    files: list[Path]  # media files in order, without duplicates (as given, or joined to a list's folder)
    errors: list[str]  # one message per spec or list entry that names nothing
    roots: list[Path]  # folders inputs were found in (see `input_roots`)


def collect_inputs(specs: Iterable[str]) -> InputSet:
    """Specs (files, folders, globs, .txt/.csv lists) -> the files, the errors and the roots."""
    flat, empty_lists = flatten_specs(specs)
    files, errors = expand_inputs(flat)
    return InputSet(files, [f"{path}: the list names no inputs" for path in empty_lists] + errors, input_roots(flat))


def flatten_specs(specs: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the specs with each list file (.txt/.csv) replaced by its entries, the lists with no entry)."""
    flat: list[str] = []
    empty: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.suffix.lower() in LIST_EXTENSIONS and path.is_file():
            entries = read_path_list(path)
            flat += entries
            if not entries:
                empty.append(spec)
        else:
            flat.append(spec)
    return flat, empty


def read_path_list(path: Path) -> list[str]:
    """The entries of a .txt or .csv list, relative ones joined to the list's folder."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClipsepError(f"{path}: cannot read the list of inputs ({exc})") from None
    entries = _csv_entries(path, text) if path.suffix.lower() == ".csv" else _txt_entries(text)
    return [str(entry if Path(entry).is_absolute() else path.parent / entry) for entry in entries]


def expand_inputs(specs: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Expand file paths, directories and glob patterns into media files.

    A directory is searched recursively for files with a known audio/video extension, hidden
    files and folders skipped, sorted. An explicit file is taken whatever its extension. A
    spec that does not exist as a path but contains `*`, `?` or `[` is globbed (`**` recurses);
    its matches are filtered like a directory's and matched directories are searched. Returns
    the files in order without duplicates, and one error message for each spec that does not
    exist or matched nothing.
    """
    files: dict[Path, Path] = {}  # resolved -> as given, insertion-ordered
    errors: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = _media_in_dir(path)
            if not found:
                errors.append(f"{spec}: directory contains no audio or video files")
        elif path.is_file():
            found = [path]
        elif any(char in spec for char in GLOB_CHARACTERS):
            found = []
            for match in map(Path, sorted(glob.glob(spec, recursive=True))):
                if match.is_dir():
                    found.extend(_media_in_dir(match))
                elif match.is_file() and match.suffix.lower() in MEDIA_EXTENSIONS:
                    found.append(match)
            if not found:
                errors.append(f"{spec}: no audio or video files match this pattern")
        else:
            found = []
            errors.append(f"{spec}: no such file or directory")
        for file in found:
            files.setdefault(file.resolve(), file)
    return list(files.values()), errors


def input_roots(specs: Iterable[str]) -> list[Path]:
    """The folders inputs are found in: each directory spec, and each glob's fixed leading part
    (`takes/**/*.flac` -> takes). Inputs below them keep their subfolders in the output."""
    roots = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            roots.append(path)
        elif not path.exists() and any(char in spec for char in GLOB_CHARACTERS):
            fixed = []
            for part in path.parts:
                if any(char in part for char in GLOB_CHARACTERS):
                    break
                fixed.append(part)
            roots.append(Path(*fixed) if fixed else Path("."))
    return roots


def _media_in_dir(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.suffix.lower() in MEDIA_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
        and path.is_file()
    )


def _txt_entries(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _csv_entries(path: Path, text: str) -> list[str]:
    rows = [row for row in csv.reader(text.splitlines()) if row and any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    named = next((header.index(name) for name in PATH_COLUMNS if name in header), None)
    column, body = (named, rows[1:]) if named is not None else (0, rows)
    short = next((number for number, row in enumerate(body, 2 if named is not None else 1) if len(row) <= column), None)
    if short is not None:
        raise ClipsepError(f"{path}: line {short} has no column {column + 1} (the input path)")
    return [row[column].strip() for row in body if row[column].strip()]
