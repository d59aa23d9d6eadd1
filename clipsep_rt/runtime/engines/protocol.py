"""The network behind one small interface: log-magnitude windows + queries -> masks.

An engine is stateless apart from its weights: batch and streaming separation own the
buffers, prepare their queries once (`prepare_queries`) and call `probabilities` once per
batch of windows. Arrays cross this interface as numpy on the CPU, so the frame loops
around it need no torch; an engine on a GPU moves them there and back itself. Output rows are laid out per query: its mask, then (if asked for) its
noise-head masks. Every backend (torch, ONNX Runtime, OpenVINO, TensorRT) implements `Engine`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

class PreparedQueries(Protocol):
    rows: int  # output rows: Q * (1 + noise heads) or Q


class Engine(Protocol):
    device: str  # where the network runs: "cpu" or "cuda:N"
    precision: str

    def prepare_queries(self, embeddings: np.ndarray, noise_heads: bool) -> PreparedQueries:
        """(Q, D) float32 query embeddings -> whatever this engine needs per batch."""
        ...

    def probabilities(self, log_mag: np.ndarray, queries: PreparedQueries) -> np.ndarray:
        """(B, 1, F, T) float32 warped log magnitude -> (B, rows, F, T) float32 sigmoid masks,
        both numpy arrays in host memory (the result is complete when it returns)."""
        ...


