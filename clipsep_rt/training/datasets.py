"""Training data: random crops of indexed clips, 2-source mixtures, precomputed query embeddings.

- `ClipDataset`: a 65,535-sample random crop of a clip and, for video datasets, the 1-fps
  frame at the crop's centre. A shorter clip is zero-padded at the end, or (`place=True`,
  the v3 recipe) looped to fill the window or placed at a random offset.
- `MixtureSampler`: batches of two sources of different classes (labels; sources for
  videos) with one query per source: a label paraphrase (text) or a frame path (image).
  How classes are drawn, how loud each source is and whether overlapping classes may meet
  is its `MixRecipe` (the default reproduces the v1/v2 recipe; `MixRecipe.v3()` is the
  recipe of default model v3: tempered class sampling, sources levelled on their active
  frames and mixed at a drawn ratio, short clips looped or placed, the class hierarchy).
  In "noisy" mode each source gets an off-screen clip of another class added at a random
  SNR in [-5, 5] dB. With `augment` (training only) each source clip is augmented first. The trainer then treats source + off-screen sound as the source
  (its target mask is the noisy one) while the query still names only the source's
  class: the setting of videos in the wild that CLIPSep-NIT targets.
  With `negatives` each item also gets a negative query: a label paraphrase (or frame) of a
  class absent from its mixture, whose target is silence (the trainer's negative-query loss).
- `QueryTable`: query string (text or frame path) -> embedding, computed once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.dsp.levels import active_fraction, active_rms
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.media import load_audio
from clipsep_rt.training.augment import settings_from_dict
from clipsep_rt.query.base import ImageQueryEncoder
from clipsep_rt.training.hierarchy import classes_overlap
from clipsep_rt.training.index import Clip, read_index

DEFAULT_CLIP_SAMPLES = 65_535
DEFAULT_CACHE_BYTES = 4 << 30
SNR_RANGE_DB = (-5.0, 5.0)


def _clips(index: str | os.PathLike | Sequence[Clip]) -> list[Clip]:
    if isinstance(index, (str, os.PathLike)):
        return read_index(index)
    return list(index)


def class_key(clip: Clip) -> str:
    """The class a clip belongs to for pairing: its label, or its source for videos."""
    return clip.label if clip.label else f"source:{clip.source}"


@dataclass(frozen=True)
class ClipSample:
    samples: np.ndarray  # (clip_samples,) float32
    frame: Path | None  # the frame at the crop's centre (video datasets)
    clip: Clip


class ClipDataset:
    """Random crops of the clips of one split; decoded audio is cached up to `cache_bytes`."""

    def __init__(
        self,
        index: str | os.PathLike | Sequence[Clip],
        split: str = "train",
        clip_samples: int = DEFAULT_CLIP_SAMPLES,
        seed: int = 0,
        sample_rate: int = 16_000,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        self.clips = [clip for clip in _clips(index) if clip.split == split]
        self.split = split
        self.clip_samples = int(clip_samples)
        self.sample_rate = sample_rate
        self.rng = np.random.default_rng(seed)
        self.cache_bytes = cache_bytes
        self._cache: dict[Path, np.ndarray] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def has_frames(self) -> bool:
        return bool(self.clips) and all(clip.has_frames for clip in self.clips)

    def audio(self, clip: Clip) -> np.ndarray:
        samples = self._cache.get(clip.audio)
        if samples is None:
            samples = load_audio(clip.audio, self.sample_rate).samples
            if self._cached_bytes + samples.nbytes <= self.cache_bytes:
                self._cache[clip.audio] = samples
                self._cached_bytes += samples.nbytes
        return samples

    def sample(self, i: int, rng: np.random.Generator | None = None, place: bool = False, p_loop: float = 0.5) -> ClipSample:
        """A window of clip `i`. A longer clip gives a random crop (with `place`, the one of two
        tries where more of it sounds); a shorter one is zero-padded at the end, or with
        `place` looped to fill the window (probability `p_loop`) or put at a random offset."""
        rng = rng if rng is not None else self.rng
        clip = self.clips[i]
        audio = self.audio(clip)
        n = self.clip_samples
        if len(audio) >= n:
            start = int(rng.integers(0, len(audio) - n + 1))
            if place and active_fraction(audio[start : start + n]) < 0.5:
                other = int(rng.integers(0, len(audio) - n + 1))
                if active_fraction(audio[other : other + n]) > active_fraction(audio[start : start + n]):
                    start = other
            crop = audio[start : start + n]
            centre_s = (start + n / 2) / self.sample_rate
        elif place and len(audio) and rng.random() < p_loop:
            crop = _loop_to_fill(audio, n, rng, self.sample_rate)
            centre_s = len(audio) / 2 / self.sample_rate
        else:
            offset = int(rng.integers(0, n - len(audio) + 1)) if place else 0
            crop = np.zeros(n, dtype=np.float32)
            crop[offset : offset + len(audio)] = audio
            centre_s = len(audio) / 2 / self.sample_rate
        frame = clip.frame_path(math.floor(centre_s)) if clip.has_frames else None
        return ClipSample(np.asarray(crop, dtype=np.float32), frame, clip)

    def __getitem__(self, i: int) -> ClipSample:
        return self.sample(i)


@dataclass
class MixtureBatch:
    sources: torch.Tensor  # (B, 2, n) clean sources: the training targets
    noise: torch.Tensor | None  # (B, 2, n) off-screen noise added to each source (noisy mode)
    queries: list[list[str]]  # (B, 2) label text or frame path per source
    classes: list[list[str]]  # (B, 2) class keys (label, or source id for videos)
    negative_queries: list[str] | None = None  # (B,) a query of a class absent from the item's mixture


SAMPLING_MODES = ("classes", "clips", "tempered")
LEVEL_MODES = ("native", "balanced")


@dataclass(frozen=True)
class MixRecipe:
    """How the sampler builds a mixture beyond which classes it draws.

    levels: `native` sums sources at the levels they have (v1/v2); `balanced` scales each to
    an active-frame RMS (`dsp.levels.active_rms`): a level L is drawn from `level_dbfs` and a
    ratio R from `ratio_db` (with probability `p_wide_ratio` from `wide_ratio_db` instead), the
    first source set to L + R/2 and the others to L - R/2 dBFS (all scaled down together when
    their sum would clip). `place_short`: short clips are looped or put
    at a random offset (`ClipDataset.sample(place=True)`) instead of sitting at the window's
    start. `hierarchy`: never two overlapping classes in one mixture (`training.hierarchy`),
    and never a negative query overlapping a present class.
    """

    levels: str = "native"
    ratio_db: tuple[float, float] = (-5.0, 5.0)
    wide_ratio_db: tuple[float, float] = (-12.0, 12.0)
    p_wide_ratio: float = 0.2
    level_dbfs: tuple[float, float] = (-35.0, -15.0)
    place_short: bool = False
    p_loop: float = 0.5
    hierarchy: bool = False

    @classmethod
    def v3(cls) -> MixRecipe:
        return cls(levels="balanced", place_short=True, hierarchy=True)

    @classmethod
    def from_dict(cls, data: dict | MixRecipe | None) -> MixRecipe:
        return settings_from_dict(cls, data, "mix recipe")

    def validate(self) -> None:
        if self.levels not in LEVEL_MODES:
            raise ClipsepError(f"mix recipe: levels must be one of {', '.join(LEVEL_MODES)}, got {self.levels!r}")
        for name in ("ratio_db", "wide_ratio_db", "level_dbfs"):
            low, high = getattr(self, name)
            if low > high:
                raise ClipsepError(f"mix recipe: {name} must be (low, high) with low <= high, got {(low, high)}")
        if self.level_dbfs[1] > 0:
            raise ClipsepError(f"mix recipe: level_dbfs must be at most 0 dBFS, got {self.level_dbfs}")
        for name in ("p_wide_ratio", "p_loop"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ClipsepError(f"mix recipe: {name} must be in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


class MixtureSampler:
    """Two-source mixtures of clips of different classes, with one query per source.

    `sampling`: a class is drawn with probability proportional to its clip count raised to a
    power: 0 for `classes` (every class a target equally often), 1 for `clips` (as often as it
    has clips, as in `evaluate.make_eval_mixtures`), `class_exponent` for `tempered` (between
    the two: big classes more often, small ones not starved); then a uniform clip of it.
    Classes already in the mixture (with `recipe.hierarchy`, any class overlapping one) are
    never drawn.
    """

    def __init__(
        self, dataset: ClipDataset, batch_size: int, noisy: bool = False, seed: int = 0, sources: int = 2,
        sampling: str = "classes", augment=None, negatives: bool = False, recipe: MixRecipe | None = None,
        class_exponent: float = 0.5,
    ):
        if sampling not in SAMPLING_MODES:
            raise ClipsepError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {sampling!r}")
        if len(dataset) == 0:
            raise ClipsepError(f"no clips in the {dataset.split} split")
        self.dataset = dataset
        self.batch_size = batch_size
        self.noisy = noisy
        self.sources = sources
        self.sampling = sampling
        self.augment = augment  # training only: a callable (samples, rng) -> samples (see training.augment)
        self.negatives = negatives
        self.recipe = recipe or MixRecipe()
        self.recipe.validate()
        self.rng = np.random.default_rng(seed)
        self.query_type = "image" if dataset.has_frames else "text"
        if self.query_type == "text" and not all(clip.paraphrases for clip in dataset.clips):
            raise ClipsepError(f"{dataset.split} split: every clip needs a label (or frames) to be queried")
        self.by_class: dict[str, list[int]] = {}
        for i, clip in enumerate(dataset.clips):
            self.by_class.setdefault(class_key(clip), []).append(i)
        self.class_names = sorted(self.by_class)
        exponent = {"classes": 0.0, "clips": 1.0, "tempered": float(class_exponent)}[sampling]
        self.class_weights = np.array([len(self.by_class[c]) ** exponent for c in self.class_names], dtype=np.float64)
        self.blocks = {  # class -> the classes a mixture holding it must not draw
            name: {o for o in self.class_names if (classes_overlap(name, o) if self.recipe.hierarchy else o == name)}
            for name in self.class_names
        }
        needed = sources + (1 if noisy else 0)
        if negatives:  # a class outside the mixture and its off-screen sounds
            needed = sources + (sources if noisy else 0) + 1
        if len(self.class_names) < needed:
            raise ClipsepError(
                f"{dataset.split} split has {len(self.class_names)} class(es); mixing needs at least {needed}"
            )

    def _clip_of(self, name: str) -> int:
        members = self.by_class[name]
        return members[int(self.rng.integers(len(members)))]

    def _draw(self, present: Sequence[str]) -> tuple[str, int]:
        """(class, clip index) of a class that `present` does not block, drawn by the class weights."""
        blocked = set().union(*(self.blocks[name] for name in present)) if present else set()
        allowed = [i for i, name in enumerate(self.class_names) if name not in blocked]
        if not allowed:
            raise ClipsepError(f"{self.dataset.split} split: no class left to mix with {', '.join(present)}")
        weights = self.class_weights[allowed]
        if np.all(weights == weights[0]):  # uniform: no weights to draw by
            pick = allowed[int(self.rng.integers(len(allowed)))]
        else:
            pick = allowed[int(self.rng.choice(len(allowed), p=weights / weights.sum()))]
        name = self.class_names[pick]
        return name, self._clip_of(name)

    def _query(self, sample: ClipSample) -> str:
        if self.query_type == "image":
            return str(sample.frame)
        options = sample.clip.paraphrases
        return options[int(self.rng.integers(len(options)))]

    def _level(self, item: np.ndarray) -> np.ndarray:
        """(S, n) sources scaled to a drawn mixture level, the first source at a drawn ratio
        to the others (active-frame RMS); a silent source stays silent, and the whole item is
        scaled down together when its sum would clip."""
        recipe = self.recipe
        wide = self.rng.random() < recipe.p_wide_ratio
        ratio = self.rng.uniform(*(recipe.wide_ratio_db if wide else recipe.ratio_db))
        level = self.rng.uniform(*recipe.level_dbfs)
        offsets = np.full(len(item), -ratio / 2)
        offsets[0] = ratio / 2
        out = np.zeros_like(item)
        for s, source in enumerate(item):
            rms = active_rms(source)
            if rms > 0:
                out[s] = source * np.float32(10 ** ((level + offsets[s]) / 20) / rms)
        peak = float(np.max(np.abs(out.sum(axis=0)), initial=0.0))
        return out * np.float32(0.99 / peak) if peak > 0.99 else out

    def sample(self) -> MixtureBatch:
        n = self.dataset.clip_samples
        sources = np.zeros((self.batch_size, self.sources, n), dtype=np.float32)
        noise = np.zeros_like(sources) if self.noisy else None
        queries, classes, negatives = [], [], []
        for b in range(self.batch_size):
            picks: list[tuple[str, int]] = []
            for _ in range(self.sources):
                picks.append(self._draw([name for name, _ in picks]))
            chosen = [name for name, _ in picks]
            item_queries, noise_classes = [], []
            for s, (_, clip) in enumerate(picks):
                sample = self.dataset.sample(clip, self.rng, self.recipe.place_short, self.recipe.p_loop)
                sources[b, s] = sample.samples if self.augment is None else self.augment(sample.samples, self.rng)
                item_queries.append(self._query(sample))
            if self.recipe.levels == "balanced":
                sources[b] = self._level(sources[b])
                if noise is not None:
                    noise_class, noise_clip = self._draw(chosen)
                    noise_classes.append(noise_class)
                    off = self.dataset.sample(noise_clip, self.rng).samples
                    noise[b, s] = _scale_to_snr(sample.samples, off, self.rng.uniform(*SNR_RANGE_DB))
            queries.append(item_queries)
            classes.append(chosen)
            if self.negatives:
                absent = self._draw([*chosen, *noise_classes])[1]
                negatives.append(self._query(self.dataset.sample(absent, self.rng)))
        return MixtureBatch(
            torch.from_numpy(sources), None if noise is None else torch.from_numpy(noise), queries, classes,
            negatives if self.negatives else None,
        )


def _loop_to_fill(audio: np.ndarray, n: int, rng: np.random.Generator, sample_rate: int, max_gap_s: float = 0.25) -> np.ndarray:
    """`audio` repeated with random gaps (0..max_gap_s) until `n` samples are filled, entering
    at a random point of its first repetition."""
    pieces, total = [], 0
    while total < n + len(audio):
        gap = np.zeros(int(rng.uniform(0, max_gap_s) * sample_rate), dtype=np.float32)
        pieces += [audio, gap]
        total += len(audio) + len(gap)
    tiled = np.concatenate(pieces)
    start = int(rng.integers(0, len(audio)))
    return tiled[start : start + n]


def _scale_to_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`noise` scaled so that 10 log10(P_signal / P_noise) = snr_db (unchanged when silent)."""
    p_signal = float(np.mean(signal.astype(np.float64) ** 2))
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    if p_signal <= 0 or p_noise <= 0:
        return np.zeros_like(noise)
    return (noise * math.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))).astype(np.float32)


