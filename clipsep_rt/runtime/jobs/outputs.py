"""Which files a separation writes, and under which names.

For an input `song.mp4` and queries "violin", "dog barking":
    song_violin.wav, song_dog_barking.wav          one per query (always)
    song_violin_noise1.wav, ..._noise2.wav         noise_heads (CLIPSep-NIT's noise heads)
    song_violin_residual.wav                       residual (mixture minus the selection)
    song_combined.wav (+ song_combined_residual)   combine (union of all queries' masks)
With `video`, outputs of a video input are videos with the input's extension instead.
Inputs of one batch that share a stem (song.mp3, song.wav) are told apart by their
extension: song_mp3_violin.wav, song_wav_violin.wav.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.audio_formats import AUDIO_OUTPUT_SUBTYPES


@dataclass(frozen=True)
class OutputOptions:
    noise_heads: bool = False
    residual: bool = False
    combine: bool = False
    video: bool = False  # write video inputs back as videos with the separated audio
    audio_format: str = "wav"  # "wav" (float32) or "flac" (24-bit)
    sample_rate: int | None = None  # output rate; None: the input's own rate

    def __post_init__(self) -> None:
        formats = [extension[1:] for extension in AUDIO_OUTPUT_SUBTYPES]
        if self.audio_format not in formats:
            raise OptionError("audio_format", f"must be one of {', '.join(formats)}, got {self.audio_format!r}")
        if self.sample_rate is not None and self.sample_rate < 1:
            raise OptionError("sample_rate", f"must be a positive rate in Hz (or None: the input's), got {self.sample_rate}")


@dataclass(frozen=True)
class OutputTarget:
    name: str  # suffix after the input stem, e.g. "violin_noise1"
    row: int  # row of the separator's output
    residual: bool  # write mixture - output[row] instead of output[row]


def query_slug(query: str) -> str:
    """A file-name-safe form of a query: 'Dog barking!' -> 'dog_barking'."""
    slug = re.sub(r"[^\w\-]+", "_", query.strip().lower(), flags=re.UNICODE).strip("_")
    return slug[:80] or "query"


def output_targets(query_names: list[str], noise_heads: int, options: OutputOptions) -> list[OutputTarget]:
    """Targets for separator rows laid out per query as [query, noise 1..H], then the union row."""
    slugs = [query_slug(name) for name in query_names]
    duplicated = sorted({slug for slug in slugs if slugs.count(slug) > 1})
    if duplicated:
        raise ClipsepError(f"queries give the same output name {duplicated[0]!r}: make them differ")
    rows_per_query = 1 + (noise_heads if options.noise_heads else 0)
    targets: list[OutputTarget] = []
    for index, slug in enumerate(slugs):
        row = index * rows_per_query
        targets.append(OutputTarget(slug, row, residual=False))
        if options.residual:
            targets.append(OutputTarget(f"{slug}_residual", row, residual=True))
        if options.noise_heads:
            targets += [OutputTarget(f"{slug}_noise{h}", row + h, residual=False) for h in range(1, noise_heads + 1)]
    if options.combine:
        union = len(slugs) * rows_per_query
        targets.append(OutputTarget("combined", union, residual=False))
        if options.residual:
            targets.append(OutputTarget("combined_residual", union, residual=True))
    return targets


def union_rows(query_count: int, noise_heads: int, options: OutputOptions) -> list[int] | None:
    """Separator rows whose masks make up the `combine` union, or None."""
    if not options.combine:
        return None
    rows_per_query = 1 + (noise_heads if options.noise_heads else 0)
    return [index * rows_per_query for index in range(query_count)]


def output_bases(sources: list[Path]) -> dict[Path, str]:
    """The name each input's outputs start with: its stem, plus its extension where stems clash."""
    stems = [source.stem for source in sources]
    return {
        source: f"{source.stem}_{source.suffix.lstrip('.')}" if stems.count(source.stem) > 1 else source.stem
        for source in sources
    }


def output_path(out_dir: Path, base: str, target: OutputTarget, extension: str) -> Path:
    """`extension` with its dot: the input's for video outputs, .wav or .flac for audio."""
    return out_dir / f"{base}_{target.name}{extension}"
