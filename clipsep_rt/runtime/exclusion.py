"""Exclusion: outputs that leave some sounds out, in the same network pass as the queries.

The query enters the network only in its last inner product, so the positive queries and the
exclusions run together: one engine call with (Q + E, D) query vectors per batch of windows
(one U-Net pass). Right after the network the rows are combined, per window:

    out_q = P_q * (1 - max_e X_e)    (B, Q, F, T): each query's mask, less the union of the exclusions'
    out   = 1 - max_e X_e            (B, 1, F, T): with no positive query, "everything but" them

`ExclusionEngine` wraps an engine so that the frame loops (offline, streaming, live) see an
ordinary engine whose prepared queries give Q rows (or the one "all but" row). Its calls from
several threads take turns (a live run fits a query on the stdin thread while its worker
separates: TensorRT contexts and CUDA graphs are not for two threads at once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.runtime.engines.protocol import Engine, PreparedQueries

ALL_BUT = "all but"  # the one output of exclusions alone: "all but speech, dog barking" (file names: all_but_...)


@dataclass(frozen=True)
class Exclusions:
    """What every output leaves out, given as queries are: texts, images (named after the
    file), .npy/.npz query-vector files and named (D,) vectors."""

    texts: Sequence[str] = ()
    images: Sequence[str | Path] = ()
    vector_files: Sequence[str | Path] = ()
    vectors: Mapping[str, np.ndarray] | None = None

    def __bool__(self) -> bool:
        return bool(self.texts or self.images or self.vector_files or self.vectors)

    @classmethod
    def of(cls, exclude: str | Sequence[str] | Exclusions | None) -> Exclusions:
        """Exclusions from a text, a list of texts, Exclusions or None (none)."""
        if isinstance(exclude, Exclusions):
            return exclude
        if isinstance(exclude, str):
            return cls(texts=(exclude,))
        return cls(texts=tuple(exclude or ()))


def everything_but(excluded: Sequence[str]) -> str:
    """The name of the output of exclusions alone: 'all but speech, dog barking'."""
    return f"{ALL_BUT} {', '.join(excluded)}"


def output_labels(names: Sequence[str], positives: int, excluded: Sequence[str]) -> list[str]:
    """Each output as a person reads it (file names, status lines): its name, with 'without X, Y'
    when exclusions apply to a positive query ("all but ..." says so already)."""
    if not excluded or not positives:
        return list(names)
    return [f"{name} without {', '.join(excluded)}" for name in names]


def combine(probabilities: np.ndarray, positives: int) -> np.ndarray:
    """(B, Q + E, F, T) sigmoid masks, the Q positive rows first, E >= 1 -> (B, Q, F, T) each
    positive mask times (1 - the union (max) of the exclusion masks), or (B, 1, F, T) that
    complement alone when Q = 0. Values stay in [0, 1]."""
    kept = 1.0 - probabilities[:, positives:].max(axis=1, keepdims=True)  # (B, 1, F, T)
    if not positives:
        return kept
    return probabilities[:, :positives] * kept


@dataclass(frozen=True)
class ExcludingQueries:
    """Queries with exclusions, in the engine's form: `inner` holds the Q + E rows (positives first)."""

    inner: PreparedQueries
    positives: int  # Q
    exclusions: int  # E >= 1

    @property
    def rows(self) -> int:
        """Output rows: one per positive query, or the one "all but" row."""
        return max(self.positives, 1)


class ExclusionEngine:
    """An engine (the `Engine` protocol) that also runs `ExcludingQueries`: their rows in one
    call of the wrapped engine, combined (`combine`); other prepared queries pass through."""

    def __init__(self, engine: Engine):
        self.inner = engine
        self._lock = threading.Lock()  # one network call at a time

    @property
    def device(self) -> str:
        return self.inner.device

    @property
    def precision(self) -> str:
        return self.inner.precision

    def prepare_queries(self, embeddings: np.ndarray, noise_heads: bool) -> PreparedQueries:
        """(Q, D) float32 query embeddings -> the wrapped engine's form."""
        return self.inner.prepare_queries(embeddings, noise_heads)

    def prepare_excluding(self, embeddings: np.ndarray, exclusions: np.ndarray) -> ExcludingQueries:
        """(Q, D) positive and (E >= 1, D) exclusion embeddings (float32; Q may be 0) -> queries
        giving max(Q, 1) rows."""
        rows = np.concatenate([embeddings, exclusions]).astype(np.float32, copy=False)  # (Q + E, D)
        return ExcludingQueries(self.inner.prepare_queries(rows, False), len(embeddings), len(exclusions))

    def probabilities(self, log_mag: np.ndarray, queries: PreparedQueries) -> np.ndarray:
        """(B, 1, F, T) float32 warped log magnitude -> (B, queries.rows, F, T) float32 masks."""
        excluding = isinstance(queries, ExcludingQueries)
        with self._lock:
            probabilities = self.inner.probabilities(log_mag, queries.inner if excluding else queries)
        return combine(probabilities, queries.positives) if excluding else probabilities