# ---------------------------------------------------------------------------- queries


class QueryTable:
    """Query key (label text, or frame path) -> (D,) embedding, held as one tensor."""

    def __init__(self, keys: Sequence[str], embeddings: np.ndarray, encoder_id: str | None = None):
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(keys):
            raise ValueError(f"expected ({len(keys)}, D) embeddings, got {embeddings.shape}")
        self.keys = list(keys)
        self.row = {key: i for i, key in enumerate(self.keys)}
        self.table = torch.from_numpy(embeddings)
        self.encoder_id = encoder_id

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def lookup(self, queries: Sequence[Sequence[str]]) -> torch.Tensor:
        """(B, S) keys -> (B, S, D) float32 embeddings."""
        try:
            rows = [[self.row[q] for q in item] for item in queries]
        except KeyError as error:
            raise ClipsepError(f"query {error.args[0]!r} has no precomputed embedding") from None
        return self.table[torch.tensor(rows, dtype=torch.long)]

    @classmethod
    def for_texts(cls, clips: Sequence[Clip], encoder=None, spec: str | None = None, options=None, device: str = "cpu"):
        """All labels and paraphrases of `clips`, embedded by `text_embedder(encoder, spec, ...)`."""
        texts = sorted({text for clip in clips for text in clip.paraphrases})
        if not texts:
            raise ClipsepError("no labels to embed: text queries need a label column")
        embed, encoder_id = text_embedder(encoder, spec, options, device)
        return cls(texts, embed(texts), encoder_id)

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> QueryTable:
        with np.load(path, allow_pickle=False) as data:
            encoder_id = str(data["encoder_id"]) if "encoder_id" in data else None
            return cls([str(k) for k in data["keys"]], data["embeddings"], encoder_id or None)


