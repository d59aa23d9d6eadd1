"""Query vectors fitted to audio (query by example, query by time span), on any backend.

The mask logit of a query q at each bin of the log grid is linear in its head vector
(model/heads.py): z = sum_c s_c(q) G_c(f, t) + bias, with s(q) = sigmoid(W q + b) (C,) and
G = scale * the U-Net's features (C, F, T). So G can be read back from any engine, with no
access to its insides: one `probabilities` call with C + 1 crafted embeddings, whose s are
beta (all channels) and beta + alpha on channel k, gives G_k = (logit p_k - logit p_0) / alpha.

A query is then fitted by logistic regression of the mask on G: the example is mixed with
other audio at several levels (example-to-other ratios `levels_db`), and the vector is fitted
so that the mask reproduces the example's ideal mask in them (training's target and weight:
the example above half the mixture's warped magnitude; log1p of that magnitude). The vector
stays a unit vector where text embeddings are: q = r + sqrt(1 - |r|^2) n, with r in W's row
space (|r| <= 1, the only part the separator sees) and n a fixed unit vector of its null
space (the starting text query's, when one is given). Adam on r's C coordinates, on a
weighted sample of the bins: a fraction of a second on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsep_rt.config import SpectralConfig
from clipsep_rt.dsp.block_spectral import BlockFrontEnd
from clipsep_rt.dsp.warp import MAG_EPS
from clipsep_rt.errors import ClipsepError
from clipsep_rt.runtime.engines.loader import ModelSource
from clipsep_rt.runtime.engines.protocol import Engine

PROJECTION_KEYS = ("heads.query_projection.weight", "heads.query_projection.bias", "heads.bias")
PROBE_BASE = 1e-3  # beta: every channel's s in the probes
PROBE_STEPS = (0.5, 0.1, 0.02)  # alpha, smaller while a probe's logits leave LOGIT_RANGE
NEGATIVES_DIR = Path(__file__).resolve().parent / "negatives"  # other sounds from the training corpus (NOTICE.md)
LOGIT_RANGE = 8.0  # |logit| read back from float32 probabilities to about 1e-4
PROBE_BATCH = 4  # windows per probing call (33 mask rows each: memory)


@dataclass(frozen=True)
class FitOptions:
    levels_db: tuple[float, ...] = (-5.0, 0.0, 5.0)  # example-to-other energy ratios, taken in turn by the other sounds
    max_example_s: float = 8.0  # a longer example: its first seconds
    min_example_s: float = 0.5
    others: int = 12  # other sounds mixed with the example, at most (one mixture each): all the bundled ones
    steps: int = 150  # Adam steps
    learning_rate: float = 0.05
    bins: int = 32768  # bins sampled (weighted) for the fit
    prior: float = 1e-3  # pull towards the starting point (|r - r0|^2)
    seed: int = 0


class QueryProjection:
    """The query head's projection W (C, D), offset b (C,) and mask bias, with W's SVD."""

    def __init__(self, weight: np.ndarray, offset: np.ndarray, bias: float):
        self.weight = np.asarray(weight, np.float64)
        self.offset = np.asarray(offset, np.float64)
        self.bias = float(bias)
        u, s, vt = np.linalg.svd(self.weight, full_matrices=True)
        channels = len(s)
        self.left, self.singular, self.row_basis = u, s, vt[:channels]  # (C, C), (C,), (C, D)
        self.null_basis = vt[channels:]  # (D - C, D)

    @property
    def fingerprint(self) -> str:
        """What a fitted vector is for: the sha256 of W and b (float32), 16 hex digits."""
        import hashlib

        data = self.weight.astype(np.float32).tobytes() + self.offset.astype(np.float32).tobytes()
        return hashlib.sha256(data).hexdigest()[:16]

    @property
    def channels(self) -> int:
        return self.weight.shape[0]

    @classmethod
    def read(cls, source: ModelSource) -> QueryProjection:
        """From the model's .safetensors (numpy, no torch), else from its loaded weights."""
        if source.weights_file is not None:
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(source.weights_file), framework="numpy") as handle:
                    tensors = {key: handle.get_tensor(key) for key in PROJECTION_KEYS}
            except (SafetensorError, OSError, KeyError) as error:
                raise ClipsepError(f"{source.weights_file}: no query head weights to fit queries with ({error})") from None
        else:
            state = source.weights().state_dict
            tensors = {key: state[key].float().numpy() for key in PROJECTION_KEYS}
        weight, offset, bias = (tensors[key].astype(np.float64) for key in PROJECTION_KEYS)
        return cls(weight, offset, float(bias.reshape(-1)[0]))

    def embeddings_for(self, s: np.ndarray) -> np.ndarray:
        """(K, C) head activations in (0, 1) -> (K, D) embeddings giving them (row space only)."""
        pre = np.log(s) - np.log1p(-s) - self.offset
        return ((pre @ self.left) / self.singular) @ self.row_basis

    def activations(self, coords: np.ndarray) -> np.ndarray:
        """(C,) row-space coordinates u (r = u @ row_basis) -> s (C,)."""
        return 1.0 / (1.0 + np.exp(-(self.left @ (self.singular * coords) + self.offset)))


