"""Split one engine call into calls that fit an optimization profile's batch and query limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

Array = TypeVar("Array")  # numpy array or torch tensor: anything with .shape that slices on axis 0


def run_in_chunks(
    run: Callable[[Array, Any], Array],
    log_mag: Array,
    embeddings: Any,
    batch_limit: int | None,
    query_limit: int | None,
    concatenate: Callable[[list[Array], int], Array] = np.concatenate,
) -> Array:
    """`run` over blocks of at most `batch_limit` windows x `query_limit` queries (None: no limit).

    log_mag: (B, 1, F, T); embeddings: (Q, D); run(log_mag block, embeddings block) returns
    (b, q * rows per query, F, T) with each query's rows together. The blocks are joined
    back into (B, Q * rows per query, F, T), in query order, by `concatenate(parts, axis)`
    (default: numpy's; torch.cat for tensors).
    """
    batch, queries = log_mag.shape[0], embeddings.shape[0]
    batch_step, query_step = batch_limit or batch, query_limit or queries
    parts = []
    for b in range(0, batch, batch_step):
        row = [run(log_mag[b : b + batch_step], embeddings[q : q + query_step]) for q in range(0, queries, query_step)]
        parts.append(concatenate(row, 1) if len(row) > 1 else row[0])
    return concatenate(parts, 0) if len(parts) > 1 else parts[0]