def text_embedder(encoder=None, spec: str | None = None, options=None, device: str = "cpu"):
    """(embed, encoder_id): `embed(texts) -> (len(texts), D) float32` by an injected encoder
    (its `encode_text`, no templates) or by one QueryEmbedder(spec) (templates and cache), built
    once so that later texts (the dev set's paraphrases) are embedded the same way."""
    if encoder is not None:
        return (lambda texts: np.asarray(encoder.encode_text(list(texts)), dtype=np.float32)), getattr(encoder, "encoder_id", None)
    from clipsep_rt.query.embedder import QueryEmbedder, QueryEncoderOptions

    embedder = QueryEmbedder(spec, options or QueryEncoderOptions(), device)
    return (lambda texts: embedder.embed_text(list(texts))), embedder.encoder_id


def _frame_keys(index) -> list[str]:
    clips = _clips(index)
    keys = sorted({str(clip.frame_path(i)) for clip in clips if clip.has_frames for i in range(clip.frame_count)})
    if not keys:
        raise ClipsepError("no frames to embed: image queries need a frames column")
    return keys


def load_frame_embeddings(index, path: str | os.PathLike, encoder_id: str) -> QueryTable | None:
    """The frame embeddings in `path` when it holds every frame of `index` embedded by
    `encoder_id`; None when the file is missing, incomplete or from another encoder."""
    return _cached_frame_table(Path(path), _frame_keys(index), encoder_id)


