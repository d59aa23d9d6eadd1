"""The Python API: load a separator once, then separate arrays by text or by vectors, whole
or as a low-latency stream.

    from clipsep_rt.api import Separator

    separator = Separator.open("model.safetensors")            # or Separator.open(): the bundled model
    result = separator.separate(audio, sample_rate=44100, queries=["violin", "dog barking"])
    result.sources["violin"]            # float32 at result.sample_rate (16 kHz), the input's layout:
                                        # (n,) for (n,) audio, (n, C) for (n, C) audio

    stream = separator.stream(["violin"], latency="balanced")  # per-stream state, shared model
    out = stream.process(block)         # (m,) float32 at 16 kHz -> (1, m), stream.latency_samples late
    stream.set_queries(["dog barking"]) # crossfades over the next hop; one encoder call for a new text

The command line and the file jobs (`clipsep_rt.jobs`) are thin layers over this module; the
separator is put together in one place, `runtime.pipeline.Pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.dsp.samples import check_sample_rate, float_samples
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.resample import resample
from clipsep_rt.query.embedder import QueryEmbedder, QueryEncoderOptions
from clipsep_rt.runtime.engines.choice import BackendChoice
from clipsep_rt.runtime.offline import WindowingOptions
from clipsep_rt.runtime.pipeline import Pipeline, PipelineSpec
from clipsep_rt.runtime.queries import Queries
from clipsep_rt.runtime.streaming import LatencyAligner, StreamingOptions, StreamingSeparator

MAX_CHANNELS = 64  # (n, C) arrays with more channels than this and than samples are taken for channels first
Stream = StreamingSeparator  # what `Separator.stream` returns: process, set_queries, flush, summary, latency

__all__ = ["LatencyAligner", "QueryEncoderOptions", "Queries", "Separation", "Separator", "Stream", "StreamingOptions",
           "WindowingOptions"]


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
    """A separator (any backend) with its spectral config, windowing and query path, loaded once.

    Open one with `Separator.open(...)` (the one factory); make queries once with `queries(...)`
    or pass texts straight to `separate` / `stream`.
    """

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

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
        windowing: WindowingOptions = WindowingOptions(),
        encoder: QueryEncoderOptions = QueryEncoderOptions(),
    ) -> Separator:
        """A checkpoint and/or an exported engine folder, on the backend `choose_backend` picks;
        with neither, the bundled default model (`clipsep_rt.model.weights`)."""
        spec = PipelineSpec(Path(checkpoint) if checkpoint is not None else None,
                            Path(engine_dir) if engine_dir is not None else None,
                            backend, device, precision, compile, threads, windowing, encoder)
        return cls.load(spec)

    @classmethod
    def load(cls, spec: PipelineSpec) -> Separator:
        """`open` from a `PipelineSpec` (what `spec` gives back: another process loads the same)."""
        return cls(Pipeline.load(spec.resolved()))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", precision: str = "auto", **options) -> Separator:
        """The torch engine on a checkpoint (either format)."""
        return cls.open(checkpoint=path, backend="torch", device=device, precision=precision, **options)

    @property
    def spec(self) -> PipelineSpec:
        """What this separator was opened from (absolute paths)."""
        return self.pipeline.spec

    @property
    def name(self) -> str:
        """The model: its engine folder or checkpoint (absolute path), or the bundled checkpoint."""
        return self.pipeline.name

    @property
    def sample_rate(self) -> int:
        return self.pipeline.spectral.sample_rate

    @property
    def spectral(self) -> SpectralConfig:
        return self.pipeline.spectral

    @property
    def model_config(self) -> ModelConfig:
        return self.pipeline.model_config

    @property
    def query_encoder(self) -> str | None:
        """The query encoder the model was trained with, as its files name it (None if they do not)."""
        return self.pipeline.source.query_encoder

    @property
    def noise_heads(self) -> int:
        return self.model_config.noise_heads

    @property
    def query_dim(self) -> int:
        return self.model_config.query_dim

    @property
    def backend(self) -> BackendChoice | None:
        """The backend chosen (name, device, precision) and why faster ones were skipped."""
        return self.pipeline.backend

    @property
    def device(self) -> str:
        """Where the network runs: "cpu" or "cuda:N"."""
        return self.pipeline.engine.device

    @property
    def precision(self) -> str:
        return self.pipeline.engine.precision

    def describe(self) -> str:
        """One line: the model, its size and where it runs."""
        return self.pipeline.describe()

    # -- queries -------------------------------------------------------------------------

    @property
    def embedder(self) -> QueryEmbedder:
        """The query encoder (the model's own, or the chosen one), kept loaded once it has loaded."""
        return self.pipeline.embedder

    def load_query_encoder(self) -> None:
        """Load the text encoder now (seconds), so that the first uncached query costs one encoder call."""
        self.pipeline.embedder.load()

    def embed_text(self, queries: Sequence[str], prompt_ensemble: bool = False) -> np.ndarray:
        """(Q,) texts -> (Q, D) embeddings with the checkpoint's (or the chosen) encoder, cached.
        `prompt_ensemble`: average several prompt templates per text (whatever the encoder options say)."""
        return self.pipeline.embed_text(queries, prompt_ensemble)

    def embed_images(self, paths: Sequence[str | Path]) -> np.ndarray:
        """(Q,) image files -> (Q, D) CLIP image embeddings (as CLIPSep is trained with), cached."""
        return self.pipeline.embed_images(paths)

    def embed_queries(
        self,
        texts: Sequence[str] = (),
        images: Sequence[str | Path] = (),
        vector_files: Sequence[str | Path] = (),
        vectors: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """Names (Q,) and (Q, D) float32 embeddings of text queries, image queries (named after
        the file), .npy/.npz query-vector files and named (D,) vectors, in that order."""
        return self.pipeline.embed(texts, images, vector_files, vectors)

    def queries(
        self,
        texts: Sequence[str] = (),
        images: Sequence[str | Path] = (),
        vector_files: Sequence[str | Path] = (),
        vectors: Mapping[str, np.ndarray] | None = None,
        noise_heads: bool = False,
    ) -> Queries:
        """The queries embedded (as `embed_queries`) and prepared for the engine, with each
        query's noise heads if `noise_heads`: make them once, separate many inputs with them."""
        return self.pipeline.queries(texts, images, vector_files, vectors, noise_heads)

    def prepare_queries(self, names: Sequence[str], embeddings: np.ndarray, noise_heads: bool = False) -> Queries:
        """Named (Q, D) embeddings made elsewhere -> `Queries` (checked against the model's query size)."""
        return self.pipeline.prepare(names, embeddings, noise_heads)

    def _as_queries(self, queries: Sequence[str] | Queries, embeddings: Mapping[str, np.ndarray] | None = None,
                    noise_heads: bool = False) -> Queries:
        if isinstance(queries, Queries):
            if embeddings:
                raise ClipsepError("give either prepared Queries or named embeddings, not both")
            if noise_heads and not queries.noise_heads:
                raise ClipsepError("these Queries were prepared without noise heads: prepare them with noise_heads=True")
            return queries
        if isinstance(queries, str):
            queries = [queries]
        if not queries and not embeddings:
            raise ClipsepError("no query given: pass text queries or named embeddings")
        return self.pipeline.queries(texts=list(queries), vectors=embeddings, noise_heads=noise_heads)

    # -- audio ---------------------------------------------------------------------------

    def separate(
        self,
        audio: np.ndarray,
        sample_rate: int,
        queries: Sequence[str] | Queries = (),
        embeddings: Mapping[str, np.ndarray] | None = None,
        noise_heads: bool = False,
        mono: bool = False,
    ) -> Separation:
        """Separate (n,) or (n, channels) audio at any rate by text queries and/or named vectors
        (or by `Queries` made once with `queries(...)`).

        The result is at the model's rate (16 kHz), has the input's duration (any length from
        one sample works: at least one sample comes back) and keeps its layout: (n, C) audio
        gives (n, C) sources, each channel masked by the masks of the mono mixture, so
        mixture - source is each channel's residual. `mono=True` downmixes (n, C) audio to (n,)
        first (the mean of the channels). `audio`: float samples, or integer PCM (int16, int32,
        int8, uint8) scaled as soundfile reads it (`dsp.samples`); channels last, as soundfile
        gives them. OptionError for channels first (more channels than samples, and more
        than `MAX_CHANNELS`), other dtypes, NaN/Inf samples, or a `sample_rate` that is not
        1,000 to 768,000 Hz.
        """
        check_sample_rate(sample_rate)
        audio = float_samples(audio, "audio")
        if audio.ndim not in (1, 2) or not audio.size:
            raise OptionError("audio", f"must be a non-empty (n,) or (n, channels) array, got shape {audio.shape}")
        if audio.ndim == 2 and audio.shape[1] > max(audio.shape[0], MAX_CHANNELS):
            raise OptionError("audio", f"has shape {audio.shape}: more channels than samples; it takes (n, channels), "
                                       "channels last as soundfile reads them: pass audio.T")
        if mono and audio.ndim == 2:
            audio = audio.mean(axis=1)
        audio = resample(audio, sample_rate, self.sample_rate)
        prepared = self._as_queries(queries, embeddings, noise_heads)
        rows = 1 + prepared.noise_heads
        outputs = self.pipeline.offline().separate(audio, prepared.prepared)
        return Separation(
            sample_rate=self.sample_rate,
            mixture=audio,
            sources={name: outputs[i * rows] for i, name in enumerate(prepared.names)},
            noise={name: outputs[i * rows + 1 : (i + 1) * rows] for i, name in enumerate(prepared.names)}
            if prepared.noise_heads else {},
        )

    def separate_blocks(
        self,
        blocks: Iterable[np.ndarray],
        queries: Sequence[str] | Queries,
        union_rows: list[int] | None = None,
        on_progress: Callable[[int], None] | None = None,
        channels: int | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """A long input in blocks at the model rate (a file's decoder) -> (mixture, outputs)
        blocks as soon as they are final, the same as `separate` on the whole signal (see
        `runtime.offline.OfflineSeparator.separate_blocks`): memory bounded by the batch, not the length.

        Blocks are (m,) with `channels=None` -> (m,) and (rows [+1], m); or (m, C) -> (m, C)
        and (rows [+1], m, C). `union_rows`: a last output row masked by the union of those
        rows' masks. `on_progress(samples_read)`. Blocks are checked and made float32 as
        `separate`'s audio is (OptionError naming `blocks`)."""
        return self.pipeline.offline().separate_blocks(blocks, queries.prepared, union_rows, on_progress, channels=channels)

    def stream(
        self,
        queries: Sequence[str] | Queries,
        latency: str = "balanced",
        hop_frames: int | None = None,
        lookahead_frames: int | None = None,
        mask: str = "soft",
        channels: int | None = None,
    ) -> StreamingSeparator:
        """A new low-latency stream (its own state; the model is shared, so make as many as
        needed): `stream.process(block)` takes (m,) float32 mono at the model rate (16 kHz) and
        returns (rows, m), `stream.latency_samples` late; with `channels` C it takes (m, C) and
        returns (rows, m, C), each channel separated as `separate` does. `latency`: a preset
        ("low" 96 ms, "balanced" 304 ms, "quality" 816 ms); `hop_frames` / `lookahead_frames` override it."""
        preset = StreamingOptions.preset(latency, mask)
        options = StreamingOptions(
            preset.hop_frames if hop_frames is None else hop_frames,
            preset.lookahead_frames if lookahead_frames is None else lookahead_frames,
            mask,
        )
        return self.pipeline.stream(self._as_queries(queries), options, channels)
