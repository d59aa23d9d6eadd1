"""The separator graph's outputs as the Engine protocol lays them out, for the engines that run
the exported graph (ONNX Runtime, OpenVINO): prepared queries, row order and the sigmoid.

The graph maps log_mag (B, 1, F, T) and embeddings (Q, D) to query_logits (B, Q, F, T) and
noise_logits (B, Q, H, F, T) (runtime/engines/contract.py); engines return, per query, its
mask and then (if asked for) its H noise-head masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GraphQueries:
    """Prepared queries: the embeddings fed to the graph, and whether noise rows are kept."""

    embeddings: np.ndarray  # (Q, D) in the graph's input dtype
    noise_heads: bool
    noise_count: int  # H of the graph

    @property
    def rows(self) -> int:
        return self.embeddings.shape[0] * (1 + (self.noise_count if self.noise_heads else 0))


def rows_per_query(query_logits: np.ndarray, noise_logits: np.ndarray | None) -> np.ndarray:
    """(B, Q, F, T) [+ (B, Q, H, F, T)] -> a new float32 (B, Q * (1 + H) or Q, F, T) array, each
    query's mask row followed by its noise rows."""
    query = np.array(query_logits, dtype=np.float32)  # a copy: engines may reuse their output buffers
    if noise_logits is None:
        return query
    rows = np.concatenate([query[:, :, None], np.asarray(noise_logits, dtype=np.float32)], axis=2)
    return rows.reshape(rows.shape[0], -1, *rows.shape[3:])


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, in place, without overflow warnings for large |x|:
    1 / (1 + exp(-x)) computed as 0.5 * (1 + tanh(x / 2))."""
    logits *= 0.5
    np.tanh(logits, out=logits)
    logits += 1.0
    logits *= 0.5
    return logits