def _cached_frame_table(path: Path, keys: Sequence[str], encoder_id: str) -> QueryTable | None:
    if not path.is_file():
        return None
    table = QueryTable.from_npz(path)
    if set(keys) <= set(table.row) and (table.encoder_id or "") == (encoder_id or ""):
        return table
    return None


def precompute_frame_embeddings(
    index: str | os.PathLike | Sequence[Clip],
    encoder: ImageQueryEncoder,
    out: str | os.PathLike,
    batch_size: int = 64,
) -> QueryTable:
    """CLIP image embeddings of every frame of every clip, saved to `out` (.npz with
    `keys` = absolute frame paths, `embeddings` (N, D) float32, `encoder_id`), so training
    never runs CLIP. An existing `out` holding all the frames is reused."""
    from clipsep_rt.query.images import load_image

    keys = _frame_keys(index)
    out = Path(out)
    encoder_id = getattr(encoder, "encoder_id", "") or ""
    cached = _cached_frame_table(out, keys, encoder_id)
    if cached is not None:
        return cached
    rows = []
    for start in range(0, len(keys), batch_size):
        images = [load_image(Path(key)) for key in keys[start : start + batch_size]]
        rows.append(np.asarray(encoder.encode_image(images), dtype=np.float32))
    embeddings = np.concatenate(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out, overwrite=True) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, keys=np.array(keys), embeddings=embeddings, encoder_id=np.array(encoder_id))
    return QueryTable(keys, embeddings, encoder_id or None)
