"""One list of named queries from texts, images, query-vector files and named vectors.

The separator (`Separator.embed_queries`) and `clipsep-rt embed` both assemble queries
here; they differ only in how texts and images are embedded and how vectors are checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.query.vectors import load_query_embeddings


def assemble_queries(
    texts: Sequence[str] = (),
    images: Sequence[str | Path] = (),
    vector_files: Sequence[str | Path] = (),
    vectors: Mapping[str, np.ndarray] | None = None,
    *,
    embed_text: Callable[[Sequence[str]], np.ndarray],
    embed_images: Callable[[Sequence[str | Path]], np.ndarray],
    check: Callable[[np.ndarray, str], np.ndarray] = lambda embeddings, source: embeddings,
) -> tuple[list[str], np.ndarray]:
    """Names (Q,) and (Q, D) embeddings, in this order: the texts (named by themselves), the
    images (named after the file), the vectors of each .npy/.npz file (named as
    `load_query_embeddings` names them), then the named (D,) vectors.

    `embed_text` / `embed_images` map (N,) texts / image files to (N, D); `check(block, source)`
    validates stored vectors against the model (source: the file or the vector's name).
    """
    names: list[str] = list(texts)
    blocks = [embed_text(texts)] if texts else []
    if images:
        names += [Path(path).stem for path in images]
        blocks.append(embed_images(images))
    for path in vector_files:
        file_names, embeddings = load_query_embeddings(path)
        names += file_names
        blocks.append(check(embeddings, str(path)))
    for name, vector in (vectors or {}).items():
        names.append(name)
        blocks.append(check(np.reshape(vector, (1, -1)), name))
    if not blocks:
        raise ClipsepError("no query given: pass texts, images or query vectors")
    return names, np.concatenate(blocks)
