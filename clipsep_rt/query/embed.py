"""Queries -> embeddings through prompt templates, the cache, and an encoder built only on a miss."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from clipsep_rt.query.base import QueryEncoder
from clipsep_rt.query.cache import EmbeddingCache
from clipsep_rt.query.prompts import PAPER_TEMPLATE, combine_prompt_embeddings, render_prompts


def embed_queries(
    queries: Sequence[str],
    encoder_factory: Callable[[], QueryEncoder],
    encoder_id: str,
    templates: Sequence[str] = (PAPER_TEMPLATE,),
    cache: EmbeddingCache | None = None,
    dim: int | None = None,
) -> np.ndarray:
    """(N,) queries -> (N, D) float32 embeddings of unit norm.

    Each query is rendered with every template; a query's embedding is the normalised mean
    of its prompts' embeddings (the prompt itself with one template). `encoder_factory` is
    called only if some prompt is not in `cache`, so known queries never load the encoder;
    `encoder_id` (see registry.encoder_id_for) must be the id of the encoder it builds.
    `dim`, if given, is the size expected (e.g. the separator's query size): cached entries
    of another size are ignored. Size mismatches are left to base.check_embedding_dim.
    """
    if not queries:
        return np.zeros((0, dim or 0), dtype=np.float32)
    prompts = [render_prompts(query, templates) for query in queries]
    unique = list(dict.fromkeys(prompt for group in prompts for prompt in group))
    found = _cached(cache, encoder_id, unique, dim)
    missing = [prompt for prompt in unique if prompt not in found]
    if missing:
        encoder = encoder_factory()
        if encoder.encoder_id != encoder_id:
            raise ValueError(f"encoder_factory built {encoder.encoder_id}, expected {encoder_id}")
        # The loaded encoder is the authority on the size: re-encode cached entries that disagree.
        missing += [prompt for prompt, embedding in found.items() if embedding.shape[0] != encoder.embedding_dim]
        for prompt, embedding in zip(missing, encoder.encode_text(missing), strict=True):
            found[prompt] = embedding
            if cache is not None:
                cache.put(encoder_id, prompt, embedding)
    return np.stack([combine_prompt_embeddings(np.stack([found[p] for p in group])) for group in prompts])


def _cached(
    cache: EmbeddingCache | None, encoder_id: str, prompts: list[str], dim: int | None
) -> dict[str, np.ndarray]:
    """The prompts' cached embeddings; none at all if their sizes disagree (some must be wrong)."""
    if cache is None:
        return {}
    found = {prompt: cache.get(encoder_id, prompt, dim) for prompt in prompts}
    found = {prompt: embedding for prompt, embedding in found.items() if embedding is not None}
    if len({embedding.shape[0] for embedding in found.values()}) > 1:
        return {}
    return found
