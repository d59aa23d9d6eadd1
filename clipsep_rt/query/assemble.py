"""One list of named queries from texts, images, query-vector files and named vectors.

The separator (`runtime.pipeline.Pipeline.embed`) and `clipsep-rt embed` both assemble
queries here, with one `QueryEmbedder` for the texts and images, and check every block
against the model's query size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.query.base import check_embedding_dim
from clipsep_rt.query.embedder import QueryEmbedder
from clipsep_rt.query.vectors import load_query_embeddings


@dataclass(frozen=True)
class QueryTarget:
    """The model queries are for: its query size D (None: any) and what names it in errors."""

    dim: int | None = None
    model: str = "the separator"  # its checkpoint, engine folder or description
    trained_with: str | None = None  # the encoder id it was trained with, if it records one

    def check(self, embeddings: np.ndarray, source: str) -> np.ndarray:
        """(N, D) float32 if D fits, else a ClipsepError naming both sizes and `source`."""
        if self.dim is not None:
            check_embedding_dim(embeddings, self.dim, self.trained_with, self.model, source)
        return np.asarray(embeddings, dtype=np.float32)


def assemble_queries(
    embedder: QueryEmbedder | None,
    target: QueryTarget,
    texts: Sequence[str] = (),
    images: Sequence[str | Path] = (),
    vector_files: Sequence[str | Path] = (),
    vectors: Mapping[str, np.ndarray] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Names (Q,) and (Q, D) float32 embeddings, in this order: the texts (named by themselves), the
    images (named after the file), the vectors of each .npy/.npz file (named as
    `load_query_embeddings` names them), then the named (D,) vectors.

    `embedder` embeds the texts and images (it may be None when there are none); every block is
    checked against `target`.
    """
    if (texts or images) and embedder is None:
        raise ValueError("text and image queries need a query embedder")
    names: list[str] = list(texts)
    blocks = [target.check(embedder.embed_text(texts, target.dim), embedder.encoder_id)] if texts else []
    if images:
        names += [Path(path).stem for path in images]
        blocks.append(target.check(embedder.embed_images(images, target.dim), embedder.encoder_id))
    for path in vector_files:
        file_names, embeddings = load_query_embeddings(path)
        names += file_names
        blocks.append(target.check(embeddings, str(path)))
    for name, vector in (vectors or {}).items():
        names.append(name)
        blocks.append(target.check(np.reshape(vector, (1, -1)), name))
    if not blocks:
        raise ClipsepError("no query given: pass texts, images or query vectors")
    return names, np.concatenate(blocks)
