"""Texts and images -> query embeddings: prompt templates, the cache, and one encoder that is
loaded on the first cache miss and then kept.

`QueryEmbedder` is what the separator and `clipsep-rt embed` share: it knows which encoder
to use (a spec such as "open_clip:ViT-B-32/openai" or "minilm", or a prebuilt factory such
as an exported ONNX text tower), the prompt templates, and the cache. A separator keeps one
for its lifetime, so a new text costs one encoder call, not an encoder load; `load()` loads
the encoder ahead of time (a live run does, before audio starts).

`embed_texts` is the function underneath, for callers that bring their own encoder factory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.query.base import QueryEncoder
from clipsep_rt.query.cache import EmbeddingCache
from clipsep_rt.query.images import embed_images
from clipsep_rt.query.prompts import ENSEMBLE_TEMPLATES, PAPER_TEMPLATE, check_template, combine_prompt_embeddings, render_prompts
from clipsep_rt.query.encoders.registry import (
    build_encoder,
    check_encoder_fits,
    default_templates_for,
    encoder_id_for,
    has_image_tower,
)


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
    """Embeds queries with one encoder: loaded on the first cache miss (or by `load()`), then
    kept for every later query. Thread-safe: a live run embeds typed queries on its own thread."""

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
        self._encoder: QueryEncoder | None = None
        self._lock = threading.RLock()  # one load, and one embedding (cache lookups, encoder call) at a time
        self.cache = EmbeddingCache(options.cache_dir) if options.use_cache else None

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def load(self) -> QueryEncoder:
        """The encoder, built on the first call (seconds for a transformer) and kept."""
        with self._lock:
            if self._encoder is None:
                self._encoder = self._factory()
            return self._encoder

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

    def embed_text(self, queries: Sequence[str], dim: int | None = None, prompt_ensemble: bool = False) -> np.ndarray:
        """(Q,) texts -> (Q, D) float32 unit embeddings; `dim`: the separator's D, checked first.
        `prompt_ensemble`: average the ensemble's templates for these texts, whatever the options say."""
        if any(not query.strip() for query in queries):
            raise ClipsepError("empty query text: say what to separate, e.g. --query 'dog barking'")
        self.check_fits(dim)
        templates = ENSEMBLE_TEMPLATES if prompt_ensemble else self.templates()
        with self._lock:
            return embed_texts(list(queries), self.load, self.encoder_id, templates, self.cache, dim)

    def embed_images(self, paths: Sequence[str | Path], dim: int | None = None) -> np.ndarray:
        """(Q,) image files -> (Q, D) float32 CLIP image embeddings (CLIPSep trains with these)."""
        # said before the encoder loads (seconds) to find out; a prebuilt factory is an exported text tower
        if not self._builds_from_spec or not has_image_tower(self.spec):
            raise ClipsepError(f"query encoder {self.encoder_id} embeds texts only: image queries need a model trained "
                               "with a CLIP encoder, run from its checkpoint rather than an engine folder's text "
                               "encoder (or give query vectors)")
        self.check_fits(dim)
        with self._lock:
            return embed_images([Path(p) for p in paths], self.load, self.encoder_id, self.cache, dim)


def embed_texts(
    queries: Sequence[str],
    encoder_factory: Callable[[], QueryEncoder],
    encoder_id: str,
    templates: Sequence[str] = (PAPER_TEMPLATE,),
    cache: EmbeddingCache | None = None,
    dim: int | None = None,
) -> np.ndarray:
    """(N,) query texts -> (N, D) float32 embeddings of unit norm.

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
