"""Training data: random crops of indexed clips, 2-source mixtures, precomputed query embeddings.

- `ClipDataset`: a 65,535-sample random crop of a clip (zero-padded when shorter) and, for
  video datasets, the 1-fps frame at the crop's centre.
- `MixtureSampler`: batches of two sources of different classes (labels; sources for
  videos) with one query per source: a label paraphrase (text) or a frame path (image).
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

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.io.media import load_audio
from clipsep_rt.query.base import ImageQueryEncoder
from clipsep_rt.training.index import Clip, read_index

DEFAULT_CLIP_SAMPLES = 65_535
DEFAULT_CACHE_BYTES = 2 << 30
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

    def sample(self, i: int, rng: np.random.Generator | None = None) -> ClipSample:
        rng = rng if rng is not None else self.rng
        clip = self.clips[i]
        audio = self.audio(clip)
        n = self.clip_samples
        if len(audio) >= n:
            start = int(rng.integers(0, len(audio) - n + 1))
            crop = audio[start : start + n]
            centre_s = (start + n / 2) / self.sample_rate
        else:
            crop = np.zeros(n, dtype=np.float32)
            crop[: len(audio)] = audio
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


SAMPLING_MODES = ("classes", "clips")


class MixtureSampler:
    """Two-source mixtures of clips of different classes, with one query per source.

    `sampling`: `classes` draws each source's class uniformly (every class is a target equally
    often); `clips` draws each source uniformly among the clips of the classes not yet in the
    mixture, so classes are targets as often as they have clips, as in the evaluation's
    mixtures (`evaluate.make_eval_mixtures`).
    """

    def __init__(
        self, dataset: ClipDataset, batch_size: int, noisy: bool = False, seed: int = 0, sources: int = 2,
        sampling: str = "classes", augment=None, negatives: bool = False,
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
        self.rng = np.random.default_rng(seed)
        self.query_type = "image" if dataset.has_frames else "text"
        if self.query_type == "text" and not all(clip.paraphrases for clip in dataset.clips):
            raise ClipsepError(f"{dataset.split} split: every clip needs a label (or frames) to be queried")
        self.by_class: dict[str, list[int]] = {}
        for i, clip in enumerate(dataset.clips):
            self.by_class.setdefault(class_key(clip), []).append(i)
        self.class_names = sorted(self.by_class)
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

    def _draw(self, exclude: Sequence[str]) -> tuple[str, int]:
        """(class, clip index) of a class not in `exclude`: a uniform class then a uniform clip
        of it (`classes`), or a uniform clip among those classes' clips (`clips`)."""
        names = [c for c in self.class_names if c not in exclude]
        if self.sampling == "classes":
            name = names[int(self.rng.integers(len(names)))]
            return name, self._clip_of(name)
        members = [(name, clip) for name in names for clip in self.by_class[name]]
        return members[int(self.rng.integers(len(members)))]

    def _query(self, sample: ClipSample) -> str:
        if self.query_type == "image":
            return str(sample.frame)
        options = sample.clip.paraphrases
        return options[int(self.rng.integers(len(options)))]

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
                sample = self.dataset.sample(clip, self.rng)
                sources[b, s] = sample.samples if self.augment is None else self.augment(sample.samples, self.rng)
                item_queries.append(self._query(sample))
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
        """All labels and paraphrases of `clips`, embedded by an injected encoder (its
        `encode_text`, no templates) or by QueryEmbedder(spec) (templates and cache)."""
        texts = sorted({text for clip in clips for text in clip.paraphrases})
        if not texts:
            raise ClipsepError("no labels to embed: text queries need a label column")
        if encoder is not None:
            return cls(texts, encoder.encode_text(texts), getattr(encoder, "encoder_id", None))
        from clipsep_rt.query.embedder import QueryEmbedder, QueryEncoderOptions

        embedder = QueryEmbedder(spec, options or QueryEncoderOptions(), device)
        return cls(texts, embedder.embed_text(texts), embedder.encoder_id)

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> QueryTable:
        with np.load(path, allow_pickle=False) as data:
            encoder_id = str(data["encoder_id"]) if "encoder_id" in data else None
            return cls([str(k) for k in data["keys"]], data["embeddings"], encoder_id or None)


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
