"""Named queries in the engine's form: what a separation or a stream is asked for."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.runtime.engines.protocol import PreparedQueries


@dataclass
class Queries:
    """Named queries ready for the engine. Output rows are laid out per query: its mask,
    then its `noise_heads` noise-head masks (0 unless asked for)."""

    names: list[str]  # (Q,): texts as typed, image file stems, vector names
    embeddings: np.ndarray  # (Q, D) float32 unit vectors, in the order of `names`
    prepared: PreparedQueries  # the engine's form: Q * (1 + noise_heads) output rows
    noise_heads: int = 0  # noise-head rows per query

    @property
    def rows(self) -> int:
        return self.prepared.rows

    def for_streaming(self) -> PreparedQueries:
        """The prepared queries, if they stream: streaming separates the queries, not noise heads."""
        if self.noise_heads:
            raise ClipsepError("streaming separates the queries only, not their noise heads")
        return self.prepared
