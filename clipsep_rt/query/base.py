"""The query-encoder contract and the checks at its boundary.

A query encoder turns text (and, for CLIP, images) into one embedding per input:
float32, shape (N, D), every row scaled to unit L2 norm.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from clipsep_rt.errors import ClipsepError


@runtime_checkable
class QueryEncoder(Protocol):
    """Text-to-embedding model that steers the separator."""

    encoder_id: str
    """Stable name of model and weights, e.g. 'open_clip:ViT-B-32/openai'; it keys the cache."""

    embedding_dim: int
    """D, the size of one embedding."""

    default_templates: ClassVar[tuple[str, ...]]
    """Prompt templates used when the caller names none (see clipsep_rt.query.prompts)."""

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """(N,) strings -> (N, D) float32, rows of unit norm."""
        ...


@runtime_checkable
class ImageQueryEncoder(QueryEncoder, Protocol):
    """A query encoder that also embeds images into the same space (CLIP)."""

    def encode_image(self, images) -> np.ndarray:
        """N images -> (N, D) float32, rows of unit norm."""
        ...


def l2_normalise(rows: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D) float32 with every row scaled to unit L2 norm."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.maximum(norms, np.finfo(np.float32).tiny)


def check_embedding_dim(
    embeddings: np.ndarray,
    expected_dim: int,
    encoder_id: str | None,
    checkpoint: str,
    source: str | None = None,
) -> None:
    """Raise ClipsepError unless `embeddings` is (N, expected_dim).

    expected_dim: the separator checkpoint's query size; encoder_id: the query encoder the
    checkpoint was trained with (None when it does not record one); checkpoint: its name
    or path; source: where the embeddings came from (an encoder id or a file), if known.
    """
    embeddings = np.asarray(embeddings)
    origin = f" from {source}" if source else ""
    if embeddings.ndim != 2:
        raise ClipsepError(f"query embeddings{origin} must have shape (N, D), got {tuple(embeddings.shape)}")
    dim = embeddings.shape[1]
    if dim != expected_dim:
        trained = f" (trained with {encoder_id})" if encoder_id else ""
        raise ClipsepError(
            f"query embedding{origin} has {dim} values but checkpoint {checkpoint} expects {expected_dim}{trained}"
        )
