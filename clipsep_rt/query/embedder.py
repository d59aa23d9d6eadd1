"""Texts and images -> query embeddings, with the encoder loaded only on a cache miss.

`QueryEmbedder` is what the separator and `clipsep-rt embed` share: it knows which encoder
to use (a spec such as "open_clip:ViT-B-32/openai" or "minilm", or a prebuilt factory such
as an exported ONNX text tower), the prompt templates, and the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.query.base import QueryEncoder
from clipsep_rt.query.cache import EmbeddingCache
from clipsep_rt.query.embed import embed_queries
from clipsep_rt.query.images import embed_images
from clipsep_rt.query.prompts import ENSEMBLE_TEMPLATES, check_template
from clipsep_rt.query.encoders.registry import build_encoder, check_encoder_fits, default_templates_for, encoder_id_for


@dataclass(frozen=True)
class QueryEncoderOptions:
    spec: str | None = None  # e.g. "open_clip:ViT-B-32/openai", "minilm"; None: the model's own encoder
    clip_weights: Path | None = None  # a local open_clip weights file for `spec`
    prompt: str | None = None  # a template with {}; None: the encoder's default
    prompt_ensemble: bool = False  # average several templates instead
    cache_dir: Path | None = None  # None: $CLIPSEP_RT_CACHE or ~/.cache/clipsep-rt/embeddings
    use_cache: bool = True
    allow_download: bool = False  # let open_clip fetch missing weights from the Hub


class QueryEmbedder:
    """Embeds queries with one encoder; nothing is loaded until a query misses the cache."""

    def __init__(
        self,
        spec: str,
        options: QueryEncoderOptions = QueryEncoderOptions(),
        device: str = "cpu",
        factory: Callable[[], QueryEncoder] | None = None,
        encoder_id: str | None = None,
    ):
        """`factory` and `encoder_id` replace building the encoder from `spec` (e.g. an ONNX text tower)."""
        self.spec = spec
        self.options = options
        self.encoder_id = encoder_id or encoder_id_for(spec, options.clip_weights)
        self._builds_from_spec = factory is None
        self._factory = factory or (lambda: build_encoder(spec, device, options.clip_weights, allow_download=options.allow_download))
        self.cache = EmbeddingCache(options.cache_dir) if options.use_cache else None

    def templates(self) -> tuple[str, ...]:
        if self.options.prompt_ensemble:
            return ENSEMBLE_TEMPLATES
        if self.options.prompt:
            return (check_template(self.options.prompt),)
        return default_templates_for(self.spec)

    def check_fits(self, dim: int | None) -> None:
        """ClipsepError when the spec's encoder is known (registry.KNOWN_EMBEDDING_DIMS) to make
        embeddings of another size than `dim`; a prebuilt factory's encoder is checked after it runs."""
        if dim is not None and self._builds_from_spec:
            check_encoder_fits(self.spec, dim, self.options.clip_weights)

    def embed_text(self, queries: Sequence[str], dim: int | None = None) -> np.ndarray:
        """(Q,) texts -> (Q, D) float32 unit embeddings; `dim`: the separator's D, checked first."""
        if any(not query.strip() for query in queries):
            raise ClipsepError("empty query text: say what to separate, e.g. --query 'dog barking'")
        self.check_fits(dim)
        return embed_queries(list(queries), self._factory, self.encoder_id, self.templates(), self.cache, dim)

    def embed_images(self, paths: Sequence[str | Path], dim: int | None = None) -> np.ndarray:
        """(Q,) image files -> (Q, D) float32 CLIP image embeddings (CLIPSep trains with these)."""
        self.check_fits(dim)
        return embed_images([Path(p) for p in paths], self._factory, self.encoder_id, self.cache, dim)