def recover_features(engine: Engine, projection: QueryProjection, log_mag: np.ndarray,
                     bins: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(B, 1, F, T) warped log magnitude -> (B, C, F, T) float32 G, with the mask logit of any
    query = sum_c s_c G_c + bias (read back through `engine.probabilities`); with `bins`
    (window, frequency, frame) index arrays (N,) each, only those: (N, C)."""
    channels = projection.channels
    if bins is None:
        features = np.empty((log_mag.shape[0], channels, *log_mag.shape[2:]), np.float32)
    else:
        features = np.empty((len(bins[0]), channels), np.float32)
    for start in range(0, log_mag.shape[0], PROBE_BATCH):
        chunk = np.ascontiguousarray(log_mag[start:start + PROBE_BATCH], dtype=np.float32)
        chosen = None if bins is None else np.flatnonzero((bins[0] >= start) & (bins[0] < start + len(chunk)))
        for alpha in PROBE_STEPS:
            s = np.full((channels + 1, channels), PROBE_BASE)
            s[1:] += alpha * np.eye(channels)
            prepared = engine.prepare_queries(projection.embeddings_for(s).astype(np.float32), False)
            p = engine.probabilities(chunk, prepared)  # (b, C + 1, F, T)
            if chosen is not None:
                p = p[bins[0][chosen] - start, :, bins[1][chosen], bins[2][chosen]]  # (n, C + 1)
            p = np.clip(p, np.float32(1e-30), np.float32(1.0 - 1e-7))
            logits = np.log(p) - np.log1p(-p)
            if np.abs(logits).max(initial=0.0) <= LOGIT_RANGE or alpha == PROBE_STEPS[-1]:
                break
        axis = 1 if chosen is None else -1
        difference = (np.delete(logits, 0, axis=axis) - np.take(logits, [0], axis=axis)) / np.float32(alpha)
        if chosen is None:
            features[start:start + len(chunk)] = difference
        else:
            features[chosen] = difference
    return features


@dataclass
class ExampleMixtures:
    """The example mixed with other sounds, windowed for the network."""

    log_mag: np.ndarray  # (M * k, 1, F, W) float32 network windows (k windows per mixture)
    target: np.ndarray  # (M * k, F, W) bool: the example dominates
    weight: np.ndarray  # (M * k, F, W) float32 loss weight, 0 past the example's end


def example_mixtures(front_end: BlockFrontEnd, example: np.ndarray, others: list[np.ndarray],
                     levels_db: tuple[float, ...]) -> ExampleMixtures:
    """(n,) example, other sounds (any lengths: looped or cut to n) -> its mixtures, one per other
    sound, at the levels in turn (more kinds of sound rather than one sound at every level)."""
    config = front_end.config
    window = config.window_frames
    frames = 1 + len(example) // config.hop_length
    count = -(-frames // window)
    length = count * window * config.hop_length - 1  # exactly count * window frames
    padded = np.zeros(length, np.float32)
    padded[:len(example)] = example
    energy = float(np.sum(example.astype(np.float64) ** 2))
    mixes = []
    for index, other in enumerate(others):
        looped = np.resize(other.astype(np.float32), len(example))
        other_energy = float(np.sum(looped.astype(np.float64) ** 2))
        if other_energy <= 0.0:
            continue
        level = levels_db[index % len(levels_db)]
        mix = padded.copy()
        mix[:len(example)] += looped * np.float32(np.sqrt(energy / (other_energy * 10.0 ** (level / 10.0))))
        mixes.append(mix)
    if not mixes:
        raise ClipsepError("no other sound to contrast the example with (the other audio is silent)")
    mix_linear = np.abs(front_end.stft(np.stack(mixes)))  # (M, 513, count * W)
    mix_mag = np.einsum("fk,mkt->mft", front_end.warp, mix_linear, optimize=True)  # (M, F, count * W)
    example_mag = front_end.warp @ np.abs(front_end.stft(padded))  # (F, count * W)
    weight = np.clip(np.log1p(mix_mag), 1e-3, 10.0).astype(np.float32)
    weight[..., frames:] = 0.0
    log_mag = np.log(np.einsum("fk,mkt->mft", front_end.warp, mix_linear + np.float32(MAG_EPS), optimize=True))

    def windows(array: np.ndarray) -> np.ndarray:  # (M, F, count * W) -> (M * count, F, W)
        m, f, _ = array.shape
        return array.reshape(m, f, count, window).transpose(0, 2, 1, 3).reshape(m * count, f, window)

    target = np.broadcast_to(example_mag > 0.5 * mix_mag, mix_mag.shape)
    return ExampleMixtures(windows(log_mag.astype(np.float32))[:, None], windows(target), windows(weight))


class QueryFitter:
    """Fits unit query vectors to examples with one engine (any backend)."""

    def __init__(self, engine: Engine, projection: QueryProjection, spectral: SpectralConfig = SpectralConfig(),
                 options: FitOptions = FitOptions()):
        self.engine = engine
        self.projection = projection
        self.front_end = BlockFrontEnd(spectral)
        self.options = options
        self._negatives: list[np.ndarray] | None = None

    @property
    def negatives(self) -> list[np.ndarray]:
        """The bundled other sounds at the model rate, read once."""
        if self._negatives is None:
            self._negatives = read_negatives(NEGATIVES_DIR, self.front_end.config.sample_rate)
        return self._negatives

    def fit_example(self, example: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
        """(n,) example at the model rate -> (D,) unit query, against the bundled other sounds."""
        return self.fit(example, self.negatives, init)

    def fit_span(self, audio: np.ndarray, start_s: float, end_s: float, init: np.ndarray | None = None) -> np.ndarray:
        """(n,) audio at the model rate, the span of it that holds the sound -> (D,) unit query,
        against pieces of the rest of the audio, then bundled other sounds up to `others`."""
        example, rest = span_example(audio, self.front_end.config.sample_rate, start_s, end_s, self.options.min_example_s)
        return self.fit(example, rest + self.negatives[: max(0, self.options.others - len(rest))], init)

    def fit(self, example: np.ndarray, others: list[np.ndarray], init: np.ndarray | None = None) -> np.ndarray:
        """(n,) example at the model rate, other sounds (m_i,) -> (D,) float32 unit query vector.
        `init`: a (D,) query to start from (a text's embedding), else the features' best direction."""
        options = self.options
        rate = self.front_end.config.sample_rate
        if len(example) < options.min_example_s * rate:
            raise ClipsepError(f"the example is {len(example) / rate:.2f} s long: a query needs at least "
                               f"{options.min_example_s:g} s of the sound")
        example = np.asarray(example[: int(options.max_example_s * rate)], np.float32)
        if not np.any(example):
            raise ClipsepError("the example is silent: there is no sound to fit a query to")
        mixtures = example_mixtures(self.front_end, example, others[: options.others], options.levels_db)
        rng = np.random.default_rng(options.seed)
        weight = mixtures.weight.reshape(-1).astype(np.float64)
        picked = np.sort(rng.choice(weight.size, size=options.bins, p=weight / weight.sum()))
        bins = np.unravel_index(picked, mixtures.weight.shape)  # (window, frequency, frame), (N,) each
        x = recover_features(self.engine, self.projection, mixtures.log_mag, bins).astype(np.float64)  # (N, C)
        y = mixtures.target[bins].astype(np.float64)  # (N,)
        return self._optimise(x, y, init)

    def _optimise(self, x: np.ndarray, y: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        """Adam on the row-space coordinates u (|u| <= 1) of the weighted logistic loss."""
        projection, options = self.projection, self.options
        if init is not None:
            init = np.asarray(init, np.float64).reshape(-1)
            start = projection.row_basis @ init / max(np.linalg.norm(init), 1e-12)
        else:  # the loss's steepest descent from u = 0
            s0 = projection.activations(np.zeros(projection.channels))
            direction = projection.singular * (projection.left.T @ (s0 * (1 - s0) * (x.T @ (y - y.mean()))))
            start = 0.5 * direction / max(np.linalg.norm(direction), 1e-12)
        coords, moment, second = start.copy(), np.zeros_like(start), np.zeros_like(start)
        for step in range(1, options.steps + 1):
            s = projection.activations(coords)
            p = 1.0 / (1.0 + np.exp(-(x @ s + projection.bias)))
            grad_s = x.T @ (p - y) / len(y)
            grad = projection.singular * (projection.left.T @ (s * (1 - s) * grad_s))
            grad += 2.0 * options.prior * (coords - start)
            moment = 0.9 * moment + 0.1 * grad
            second = 0.999 * second + 0.001 * grad**2
            coords -= options.learning_rate * (moment / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
            coords /= max(1.0, float(np.linalg.norm(coords)))
        return self._unit_vector(coords, init)

    def _unit_vector(self, coords: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        """q = r + sqrt(1 - |r|^2) n: (C,) coordinates -> (D,) float32 with |q| = 1."""
        projection = self.projection
        row = coords @ projection.row_basis
        if not len(projection.null_basis):  # D == C: no room but the row space
            return (row / max(np.linalg.norm(row), 1e-12)).astype(np.float32)
        null = projection.null_basis[0]
        if init is not None:
            rest = projection.null_basis.T @ (projection.null_basis @ init)
            null = rest / np.linalg.norm(rest) if np.linalg.norm(rest) > 1e-6 else null
        vector = row + np.sqrt(max(0.0, 1.0 - float(coords @ coords))) * null
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def span_example(audio: np.ndarray, sample_rate: int, start_s: float, end_s: float,
                 min_s: float = FitOptions.min_example_s, pieces: int = 4) -> tuple[np.ndarray, list[np.ndarray]]:
    """(n,) audio, a span [start_s, end_s) of it -> (the span (m,), up to `pieces` pieces of the
    rest, each m long, spread over it). OptionError-like ClipsepError for a span outside the
    audio, reversed or shorter than `min_s`."""
    duration = len(audio) / sample_rate
    span = f"span {start_s:g}-{end_s:g} s"
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        raise ClipsepError(f"{span}: give finite seconds")
    if end_s <= start_s:
        raise ClipsepError(f"{span}: the end must come after the start")
    if start_s < 0 or end_s > duration + 1e-9:
        raise ClipsepError(f"{span}: outside the input (0-{duration:.2f} s)")
    if end_s - start_s < min_s:
        raise ClipsepError(f"{span}: too short, a query needs at least {min_s:g} s of the sound")
    first, stop = int(round(start_s * sample_rate)), int(round(end_s * sample_rate))
    example = audio[first:stop]
    rest = np.concatenate([audio[:first], audio[stop:]])
    if len(rest) < sample_rate * min_s:
        raise ClipsepError(f"{span}: covers (almost) the whole input; leave some of it as the other sounds")
    size = min(len(example), len(rest))
    starts = np.linspace(0, len(rest) - size, num=pieces).astype(int)
    return example, [rest[begin:begin + size] for begin in dict.fromkeys(starts)]


def read_negatives(folder: Path, sample_rate: int) -> list[np.ndarray]:
    """The bundled other sounds (FLAC, mono) at `sample_rate`, in name order."""
    import soundfile as sf

    from clipsep_rt.io.resample import resample

    sounds = []
    for path in sorted(folder.glob("*.flac")):
        samples, rate = sf.read(path, dtype="float32", always_2d=False)
        sounds.append(resample(samples, rate, sample_rate))
    return sounds
