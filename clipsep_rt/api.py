"""The Python API: load a separator once, then separate arrays by text or by vectors.

    from clipsep_rt.api import Separator

    separator = Separator.from_checkpoint("model.safetensors", device="cpu")
    result = separator.separate(audio, sample_rate=44100, queries=["violin", "dog barking"])
    result.sources["violin"]            # float32 at result.sample_rate (16 kHz), the input's layout:
                                        # (n,) for (n,) audio, (n, C) for (n, C) audio

The command line is a thin layer over this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.query.assemble import assemble_queries
from clipsep_rt.query.embedder import QueryEmbedder, QueryEncoderOptions
from clipsep_rt.query.encoders.exported import ExportedTextEncoder
from clipsep_rt.runtime.engines.choice import BackendChoice
from clipsep_rt.runtime.engines.protocol import Engine, PreparedQueries
from clipsep_rt.runtime.offline import OfflineSeparator, WindowingOptions


@dataclass
class Separation:
    """Arrays at `sample_rate`, laid out as the input was: (n,) mono, or (n, C) with C channels
    (C = 1 included), unless `Separator.separate(..., mono=True)` downmixed it to (n,).

    `mixture - sources[name]` is the residual of that query, channel by channel.
    """

    sample_rate: int
    mixture: np.ndarray  # (n,) or (n, C): the input at sample_rate
    sources: dict[str, np.ndarray]  # query name -> (n,) or (n, C) separated audio
    noise: dict[str, np.ndarray] = field(default_factory=dict)  # query name -> (H, n) or (H, n, C) noise heads

    @property
    def channels(self) -> int | None:
        """C for (n, C) arrays, None for mono (n,) ones."""
        return None if self.mixture.ndim == 1 else self.mixture.shape[1]


class Separator:
    """A separator (any backend) with its spectral config, query encoder and query settings."""

    def __init__(
        self,
        engine: Engine,
        model_config: ModelConfig,
        spectral: SpectralConfig,
        query_encoder: str | None,
        windowing: WindowingOptions = WindowingOptions(),
        encoder: QueryEncoderOptions = QueryEncoderOptions(),
        name: str = "separator",
        backend: BackendChoice | None = None,
        text_encoder_onnx: ExportedTextEncoder | None = None,
    ):
        """`text_encoder_onnx`: an engine folder's exported text encoder (CLIP text tower or
        MiniLM, on ONNX Runtime), used for text queries unless another encoder is chosen."""
        self.engine = engine
        self.model_config = model_config
        self.spectral = spectral
        self.query_encoder = query_encoder
        self.encoder = encoder
        self.name = name
        self.backend = backend
        self.text_encoder_onnx = text_encoder_onnx
        try:
            self.offline = OfflineSeparator(engine, spectral, windowing)
        except ValueError as error:  # an overlap the window size does not allow
            raise ClipsepError(str(error)) from None

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", precision: str = "auto", **options) -> "Separator":
        """The torch engine on a checkpoint (either format)."""
        return cls.open(checkpoint=path, backend="torch", device=device, precision=precision, **options)

    @classmethod
    def open(
        cls,
        checkpoint: str | Path | None = None,
        engine_dir: str | Path | None = None,
        backend: str = "auto",
        device: str = "auto",
        precision: str = "auto",
        compile: bool = False,
        threads: int | None = None,
        **options,
    ) -> "Separator":
        """A checkpoint and/or an exported engine folder, on the backend `choose_backend` picks;
        with neither, the bundled default model (`clipsep_rt.model.weights`)."""
        from clipsep_rt.runtime.engines.loader import load_separator

        loaded = load_separator(checkpoint, engine_dir, backend, device, precision, compile=compile, threads=threads)
        source = loaded.source
        return cls(loaded.engine, source.model_config, source.spectral, source.query_encoder, name=source.name,
                   backend=loaded.backend, text_encoder_onnx=source.text_encoder_onnx, **options)

    @property
    def sample_rate(self) -> int:
        return self.spectral.sample_rate

    @property
    def noise_heads(self) -> int:
        return self.model_config.noise_heads

    @property
    def query_dim(self) -> int:
        return self.model_config.query_dim

    def describe(self) -> str:
        config = self.model_config
        kind = "CLIPSep-NIT" if config.noise_heads else "CLIPSep"
        runs_on = self.backend.describe() if self.backend else f"{self.engine.device} ({self.engine.precision})"
        return f"{kind} (depth {config.depth}, ngf {config.ngf}) from {self.name}, {runs_on}"

    # -- queries -------------------------------------------------------------------------

    def embedder(self) -> QueryEmbedder:
        """The query encoder the model was trained with (or the chosen one); loaded lazily.

        An exported text tower (engine folder) serves text queries without the CLIP weights.
        """
        spec = self.encoder.spec or self.query_encoder
        if spec is None:
            raise ClipsepError(
                f"{self.name} does not say which query encoder it was trained with: "
                "choose one (--query-encoder), or give query vectors (--query-embedding)"
            )
        # A torch encoder goes to CUDA only beside a torch-CUDA engine (torch, tensorrt): onnxruntime-gpu
        # may run with a CPU-only PyTorch, and asking torch here would import it for cached queries too.
        on_torch_cuda = self.engine.device.startswith("cuda") and (self.backend is None or self.backend.name in ("torch", "tensorrt"))
        device = "cuda" if on_torch_cuda else "cpu"
        if self.text_encoder_onnx and not self.encoder.spec:
            exported = self.text_encoder_onnx
            return QueryEmbedder(spec, self.encoder, device, encoder_id=exported.encoder_id, factory=exported.build)
        return QueryEmbedder(spec, self.encoder, device)

    def embed_text(self, queries: Sequence[str]) -> np.ndarray:
        """(Q,) texts -> (Q, D) embeddings with the checkpoint's (or the chosen) encoder, cached."""
        embedder = self.embedder()
        return self.check_embeddings(embedder.embed_text(queries, self.query_dim), embedder.encoder_id)

    def embed_images(self, paths: Sequence[str | Path]) -> np.ndarray:
        """(Q,) image files -> (Q, D) CLIP image embeddings (as CLIPSep is trained with), cached."""
        embedder = self.embedder()
        return self.check_embeddings(embedder.embed_images(paths, self.query_dim), embedder.encoder_id)

    def check_embeddings(self, embeddings: np.ndarray, source: str) -> np.ndarray:
        """(Q, D) float32 if D is the checkpoint's query size, else a ClipsepError naming both."""
        from clipsep_rt.query import check_embedding_dim

        check_embedding_dim(embeddings, self.query_dim, self.query_encoder, self.name, source)
        return np.asarray(embeddings, dtype=np.float32)

    def embed_queries(
        self,
        texts: Sequence[str] = (),
        images: Sequence[str | Path] = (),
        vector_files: Sequence[str | Path] = (),
        vectors: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """Names (Q,) and (Q, D) float32 embeddings of text queries, image queries (named after
        the file), .npy/.npz query-vector files and named (D,) vectors, in that order."""
        return assemble_queries(texts, images, vector_files, vectors, embed_text=self.embed_text,
                                embed_images=self.embed_images, check=self.check_embeddings)

    def prepare_queries(self, embeddings: np.ndarray, noise_heads: bool = False) -> PreparedQueries:
        """(Q, D) -> the engine's form of the queries: per query its mask, then its noise heads."""
        if noise_heads and not self.noise_heads:
            raise ClipsepError(f"{self.name} is a plain CLIPSep model: it has no noise heads")
        return self.engine.prepare_queries(embeddings, noise_heads)

    # -- audio ---------------------------------------------------------------------------

    def separate(
        self,
        audio: np.ndarray,
        sample_rate: int,
        queries: Sequence[str] = (),
        embeddings: Mapping[str, np.ndarray] | None = None,
        noise_heads: bool = False,
        mono: bool = False,
    ) -> Separation:
        """Separate (n,) or (n, channels) audio at any rate by text queries and/or named vectors.

        The result is at the model's rate (16 kHz), has the input's duration (any length from
        one sample works) and keeps its layout: (n, C) audio gives (n, C) sources, each channel
        masked by the masks of the mono mixture, so mixture - source is each channel's residual.
        `mono=True` downmixes (n, C) audio to (n,) first (the mean of the channels).
        """
        audio = np.asarray(audio, dtype=np.float32)
        if mono and audio.ndim == 2:
            audio = audio.mean(axis=1)
        if audio.ndim not in (1, 2) or not audio.size:
            raise ClipsepError(f"audio must be a non-empty (n,) or (n, channels) array, got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise ClipsepError("audio contains NaN or infinite sample values")
        if sample_rate != self.sample_rate:
            audio = soxr.resample(np.ascontiguousarray(audio), sample_rate, self.sample_rate, quality="HQ").astype(np.float32)
        if not queries and not embeddings:
            raise ClipsepError("no query given: pass text queries or named embeddings")
        names, vectors = self.embed_queries(texts=queries, vectors=embeddings)
        rows = 1 + (self.noise_heads if noise_heads else 0)
        outputs = self.offline.separate(audio, self.prepare_queries(vectors, noise_heads))
        return Separation(
            sample_rate=self.sample_rate,
            mixture=audio,
            sources={name: outputs[i * rows] for i, name in enumerate(names)},
            noise={name: outputs[i * rows + 1 : (i + 1) * rows] for i, name in enumerate(names)} if noise_heads else {},
        )
