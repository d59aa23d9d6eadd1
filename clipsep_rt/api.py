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
from .query.embedder import QueryEmbedder, QueryEncoderOptions
from .model.checkpoint import Checkpoint, load_checkpoint
from .runtime.engine import PreparedQueries, TorchEngine
from .runtime.offline import OfflineSeparator, WindowingOptions


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

    def embedder(self) -> QueryEmbedder:
        """The query encoder the checkpoint was trained with (or the chosen one); loaded lazily."""
        spec = self.encoder.spec or self.checkpoint.query_encoder
        if spec is None:
            raise ClipsepError(
                f"checkpoint {self.name} does not say which query encoder it was trained with: "
                "choose one (--query-encoder), or give query vectors (--query-embedding)"
            )
        return QueryEmbedder(spec, self.encoder, "cuda" if self.engine.device.type == "cuda" else "cpu")

    def embed_text(self, queries: Sequence[str]) -> np.ndarray:
        """(Q,) texts -> (Q, D) embeddings with the checkpoint's (or the chosen) encoder, cached."""
        embedder = self.embedder()
        return self.check_embeddings(embedder.embed_text(queries, self.checkpoint.query_dim), embedder.encoder_id)

    def embed_images(self, paths: Sequence[str | Path]) -> np.ndarray:
        """(Q,) image files -> (Q, D) CLIP image embeddings (as CLIPSep is trained with), cached."""
        embedder = self.embedder()
        return self.check_embeddings(embedder.embed_images(paths, self.checkpoint.query_dim), embedder.encoder_id)

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
