"""The one place a separator is put together: the loaded engine, its spectral config, the
windowing, and the query path (one encoder, kept loaded), with the two frame loops on top.

    pipeline = Pipeline.load(PipelineSpec(checkpoint=Path("model.safetensors")))
    queries = pipeline.queries(texts=["violin"])              # names, (Q, D) vectors, engine form
    outputs = pipeline.offline().separate(mixture, queries.prepared)      # (rows, n)
    stream = pipeline.stream(queries, StreamingOptions.preset("balanced"))  # .process(block)

`PipelineSpec` is everything needed to load the same separator again (plain values and paths,
picklable): a Ray worker loads its own copy from the driver's spec. `api.Separator` is the
documented facade over this class; the command line and the file jobs use the facade.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.dsp.presence import GateOptions
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.model.hardware import check_threads
from clipsep_rt.query.assemble import QueryTarget, assemble_queries
from clipsep_rt.query.embedder import QueryEmbedder, QueryEncoderOptions
from clipsep_rt.query.vectors import read_metadata
from clipsep_rt.runtime.engines.choice import BackendChoice, choose_backend
from clipsep_rt.runtime.engines.hop_probe import choose_for_stream
from clipsep_rt.runtime.engines.loader import ModelSource, open_bundled_source, open_engine, open_source
from clipsep_rt.runtime.engines.protocol import Engine
from clipsep_rt.runtime.exclusion import ExclusionEngine, Exclusions, everything_but
from clipsep_rt.runtime.offline import OfflineSeparator, WindowingOptions
from clipsep_rt.runtime.queries import Queries
from clipsep_rt.runtime.query_fitting import QueryFitter, QueryProjection
from clipsep_rt.runtime.streaming import StreamingOptions, StreamingSeparator
from clipsep_rt.runtime.streaming_presets import PRESETS


@dataclass(frozen=True)
class PipelineSpec:
    """How to load a separator: a checkpoint and/or an engine folder (neither: the bundled
    default model), where and how it runs, its windowing and its query encoder."""

    checkpoint: Path | None = None
    engine_dir: Path | None = None
    backend: str = "auto"  # see runtime.engines.choice.BACKENDS
    device: str = "auto"  # "auto" takes a GPU when there is one (on a Ray worker: the one it was given)
    precision: str = "auto"
    compile: bool = False  # torch backend: torch.compile the U-Net
    threads: int | None = None  # CPU threads of the network; None: the backend's choice
    engine_cache: bool = True  # a checkpoint alone runs from its graph compiled once into the user cache (api, export.engine_cache)
    windowing: WindowingOptions = WindowingOptions()
    encoder: QueryEncoderOptions = QueryEncoderOptions()
    # For streaming at this latency preset (runtime.streaming_presets): backend auto on the CPU
    # then takes the backend measured fastest per hop here (runtime.engines.hop_probe), not the static order.
    stream_latency: str | None = None
    probe_cache: bool = True  # keep and reuse those measurements (False: measure at every load)

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise OptionError("threads", f"must be at least 1, got {self.threads}")
        if self.stream_latency is not None and self.stream_latency not in PRESETS:
            raise OptionError("stream_latency", f"expected one of {', '.join(PRESETS)} or None, got {self.stream_latency!r}")

    def resolved(self) -> PipelineSpec:
        """The same spec with absolute paths (model files, CLIP weights, embedding cache), for a
        process with another working directory."""

        def absolute(path: Path | None) -> Path | None:
            return Path(path).expanduser().resolve() if path is not None else None

        encoder = dataclasses.replace(self.encoder, clip_weights=absolute(self.encoder.clip_weights),
                                      cache_dir=absolute(self.encoder.cache_dir))
        return dataclasses.replace(self, checkpoint=absolute(self.checkpoint), engine_dir=absolute(self.engine_dir),
                                   encoder=encoder)


class Pipeline:
    """A loaded separator: engine, spectral config, windowing and query path, built once."""

    def __init__(
        self,
        engine: Engine,
        source: ModelSource,
        backend: BackendChoice | None = None,
        windowing: WindowingOptions = WindowingOptions(),
        encoder: QueryEncoderOptions = QueryEncoderOptions(),
        spec: PipelineSpec | None = None,
    ):
        """`spec`: what it was loaded from (`load` sets it), so that another process can load it too."""
        self.engine = ExclusionEngine(engine)  # runs queries with exclusions too (one pass), others as they are
        self.source = source
        self.backend = backend
        self.encoder = encoder
        self.spec = spec
        try:
            self._offline = OfflineSeparator(self.engine, source.spectral, windowing)
        except ValueError as error:  # a spectral config the block front end cannot run (BlockFrontEnd's check)
            raise ClipsepError(f"{source.name}: {error}") from None
        self._embedder: QueryEmbedder | None = None
        self._fitter: QueryFitter | None = None

    @classmethod
    def load(cls, spec: PipelineSpec = PipelineSpec(), log: Callable[[str], None] | None = None) -> Pipeline:
        """The separator `spec` names, on the backend `choose_backend` picks for it here; for a
        stream (`spec.stream_latency`) with backend auto on the CPU, the one measured fastest here
        (`log` hears when that takes a measurement)."""
        check_threads(spec.threads)  # against the cores of the machine that runs it (a Ray worker's own)
        bundled = spec.checkpoint is None and spec.engine_dir is None
        source = open_bundled_source() if bundled else open_source(spec.checkpoint, spec.engine_dir)
        choice = choose_backend(spec.backend, spec.device, source.files, precision=spec.precision)
        if bundled and choice.device == "cuda" and spec.backend in ("auto", "tensorrt"):
            # The bundled graph is for CPU engines (and an explicit onnxruntime): on a GPU, auto keeps
            # torch fp16 rather than a first-run TensorRT build, which would also write into the install.
            source = dataclasses.replace(source, files={})
            choice = choose_backend(spec.backend, spec.device, source.files, precision=spec.precision)
        engine = None
        if spec.stream_latency and spec.backend == "auto" and choice.device == "cpu" and spec.precision != "int8":
            choice, engine = choose_for_stream(choice, source, spec.stream_latency, spec.precision, spec.threads,
                                               cache=spec.probe_cache, log=log)
        if engine is None or spec.compile:  # the probe's engine of the pick, unless it is to be compiled
            engine = open_engine(choice, source.files, source.weights, spec.device, spec.precision, compile=spec.compile,
                                 threads=spec.threads)
        choice.precision = engine.precision  # an explicit precision overrides the choice's
        return cls(engine, source, choice, spec.windowing, spec.encoder, spec=spec)

    # -- what it is ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def model_config(self) -> ModelConfig:
        return self.source.model_config

    @property
    def spectral(self) -> SpectralConfig:
        return self.source.spectral

    def describe(self) -> str:
        config = self.model_config
        kind = "CLIPSep-NIT" if config.noise_heads else "CLIPSep"
        runs_on = self.backend.describe() if self.backend else f"{self.engine.device} ({self.engine.precision})"
        return f"{kind} (depth {config.depth}, ngf {config.ngf}) from {self.name}, {runs_on}"

    # -- the query path --------------------------------------------------------------------

    @property
    def embedder(self) -> QueryEmbedder:
        """The query encoder the model was trained with (or the chosen one), made on first use
        and kept: its encoder loads on the first cache miss, once.

        An exported text tower (engine folder) serves text queries without the CLIP weights.
        """
        if self._embedder is None:
            self._embedder = self._make_embedder()
        return self._embedder

    def _make_embedder(self) -> QueryEmbedder:
        spec = self.encoder.spec or self.source.query_encoder
        if spec is None:
            raise ClipsepError(
                f"{self.name} does not say which query encoder it was trained with: "
                "choose one (--query-encoder), or give query vectors (--query-embedding)"
            )
        # A torch encoder goes to CUDA only beside a torch-CUDA engine (torch, tensorrt): onnxruntime-gpu
        # may run with a CPU-only PyTorch, and asking torch here would import it for cached queries too.
        on_torch_cuda = self.engine.device.startswith("cuda") and (self.backend is None or self.backend.name in ("torch", "tensorrt"))
        device = "cuda" if on_torch_cuda else "cpu"
        exported = self.source.text_encoder_onnx
        if exported and not self.encoder.spec:
            return QueryEmbedder(spec, self.encoder, device, encoder_id=exported.encoder_id, factory=exported.build)
        return QueryEmbedder(spec, self.encoder, device)

    @property
    def query_fitter(self) -> QueryFitter:
        """Fits query vectors to audio examples with this engine (query by example, by span), made on first use."""
        if self._fitter is None:
            self._fitter = QueryFitter(self.engine, QueryProjection.read(self.source), self.spectral)
        return self._fitter

    @property
    def query_target(self) -> QueryTarget:
        """What queries must fit: this model's query size, named in errors with its encoder."""
        return QueryTarget(self.model_config.query_dim, self.name, self.source.query_encoder)

    def embed_text(self, texts: Sequence[str], prompt_ensemble: bool = False) -> np.ndarray:
        """(Q,) texts -> (Q, D) embeddings, cached; one encoder call for new texts.
        `prompt_ensemble`: average the prompt ensemble's templates (whatever the encoder options say)."""
        if not prompt_ensemble:
            return self.embed(texts=texts)[1]
        embedder = self.embedder
        return self.query_target.check(embedder.embed_text(texts, self.model_config.query_dim, prompt_ensemble=True),
                                       embedder.encoder_id)

    def embed_images(self, paths: Sequence[str | Path]) -> np.ndarray:
        """(Q,) image files -> (Q, D) CLIP image embeddings (as CLIPSep is trained with), cached."""
        return self.embed(images=paths)[1]

    def embed(
        self,
        texts: Sequence[str] = (),
        images: Sequence[str | Path] = (),
        vector_files: Sequence[str | Path] = (),
        vectors: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """Names (Q,) and (Q, D) float32 embeddings of text queries, image queries (named after
        the file), .npy/.npz query-vector files and named (D,) vectors, in that order."""
        self._check_fitted_for_this_model(vector_files)
        embedder = self.embedder if texts or images else None
        return assemble_queries(embedder, self.query_target, texts, images, vector_files, vectors)

    def _check_fitted_for_this_model(self, vector_files: Sequence[str | Path]) -> None:
        """Refuse a vector file fitted to audio (`embed --audio`) for another model: its query head differs."""
        for path in vector_files:
            metadata = read_metadata(path)
            fitted_for = metadata.get("query_head")
            if fitted_for and fitted_for != self.query_fitter.projection.fingerprint:
                made_with = metadata.get("model", "another model")
                raise ClipsepError(f"{path}: fitted for {made_with}, not for {self.name} (another query head): "
                                   "fit it again with this model (clipsep-rt embed --audio CLIP)")

    def prepare(self, names: Sequence[str], embeddings: np.ndarray, noise_heads: bool = False,
                excluded: Sequence[str] = (), exclusions: np.ndarray | None = None) -> Queries:
        """Named (Q, D) embeddings -> `Queries` in the engine's form (with each query's noise heads
        if asked). Named (E, D) `exclusions` are left out of every output (Q may then be 0: the one
        output is "all but" them), in the same network pass."""
        if noise_heads and not self.model_config.noise_heads:
            raise ClipsepError(f"{self.name} is a plain CLIPSep model: it has no noise heads")
        embeddings = self.query_target.check(embeddings, "the query vectors")
        if len(names) != len(embeddings):
            raise ClipsepError(f"{len(names)} query names for {len(embeddings)} query vectors")
        if exclusions is None or not len(exclusions):
            if not len(embeddings):
                raise ClipsepError("no query given: pass queries, exclusions or both")
            prepared = self.engine.prepare_queries(embeddings, noise_heads)
            return Queries(list(names), embeddings, prepared, self.model_config.noise_heads if noise_heads else 0)
        if noise_heads:
            raise ClipsepError("exclusions do not go with noise heads: ask for one or the other")
        exclusions = self.query_target.check(exclusions, "the exclusion vectors")
        if len(excluded) != len(exclusions):
            raise ClipsepError(f"{len(excluded)} exclusion names for {len(exclusions)} exclusion vectors")
        prepared = self.engine.prepare_excluding(embeddings, exclusions)
        outputs = list(names) or [everything_but(excluded)]
        return Queries(outputs, embeddings, prepared, excluded=list(excluded), exclusions=exclusions)

    def queries(
        self,
        texts: Sequence[str] = (),
        images: Sequence[str | Path] = (),
        vector_files: Sequence[str | Path] = (),
        vectors: Mapping[str, np.ndarray] | None = None,
        noise_heads: bool = False,
        exclude: Exclusions = Exclusions(),
    ) -> Queries:
        """`embed` (the queries, and the exclusions if any), then `prepare`: the queries ready to
        separate with. With exclusions alone, the one output is "all but" them."""
        if not exclude:
            names, embeddings = self.embed(texts, images, vector_files, vectors)
            return self.prepare(names, embeddings, noise_heads)
        excluded, exclusions = self.embed(exclude.texts, exclude.images, exclude.vector_files, exclude.vectors)
        if texts or images or vector_files or vectors:
            names, embeddings = self.embed(texts, images, vector_files, vectors)
        else:
            names, embeddings = [], np.zeros((0, exclusions.shape[1]), np.float32)
        return self.prepare(names, embeddings, noise_heads, excluded, exclusions)

    # -- the frame loops -------------------------------------------------------------------

    def offline(self) -> OfflineSeparator:
        """Windowed separation of whole signals or of a file's blocks (stateless between calls)."""
        return self._offline

    def stream(self, queries: Queries, options: StreamingOptions = StreamingOptions(),
               channels: int | None = None, gate: GateOptions | None = None) -> StreamingSeparator:
        """A new low-latency stream of `queries` (its own buffers; the engine is shared) that
        can switch to new texts through this pipeline's query path; `channels`: None for mono
        blocks, else the blocks' channel count (each channel separated); `gate`: the presence gate, if on."""
        return StreamingSeparator(self.engine, queries.for_streaming(), self.spectral, options, names=queries.labels,
                                  query_source=self.queries, channels=channels, gate=gate)
