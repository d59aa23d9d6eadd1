"""The Python API: load a separator once, then separate arrays by text or by vectors, whole
or as a low-latency stream.

    from clipsep_rt.api import Separator

    separator = Separator.open("model.safetensors")            # or Separator.open(): the bundled model
    result = separator.separate(audio, sample_rate=44100, queries=["violin", "dog barking"])
    result.sources["violin"]            # float32 at result.sample_rate (16 kHz), the input's layout:
                                        # (n,) for (n,) audio, (n, C) for (n, C) audio
    separator.separate(audio, 44100, queries=["violin"], exclude=["speech"])  # the violin, less the speech
    separator.separate(audio, 44100, exclude=["speech"]).sources["all but speech"]  # everything but the speech

    stream = separator.stream(["violin"], latency="balanced")  # per-stream state, shared model
    out = stream.process(block)         # (m,) float32 at 16 kHz -> (1, m), stream.latency_samples late
    stream.set_queries(["dog barking"]) # crossfades over the next hop; one encoder call for a new text

The command line and the file jobs (`clipsep_rt.jobs`) are thin layers over this module; the
separator is put together in one place, `runtime.pipeline.Pipeline`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.dsp.presence import GateOptions, PresenceTimeline
from clipsep_rt.dsp.samples import check_sample_rate, float_samples
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.resample import resample
from clipsep_rt.query.embedder import QueryEmbedder, QueryEncoderOptions
from clipsep_rt.runtime.engines.choice import BackendChoice
from clipsep_rt.runtime.exclusion import Exclusions
from clipsep_rt.runtime.offline import WindowingOptions
from clipsep_rt.runtime.pipeline import Pipeline, PipelineSpec
from clipsep_rt.runtime.queries import Queries
from clipsep_rt.runtime.streaming import LatencyAligner, StreamingOptions, StreamingSeparator

logger = logging.getLogger(__name__)
MAX_CHANNELS = 64  # (n, C) arrays with more channels than this and than samples are taken for channels first
Stream = StreamingSeparator  # what `Separator.stream` returns: process, set_queries, flush, summary, latency

__all__ = ["Exclusions", "GateOptions", "LatencyAligner", "QueryEncoderOptions", "Queries", "Separation", "Separator", "Stream",
           "StreamingOptions", "WindowingOptions"]


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
    presence: dict[str, np.ndarray] = field(default_factory=dict)  # query name -> (seconds,) presence scores (dsp.presence)

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
        engine_cache: bool = True,
        log: Callable[[str], None] | None = None,
        stream_latency: str | None = None,
        probe_cache: bool = True,
    ) -> Separator:
        """A checkpoint and/or an exported engine folder, on the backend `choose_backend` picks;
        with neither, the bundled default model (`clipsep_rt.model.weights`).

        A checkpoint alone is compiled once (its ONNX graph, into the user cache; `log` hears
        of it, default `logging`) and later opened from there without torch, unless
        `engine_cache` is False or the backend is torch (see `export.engine_cache`).

        `stream_latency`: the preset ("low", "balanced", "quality") its streams will run at, when
        known before opening: backend auto on the CPU then takes the backend measured fastest per
        hop on this machine (timed once, cached: `runtime.engines.hop_probe`) rather than the
        static order; `backend.reasons` gives the figures. `probe_cache` False times them anew
        (at every open) and leaves the cache alone."""
        spec = PipelineSpec(checkpoint=Path(checkpoint) if checkpoint is not None else None,
                            engine_dir=Path(engine_dir) if engine_dir is not None else None,
                            backend=backend, device=device, precision=precision, compile=compile, threads=threads,
                            engine_cache=engine_cache, windowing=windowing, encoder=encoder,
                            stream_latency=stream_latency, probe_cache=probe_cache)
        return cls.load(spec, log=log)

    @classmethod
    def load(cls, spec: PipelineSpec, log: Callable[[str], None] | None = None) -> Separator:
        """`open` from a `PipelineSpec` (what `spec` gives back: another process loads the same)."""
        spec = spec.resolved()
        pipeline = Pipeline.load(_with_compiled_engine(spec, log or logger.warning), log=log)
        pipeline.spec = spec  # as asked: another process (a Ray worker) finds its own machine's cache entry
        return cls(pipeline)

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
        exclude: str | Sequence[str] | Exclusions = (),
    ) -> Queries:
        """The queries embedded (as `embed_queries`) and prepared for the engine, with each
        query's noise heads if `noise_heads`: make them once, separate many inputs with them.

        `exclude`: texts (or `Exclusions`: texts, images, vector files, named vectors) left out
        of every output: each output is its query's mask times (1 - the union of the exclusions'
        masks), all in one network pass; with no query, the one output is named "all but ...".
        Not with `noise_heads`."""
        return self.pipeline.queries(texts, images, vector_files, vectors, noise_heads, Exclusions.of(exclude))

    def prepare_queries(self, names: Sequence[str], embeddings: np.ndarray, noise_heads: bool = False,
                        excluded: Sequence[str] = (), exclusions: np.ndarray | None = None) -> Queries:
        """Named (Q, D) embeddings made elsewhere -> `Queries` (checked against the model's query
        size); named (E, D) `exclusions` are left out of every output (Q may then be 0)."""
        return self.pipeline.prepare(names, embeddings, noise_heads, excluded, exclusions)

    def _as_queries(self, queries: Sequence[str] | Queries, embeddings: Mapping[str, np.ndarray] | None = None,
                    noise_heads: bool = False, exclude: str | Sequence[str] | Exclusions = ()) -> Queries:
        exclude = Exclusions.of(exclude)
        if isinstance(queries, Queries):
            if embeddings:
                raise ClipsepError("give either prepared Queries or named embeddings, not both")
            if exclude:
                raise ClipsepError("give exclusions when the Queries are made: separator.queries(..., exclude=...)")
            if noise_heads and not queries.noise_heads:
                raise ClipsepError("these Queries were prepared without noise heads: prepare them with noise_heads=True")
            return queries
        if isinstance(queries, str):
            queries = [queries]
        if not queries and not embeddings and not exclude:
            raise ClipsepError("no query given: pass text queries, named embeddings or exclusions")
        return self.pipeline.queries(texts=list(queries), vectors=embeddings, noise_heads=noise_heads, exclude=exclude)

    def query_from_audio(self, audio: np.ndarray, sample_rate: int, name: str = "example",
                         start_from: np.ndarray | None = None) -> tuple[str, np.ndarray]:
        """Query by example: a few seconds of the wanted sound, (n,) or (n, C) at any rate -> (name,
        (D,) float32 unit query vector) fitted on the model's own features (mixed with the bundled
        other sounds, `runtime.query_fitting`); pass it to `separate(..., embeddings={name: vector})`.
        `start_from`: a (D,) query (a text's embedding) to start the fit from."""
        return name, self.pipeline.query_fitter.fit_example(self._model_rate_mono(audio, sample_rate), start_from)

    def query_from_span(self, audio: np.ndarray, sample_rate: int, start_s: float, end_s: float,
                        name: str | None = None) -> tuple[str, np.ndarray]:
        """Query by time span: the seconds [start_s, end_s) of `audio` where the wanted sound is heard
        (ideally alone) -> (name, default "span_START-END", (D,) unit query vector), fitted against the
        rest of `audio` (and bundled other sounds). ClipsepError for a span outside the audio, with
        end <= start, or shorter than half a second."""
        vector = self.pipeline.query_fitter.fit_span(self._model_rate_mono(audio, sample_rate), start_s, end_s)
        return name or f"span_{start_s:g}-{end_s:g}", vector

    def _model_rate_mono(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(n,) or (n, C) audio at `sample_rate` -> (n',) float32 mono at the model rate."""
        check_sample_rate(sample_rate)
        audio = float_samples(audio, "audio")
        if audio.ndim not in (1, 2) or not audio.size:
            raise OptionError("audio", f"must be a non-empty (n,) or (n, channels) array, got shape {audio.shape}")
        return resample(audio.mean(axis=1) if audio.ndim == 2 else audio, sample_rate, self.sample_rate)

    # -- audio ---------------------------------------------------------------------------

    def separate(
        self,
        audio: np.ndarray,
        sample_rate: int,
        queries: Sequence[str] | Queries = (),
        embeddings: Mapping[str, np.ndarray] | None = None,
        noise_heads: bool = False,
        mono: bool = False,
        exclude: str | Sequence[str] | Exclusions = (),
        gate: bool | GateOptions = False,
    ) -> Separation:
        """Separate (n,) or (n, channels) audio at any rate by text queries and/or named vectors
        (or by `Queries` made once with `queries(...)`), leaving out the `exclude` sounds (see
        `queries`; with no query, the one source is named "all but ...").

        The result is at the model's rate (16 kHz), has the input's duration (any length from
        one sample works: at least one sample comes back) and keeps its layout: (n, C) audio
        gives (n, C) sources, each channel masked by the masks of the mono mixture, so
        mixture - source is each channel's residual. `mono=True` downmixes (n, C) audio to (n,)
        first (the mean of the channels). `audio`: float samples, or integer PCM (int16, int32,
        int8, uint8) scaled as soundfile reads it (`dsp.samples`); channels last, as soundfile
        gives them. OptionError for channels first (more channels than samples, and more
        than `MAX_CHANNELS`), other dtypes, NaN/Inf samples, or a `sample_rate` that is not
        1,000 to 768,000 Hz. `presence` holds each query's per-second presence score (the
        fraction of the mixture's energy its mask passes, `dsp.presence`); `gate` (True, or
        `GateOptions`) fades a query's output to silence where that score says absent.
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
        prepared = self._as_queries(queries, embeddings, noise_heads, exclude)
        rows = 1 + prepared.noise_heads
        timeline = PresenceTimeline(self.spectral)
        outputs = self.pipeline.offline().separate(audio, prepared.prepared, presence=timeline,
                                                   presence_rows={i * rows: name for i, name in enumerate(prepared.names)},
                                                   gate=gate_options(gate))
        scores = timeline.scores()
        return Separation(
            sample_rate=self.sample_rate,
            mixture=audio,
            sources={name: outputs[i * rows] for i, name in enumerate(prepared.names)},
            noise={name: outputs[i * rows + 1 : (i + 1) * rows] for i, name in enumerate(prepared.names)}
            if prepared.noise_heads else {},
            presence={name: np.array(scores.get(name, []), np.float32) for name in prepared.names},
        )

    def separate_blocks(
        self,
        blocks: Iterable[np.ndarray],
        queries: Sequence[str] | Queries,
        union_rows: list[int] | None = None,
        on_progress: Callable[[int], None] | None = None,
        channels: int | None = None,
        presence: PresenceTimeline | None = None,
        gate: bool | GateOptions = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """A long input in blocks at the model rate (a file's decoder) -> (mixture, outputs)
        blocks as soon as they are final, the same as `separate` on the whole signal (see
        `runtime.offline.OfflineSeparator.separate_blocks`): memory bounded by the batch, not the length.

        Blocks are (m,) with `channels=None` -> (m,) and (rows [+1], m); or (m, C) -> (m, C)
        and (rows [+1], m, C). `union_rows`: a last output row masked by the union of those
        rows' masks. `on_progress(samples_read)`. Blocks are checked and made float32 as
        `separate`'s audio is (OptionError naming `blocks`). `presence`: collects each query's
        per-second presence score; `gate`: as `separate`'s."""
        rows = 1 + queries.noise_heads
        return self.pipeline.offline().separate_blocks(
            blocks, queries.prepared, union_rows, on_progress, channels=channels, presence=presence,
            presence_rows={i * rows: name for i, name in enumerate(queries.names)}, gate=gate_options(gate))

    def stream(
        self,
        queries: Sequence[str] | Queries = (),
        latency: str = "balanced",
        hop_frames: int | None = None,
        lookahead_frames: int | None = None,
        mask: str = "soft",
        channels: int | None = None,
        exclude: str | Sequence[str] | Exclusions = (),
        gate: bool | GateOptions = False,
    ) -> StreamingSeparator:
        """A new low-latency stream (its own state; the model is shared, so make as many as
        needed): `stream.process(block)` takes (m,) float32 mono at the model rate (16 kHz) and
        returns (rows, m), `stream.latency_samples` late; with `channels` C it takes (m, C) and
        returns (rows, m, C), each channel separated as `separate` does. `latency`: a preset
        ("low" 96 ms, "balanced" 304 ms, "quality" 816 ms); `hop_frames` / `lookahead_frames` override it.
        `exclude`: sounds left out of every output, as in `queries` (`queries=()`: "all but" them).
        `stream.presence` keeps each query's per-second presence score; `gate` (True, or
        `GateOptions`) fades a query's output to silence where it says absent (causal: no added latency)."""
        preset = StreamingOptions.preset(latency, mask)
        options = StreamingOptions(
            preset.hop_frames if hop_frames is None else hop_frames,
            preset.lookahead_frames if lookahead_frames is None else lookahead_frames,
            mask,
        )
        return self.pipeline.stream(self._as_queries(queries, exclude=exclude), options, channels, gate_options(gate))


def _with_compiled_engine(spec: PipelineSpec, log: Callable[[str], None]) -> PipelineSpec:
    """`spec` with the engine folder compiled from its checkpoint (export.engine_cache) when it
    names a checkpoint alone and a backend that runs graphs; else `spec` unchanged."""
    graph_backend = spec.backend != "torch" and not spec.compile
    if spec.checkpoint is None or spec.engine_dir is not None or not spec.engine_cache or not graph_backend:
        return spec
    from clipsep_rt.export.engine_cache import cached_engine_dir

    folder = cached_engine_dir(spec.checkpoint, log)
    return dataclasses.replace(spec, engine_dir=folder) if folder is not None else spec


def gate_options(gate: bool | GateOptions) -> GateOptions | None:
    """`gate=True` -> the calibrated defaults, False -> None (off), `GateOptions` as they are."""
    if isinstance(gate, GateOptions):
        return gate
    return GateOptions() if gate else None
