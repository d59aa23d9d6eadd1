"""Which files a separation writes, and under which names.

For an input `song.mp4` and queries "violin", "dog barking":
    song_violin.wav, song_dog_barking.wav          one per query (always)
    song_violin_noise1.wav, ..._noise2.wav         noise_heads (CLIPSep-NIT's noise heads)
    song_violin_residual.wav                       residual (mixture minus the selection)
    song_combined.wav (+ song_combined_residual)   combine (union of all queries' masks)
    song_violin_without_speech.wav                 with exclusion "speech" (runtime.exclusion)
    song_all_but_speech.wav                        exclusion "speech" and no query: everything but it
With `video`, outputs of a video input are videos with the input's extension instead.

A name depends only on the input itself, never on the other inputs of the batch, so a
re-run finds the same names: `{stem}_{target}`, below the input's own subfolders when it
was found in a folder the user named (or by a glob): clips/drums/take1.wav from clips/ ->
drums/take1_violin.wav. Two inputs that would still get the same name (song.wav beside
song.flac) are a clash the batch refuses for the later input, rather than renaming either.
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
    mono: bool = False  # downmix to mono; else outputs keep the input's channels

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


def output_base(source: Path, roots: list[Path]) -> Path:
    """The name an input's outputs start with, relative to the output folder: its stem, below
    its subfolders inside the innermost root holding it (see `io.inputs.input_roots`)."""
    resolved = source.resolve()
    holders = [root.resolve() for root in roots if resolved.is_relative_to(root.resolve())]
    folder = resolved.parent.relative_to(max(holders, key=lambda root: len(root.parts))) if holders else Path()
    return folder / source.stem


def output_path(out_dir: Path, base: Path, target: OutputTarget, extension: str) -> Path:
    """`extension` with its dot: the input's for video outputs, .wav or .flac for audio."""
    return out_dir / base.parent / f"{base.name}_{target.name}{extension}"
