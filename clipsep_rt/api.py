"""The Python API: load a separator once, then separate arrays by text or by vectors.

    from clipsep_rt.api import Separator

    separator = Separator.from_checkpoint("model.safetensors", device="cpu")
    result = separator.separate(audio, sample_rate=44100, queries=["violin", "dog barking"])
    result.sources["violin"]            # (n,) float32 at result.sample_rate (16 kHz)

The command line is a thin layer over this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

from .errors import ClipsepError
from .model.checkpoint import Checkpoint, load_checkpoint
from .runtime.engine import PreparedQueries, TorchEngine
from .runtime.offline import OfflineSeparator, WindowingOptions


@dataclass(frozen=True)
class QueryEncoderOptions:
    spec: str | None = None  # e.g. "open_clip:ViT-B-32/openai", "minilm"; None: the checkpoint's encoder
    clip_weights: Path | None = None  # a local open_clip weights file for `spec`
    prompt: str | None = None  # a template with {}; None: the encoder's default
    prompt_ensemble: bool = False  # average several templates instead
    cache_dir: Path | None = None  # None: $CLIPSEP_RT_CACHE or ~/.cache/clipsep-rt/embeddings
    use_cache: bool = True
    allow_download: bool = False  # let open_clip fetch missing weights from the Hub


@dataclass
class Separation:
    sample_rate: int
    mixture: np.ndarray  # (n,) the input, mono, at sample_rate
    sources: dict[str, np.ndarray]  # query name -> (n,) separated audio
    noise: dict[str, np.ndarray] = field(default_factory=dict)  # query name -> (H, n) noise-head audio


class Separator:
    """A loaded CLIPSep / CLIPSep-NIT separator with its engine and query encoder settings."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: str = "auto",
        precision: str = "auto",
        windowing: WindowingOptions = WindowingOptions(),
        encoder: QueryEncoderOptions = QueryEncoderOptions(),
        name: str = "checkpoint",
    ):
        self.checkpoint = checkpoint
        self.name = name
        self.encoder = encoder
        self.engine = TorchEngine(checkpoint.build(), device, precision)
        try:
            self.offline = OfflineSeparator(self.engine, checkpoint.spectral_config, windowing)
        except ValueError as error:  # an overlap the window size does not allow
            raise ClipsepError(str(error)) from None

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options) -> "Separator":
        return cls(load_checkpoint(path), name=str(path), **options)

    @property
    def sample_rate(self) -> int:
        return self.checkpoint.spectral_config.sample_rate

    @property
    def noise_heads(self) -> int:
        return self.checkpoint.model_config.noise_heads

    def describe(self) -> str:
        config = self.checkpoint.model_config
        kind = "CLIPSep-NIT" if config.noise_heads else "CLIPSep"
        return (
            f"{kind} (depth {config.depth}, ngf {config.ngf}) from {self.name} "
            f"on {self.engine.device} ({self.engine.precision})"
        )

    # -- queries -------------------------------------------------------------------------

    def embed_text(self, queries: Sequence[str]) -> np.ndarray:
        """(Q,) texts -> (Q, D) embeddings with the checkpoint's (or the chosen) encoder, cached."""
        from .query import ENSEMBLE_TEMPLATES, default_templates_for, embed_queries
        from .query.prompts import check_template

        spec, encoder_id, factory, cache = self._query_encoder()
        if self.encoder.prompt_ensemble:
            templates = ENSEMBLE_TEMPLATES
        elif self.encoder.prompt:
            templates = (check_template(self.encoder.prompt),)
        else:
            templates = default_templates_for(spec)
        embeddings = embed_queries(
            list(queries), factory, encoder_id, templates=templates, cache=cache, dim=self.checkpoint.query_dim
        )
        return self.check_embeddings(embeddings, encoder_id)

    def embed_images(self, paths: Sequence[str | Path]) -> np.ndarray:
        """(Q,) image files -> (Q, D) CLIP image embeddings (as CLIPSep is trained with), cached."""
        from .query.images import embed_images

        _, encoder_id, factory, cache = self._query_encoder()
        embeddings = embed_images([Path(p) for p in paths], factory, encoder_id, cache, self.checkpoint.query_dim)
        return self.check_embeddings(embeddings, encoder_id)

    def _query_encoder(self):
        """(spec, encoder id, factory that loads the encoder, cache or None); nothing loaded yet."""
        from .query import EmbeddingCache, build_encoder, encoder_id_for

        options = self.encoder
        spec = options.spec or self.checkpoint.query_encoder
        if spec is None:
            raise ClipsepError(
                f"checkpoint {self.name} does not say which query encoder it was trained with: "
                "choose one (--query-encoder), or give query vectors (--query-embedding)"
            )
        device = "cuda" if self.engine.device.type == "cuda" else "cpu"

        def factory():
            return build_encoder(spec, device, options.clip_weights, allow_download=options.allow_download)

        cache = EmbeddingCache(options.cache_dir) if options.use_cache else None
        return spec, encoder_id_for(spec, options.clip_weights), factory, cache

    def check_embeddings(self, embeddings: np.ndarray, source: str) -> np.ndarray:
        """(Q, D) float32 if D is the checkpoint's query size, else a ClipsepError naming both."""
        from .query import check_embedding_dim

        check_embedding_dim(embeddings, self.checkpoint.query_dim, self.checkpoint.query_encoder, self.name, source)
        return np.asarray(embeddings, dtype=np.float32)

    def prepare_queries(self, embeddings: np.ndarray, noise_heads: bool = False) -> PreparedQueries:
        """(Q, D) -> the engine's form of the queries: per query its mask, then its noise heads."""
        if noise_heads and not self.noise_heads:
            raise ClipsepError(f"checkpoint {self.name} is a plain CLIPSep model: it has no noise heads")
        return self.engine.prepare_queries(embeddings, noise_heads)

    # -- audio ---------------------------------------------------------------------------

    def separate(
        self,
        audio: np.ndarray,
        sample_rate: int,
        queries: Sequence[str] = (),
        embeddings: Mapping[str, np.ndarray] | None = None,
        noise_heads: bool = False,
    ) -> Separation:
        """Separate (n,) or (n, channels) audio at any rate by text queries and/or named vectors.

        The result is mono at the model's rate (16 kHz) and has the input's duration.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 2:
            audio = audio.mean(axis=1)
        if audio.ndim != 1 or not len(audio):
            raise ClipsepError(f"audio must be a non-empty (n,) or (n, channels) array, got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise ClipsepError("audio contains NaN or infinite sample values")
        if sample_rate != self.sample_rate:
            audio = soxr.resample(audio, sample_rate, self.sample_rate, quality="HQ").astype(np.float32)
        names = list(queries)
        blocks = [self.embed_text(names)] if names else []
        for name, vector in (embeddings or {}).items():
            names.append(name)
            blocks.append(self.check_embeddings(np.reshape(vector, (1, -1)), name))
        if not names:
            raise ClipsepError("no query given: pass text queries or named embeddings")
        rows = 1 + (self.noise_heads if noise_heads else 0)
        outputs = self.offline.separate(audio, self.prepare_queries(np.concatenate(blocks), noise_heads))
        return Separation(
            sample_rate=self.sample_rate,
            mixture=audio,
            sources={name: outputs[i * rows] for i, name in enumerate(names)},
            noise={name: outputs[i * rows + 1 : (i + 1) * rows] for i, name in enumerate(names)} if noise_heads else {},
        )
