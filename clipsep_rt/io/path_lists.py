"""Inputs named in list files: a .txt (one path per line) or a .csv (a `path` column).

Large collections are easier to hand over as a list than as a glob: a catalogue export, a
dataset's index. Each entry is expanded like a command-line input (a file, a directory or a
glob); a relative entry is relative to the list file's folder. In a .txt list, blank lines
and lines starting with `#` are skipped. A .csv list takes the column named `path`, `input`
or `file` (the first of these in its header), or else its first column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.media import expand_inputs

LIST_EXTENSIONS = (".txt", ".csv")
PATH_COLUMNS = ("path", "input", "file")


def expand_input_specs(specs: Iterable[str]) -> tuple[list[Path], list[str]]:
    """`expand_inputs` of `flatten_specs(specs)`: (files in order, one error message per spec
    or entry that names nothing)."""
    return expand_inputs(flatten_specs(specs))


def flatten_specs(specs: Iterable[str]) -> list[str]:
    """The specs with each list file replaced by its entries."""
    flat: list[str] = []
    for spec in specs:
        path = Path(spec)
        flat += read_path_list(path) if path.suffix.lower() in LIST_EXTENSIONS and path.is_file() else [spec]
    return flat


def read_path_list(path: Path) -> list[str]:
    """The entries of a .txt or .csv list, relative ones joined to the list's folder."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClipsepError(f"{path}: cannot read the list of inputs ({exc})") from None
    entries = _csv_entries(path, text) if path.suffix.lower() == ".csv" else _txt_entries(text)
    return [str(entry if Path(entry).is_absolute() else path.parent / entry) for entry in entries]


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
