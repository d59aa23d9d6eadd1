"""Query embeddings stored in files: --query-embedding file.npy / file.npz.

.npy holds one embedding (D,) or several (N, D); they are named after the file
('dog' or 'dog_0', 'dog_1', ...). .npz holds one (D,) array per query, keyed by the
query's name, as `clipsep-rt embed ... -o queries.npz` writes it (save_query_embeddings).

A .npz may also describe its vectors under the key METADATA_KEY (a JSON string, not a query):
`clipsep-rt embed --audio` writes which model a fitted vector is for (its query head's
fingerprint, `query_head`), its query encoder and how it was made; `read_metadata` reads it.

Vectors are used as stored: they are NOT re-normalised, so a float32 reference embedding
given here reaches the separator bit for bit (the golden reference test relies on it);
other real dtypes are only converted to float32.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.optional import describe_exception


METADATA_KEY = "__clipsep_rt__"  # .npz entry describing the vectors (JSON), skipped as a query


def read_metadata(path: str | Path) -> dict:
    """The JSON description a .npz file holds under METADATA_KEY ({} when it has none, or for .npy)."""
    path = Path(path)
    if path.suffix != ".npz" or not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as loaded:
            if METADATA_KEY not in loaded.files:
                return {}
            return json.loads(str(loaded[METADATA_KEY].reshape(-1)[0]))  # stored (1,): np.ascontiguousarray
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ClipsepError(f"query embedding file {path}: its description is unreadable ({describe_exception(exc)})") from None


def load_query_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Names (N,) and float32 embeddings (N, D) from a .npy or .npz file, validated."""
    path = Path(path)
    if not path.is_file():
        raise ClipsepError(f"query embedding file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return _from_npy(path, loaded)
        with loaded:
            arrays = {name: loaded[name] for name in loaded.files if name != METADATA_KEY}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ClipsepError(
            f"query embedding file {path} is not a readable .npy/.npz file ({describe_exception(exc)})"
        ) from None
    return _from_npz(path, arrays)


def save_query_embeddings(path: str | Path, names: Sequence[str], embeddings: np.ndarray,
                          metadata: dict | None = None) -> None:
    """Write (N, D) embeddings as an .npz with one (D,) float32 array per name (atomically),
    and `metadata` (JSON) under METADATA_KEY when given."""
    path = Path(path)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(names):
        raise ValueError(f"expected {len(names)} embeddings of shape (D,), got {embeddings.shape}")
    if len(set(names)) != len(names) or not all(names):
        raise ClipsepError(f"query names for {path} must be unique and non-empty, got {list(names)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as temp, open(temp, "wb") as handle:
        arrays = dict(zip(names, embeddings, strict=True))
        if metadata is not None:
            arrays[METADATA_KEY] = np.array(json.dumps(metadata))
        _write_npz(handle, arrays)


def _write_npz(f, arrays: dict[str, np.ndarray]) -> None:
    """np.savez without its keyword clash: any name, 'file' included, becomes a key."""
    with zipfile.ZipFile(f, "w") as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def _from_npy(path: Path, array: np.ndarray) -> tuple[list[str], np.ndarray]:
    if array.ndim == 1 or (array.ndim == 2 and array.shape[0] == 1):
        return [path.stem], _checked(path, [path.stem], array.reshape(1, -1))
    if array.ndim == 2:
        names = [f"{path.stem}_{i}" for i in range(array.shape[0])]
        return names, _checked(path, names, array)
    raise ClipsepError(f"query embedding file {path} must hold (D,) or (N, D) values, got shape {array.shape}")


def _from_npz(path: Path, arrays: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    if not arrays:
        raise ClipsepError(f"query embedding file {path} holds no arrays")
    for name, array in arrays.items():
        if array.ndim != 1:
            raise ClipsepError(f"query embedding file {path}: '{name}' must have shape (D,), got {array.shape}")
    dims = {array.shape[0] for array in arrays.values()}
    if len(dims) != 1:
        raise ClipsepError(f"query embedding file {path}: embeddings differ in size ({sorted(dims)})")
    names = list(arrays)
    rows = np.stack([arrays[name] for name in names])
    return names, _checked(path, names, rows)


def _checked(path: Path, names: Sequence[str], rows: np.ndarray) -> np.ndarray:
    """Validate (N, D) rows and return them as float32, values untouched."""
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ClipsepError(f"query embedding file {path} holds no values (shape {rows.shape})")
    if not (np.issubdtype(rows.dtype, np.floating) or np.issubdtype(rows.dtype, np.integer)):
        raise ClipsepError(f"query embedding file {path} must hold real numbers, got dtype {rows.dtype}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, rejected below
        values = rows.astype(np.float32)
    for name, row in zip(names, values, strict=True):
        which = f" ('{name}')" if len(names) > 1 else ""
        if not np.all(np.isfinite(row)):
            raise ClipsepError(f"query embedding file {path}{which} contains NaN or infinite values")
        if not np.any(row):
            raise ClipsepError(f"query embedding file {path}{which} is all zeros: it points in no direction")
    return values
