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

from .config import ModelConfig, SpectralConfig
from .errors import ClipsepError
from .fileio import file_sha256
from .query.embedder import QueryEmbedder, QueryEncoderOptions
from .model.checkpoint import Checkpoint, load_checkpoint
from .runtime.backends import BackendChoice
from .runtime.engine import Engine, PreparedQueries
from .runtime.offline import OfflineSeparator, WindowingOptions


@dataclass
class Separation:
    sample_rate: int
    mixture: np.ndarray  # (n,) the input, mono, at sample_rate
    sources: dict[str, np.ndarray]  # query name -> (n,) separated audio
    noise: dict[str, np.ndarray] = field(default_factory=dict)  # query name -> (H, n) noise-head audio


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
        text_encoder_onnx: tuple[Path, str] | None = None,
    ):
        """`text_encoder_onnx`: (ONNX file, open_clip tokenizer name) of an exported text tower,
        used for text queries unless another encoder is chosen."""
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
        with neither, the bundled default model (`clipsep_rt.models`)."""
        from .export.manifest import read_manifest
        from .runtime.backends import choose_backend
        from .runtime.engine_factory import open_engine

        if checkpoint is None and engine_dir is None:
            from .models import default_checkpoint

            checkpoint = default_checkpoint()
        manifest = read_manifest(engine_dir) if engine_dir is not None else None
        if manifest is not None and checkpoint is not None and file_sha256(Path(checkpoint)) != manifest.checkpoint["sha256"]:
            raise ClipsepError(
                f"engine folder {engine_dir} was exported from {manifest.checkpoint['name']}, not from {checkpoint}"
            )
        loaded = load_checkpoint(checkpoint) if checkpoint is not None else None
        files = manifest.separator.backend_files(Path(engine_dir)) if manifest else {}
        choice = choose_backend(backend, device, files)

        def weights() -> Checkpoint:
            return loaded or load_checkpoint(Path(engine_dir) / manifest.separator.weights)

        engine = open_engine(choice, files, weights, device, precision, compile=compile, threads=threads)
        choice.precision = engine.precision  # an explicit --precision overrides the choice's
        if manifest is not None:
            text = manifest.text_encoder
            text_onnx = (Path(engine_dir) / text.onnx, text.tokenizer) if text else None
            return cls(engine, manifest.model, manifest.spectral, manifest.query_encoder,
                       name=str(engine_dir), backend=choice, text_encoder_onnx=text_onnx, **options)
        return cls(engine, loaded.model_config, loaded.spectral_config, loaded.query_encoder,
                   name=str(checkpoint), backend=choice, **options)

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
        device = "cuda" if self.engine.device.type == "cuda" else "cpu"
        if self.text_encoder_onnx and not self.encoder.spec:
            from .query.onnx_text_backend import OnnxTextEncoder

            path, tokenizer = self.text_encoder_onnx
            return QueryEmbedder(spec, self.encoder, device, encoder_id=self.query_encoder,
                                 factory=lambda: OnnxTextEncoder(path, tokenizer, encoder_id=self.query_encoder))
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
        from .query import check_embedding_dim

        check_embedding_dim(embeddings, self.query_dim, self.query_encoder, self.name, source)
        return np.asarray(embeddings, dtype=np.float32)

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
