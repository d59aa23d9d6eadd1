"""Named queries in the engine's form: what a separation or a stream is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.runtime.engines.protocol import PreparedQueries
from clipsep_rt.runtime.exclusion import output_labels


@dataclass
class Queries:
    """Named queries ready for the engine. Output rows are laid out per query: its mask,
    then its `noise_heads` noise-head masks (0 unless asked for).

    With exclusions (`runtime.exclusion`), each output leaves out the union of the excluded
    sounds; with exclusions alone there is one output, named "all but ..." (`everything_but`)."""

    names: list[str]  # (outputs,): texts as typed, image file stems, vector names; or the one "all but ..."
    embeddings: np.ndarray  # (Q, D) float32 unit vectors of the positive queries, in the order of `names` (Q = 0: "all but")
    prepared: PreparedQueries  # the engine's form: Q * (1 + noise_heads) output rows (1 for "all but")
    noise_heads: int = 0  # noise-head rows per query
    excluded: list[str] = field(default_factory=list)  # (E,) names of the exclusions, left out of every output
    exclusions: np.ndarray | None = None  # (E, D) float32 exclusion vectors, in the order of `excluded`

    @property
    def query_names(self) -> list[str]:
        """(Q,): the positive queries' names (none when the one output is "all but ...")."""
        return self.names[: len(self.embeddings)]

    @property
    def labels(self) -> list[str]:
        """Each output as a person reads it (file names, status lines): `exclusion.output_labels`."""
        return output_labels(self.names, len(self.embeddings), self.excluded)

    @property
    def rows(self) -> int:
        return self.prepared.rows

    def for_streaming(self) -> PreparedQueries:
        """The prepared queries, if they stream: streaming separates the queries, not noise heads."""
        if self.noise_heads:
            raise ClipsepError("streaming separates the queries only, not their noise heads")
        return self.prepared
