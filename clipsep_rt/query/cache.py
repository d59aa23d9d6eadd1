"""On-disk cache of prompt embeddings, so a known query never loads its encoder again.

One entry per (encoder_id, prompt text): a small .npy holding one (D,) float32 embedding,
named sha256(encoder_id + "\\n" + prompt).npy. Entries are written atomically; an
unreadable, malformed or wrongly sized entry counts as missing and is rewritten.
Caching never stops a run: a cache folder that cannot be written is skipped, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.user_cache import user_cache_dir

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """$CLIPSEP_RT_CACHE if set (the embedding cache folder itself), else the user cache's
    embeddings/ folder (io.user_cache: e.g. ~/.cache/clipsep-rt/embeddings)."""
    if os.environ.get("CLIPSEP_RT_CACHE"):
        return Path(os.environ["CLIPSEP_RT_CACHE"]).expanduser()
    return user_cache_dir("embeddings")


def cache_key(encoder_id: str, prompt: str) -> str:
    """Hex SHA-256 of the encoder id and the exact prompt text."""
    return hashlib.sha256(f"{encoder_id}\n{prompt}".encode()).hexdigest()


class EmbeddingCache:
    """Prompt embeddings of unit norm, on disk under `root` (default_cache_dir() if None)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, encoder_id: str, prompt: str) -> Path:
        return self.root / f"{cache_key(encoder_id, prompt)}.npy"

    def get(self, encoder_id: str, prompt: str, dim: int | None = None) -> np.ndarray | None:
        """The cached (D,) float32 embedding, or None if absent, damaged, or not of size `dim`."""
        path = self.path(encoder_id, prompt)
        try:
            embedding = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):
            log.warning("ignoring unreadable embedding cache entry %s", path)
            return None
        if not _is_unit_vector(embedding) or (dim is not None and embedding.shape[0] != dim):
            log.warning("ignoring malformed embedding cache entry %s", path)
            return None
        return embedding

    def put(self, encoder_id: str, prompt: str, embedding: np.ndarray) -> None:
        """Store a (D,) embedding of unit norm."""
        embedding = np.asarray(embedding, dtype=np.float32)
        if not _is_unit_vector(embedding):
            raise ValueError(f"cache entries are (D,) float32 vectors of unit norm, got shape {embedding.shape}")
        path = self.path(encoder_id, prompt)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(path, overwrite=True) as temp:
                np.save(temp, embedding, allow_pickle=False)
        except (OSError, ClipsepError) as exc:
            log.warning("cannot write embedding cache entry %s: %s", path, exc)


def _is_unit_vector(embedding: np.ndarray) -> bool:
    return (
        embedding.ndim == 1
        and embedding.dtype == np.float32
        and embedding.shape[0] > 0
        and bool(np.all(np.isfinite(embedding)))
        and abs(float(np.linalg.norm(embedding)) - 1.0) < 1e-3
    )
