"""Build a report folder: separate each input again in memory, then write sounds, pictures, page.

Layout of the folder (all links relative):

    DIR/index.html
    DIR/01-song/mixture.{png,wav}  reference.*  interference.*
    DIR/01-song/q1-violin.{png,wav}  q1-violin-noise1.*  q1-violin-noise2.*

Everything is at the model's rate (16 kHz mono): the pictures and sounds are what the
network hears. Every file is written atomically; existing files are refused (checked before
anything is separated) unless `overwrite`. The page is written last, so it never links a
file that is not there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipsep_rt.dsp.metrics import energy_ratio_db
from clipsep_rt.dsp.presence import PRESENCE_THRESHOLD, GateOptions
from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.optional import import_optional
from clipsep_rt.io.media import load_audio, write_audio_atomic
from clipsep_rt.jobs.outputs import query_slug
from clipsep_rt.report.page import InputResult, QueryResult, ReportPage, Signal, render_page
from clipsep_rt.report.spectrogram import LogSpectrogram, colour_range, render_png

if TYPE_CHECKING:
    from clipsep_rt.api import Queries, Separator

INDEX = "index.html"
LENGTH_TOLERANCE = 1  # samples at the model rate: files of different rates may round differently


@dataclass(frozen=True)
class GroundTruth:
    """Files given with the (single) input: the first query's true source, the other source."""

    reference: Path | None = None
    interference: Path | None = None

    def __bool__(self) -> bool:
        return self.reference is not None or self.interference is not None


@dataclass(frozen=True)
class _Planned:
    """One signal to write: its label in the page and its file stem inside the report folder."""

    label: str
    stem: str  # e.g. "01-song/q1-violin"


class ReportJob:
    """A report planned before any separation: inputs, queries, and the files they give.

    `queries`: as the batch separates them (`Separator.queries`): text, image, vector or fitted
    queries, with their exclusions; each output is shown under its label ("violin without
    speech", "all but speech"). The model's noise heads are shown too, when the queries have
    no exclusions (exclusions combine query masks; the noise heads have none).

    `gate`: the batch's --gate, so that the report plays and scores what the batch wrote.

    Construction checks everything that can fail early (matplotlib, existing files, the
    ground truth files and their length); `write` then separates and writes.
    """

    def __init__(
        self,
        out_dir: Path,
        separator: "Separator",
        inputs: Sequence[Path],
        queries: "Queries",
        ground_truth: GroundTruth = GroundTruth(),
        overwrite: bool = False,
        gate: GateOptions | None = None,
    ):
        import_optional("matplotlib", "report")
        if ground_truth:
            import_optional("scipy", "report")  # BSS Eval (SDRi)
        if ground_truth and len(inputs) != 1:
            raise ClipsepError(f"--reference/--interference go with exactly one input, got {len(inputs)}")
        self.out_dir = Path(out_dir)
        self.separator = separator
        self.rate = separator.sample_rate
        self.inputs = list(inputs)
        if separator.noise_heads and not queries.noise_heads and not queries.excluded:
            # all the model's noise heads, whether or not the batch writes them
            queries = separator.prepare_queries(queries.names, queries.embeddings, noise_heads=True)
        self.queries = queries
        self.query_names = queries.labels  # (outputs,) as shown and in file names
        self.noise_heads = queries.noise_heads
        self.ground_truth = ground_truth
        self.overwrite = overwrite
        self.gate = gate
        self.folders = {source: f"{index:02d}-{query_slug(source.stem)}" for index, source in enumerate(self.inputs, 1)}
        self._check_paths()
        self.truth = self._load_ground_truth() if ground_truth else {}

    # -- planning --------------------------------------------------------------------------

    def plan(self, source: Path) -> tuple[list[_Planned], list[list[_Planned]]]:
        """(input-level signals, per query [prediction, noise heads]) of one input."""
        folder = self.folders[source]
        signals = [_Planned("Mixture", f"{folder}/mixture")]
        if self.ground_truth.reference:
            signals.append(_Planned("Ground truth", f"{folder}/reference"))
        if self.ground_truth.interference:
            signals.append(_Planned("Interference", f"{folder}/interference"))
        queries = []
        for number, name in enumerate(self.query_names, 1):
            stem = f"{folder}/q{number}-{query_slug(name)}"
            queries.append([_Planned("Prediction", stem)]
                           + [_Planned(f"Noise head {h}", f"{stem}-noise{h}") for h in range(1, self.noise_heads + 1)])
        return signals, queries

    def paths(self) -> list[Path]:
        """Every file the report writes."""
        paths = [self.out_dir / INDEX]
        for source in self.inputs:
            signals, queries = self.plan(source)
            for planned in [*signals, *(p for query in queries for p in query)]:
                paths += [self.out_dir / f"{planned.stem}.png", self.out_dir / f"{planned.stem}.wav"]
        return paths

    def _check_paths(self) -> None:
        protected = {source.resolve() for source in self.inputs}
        protected |= {path.resolve() for path in (self.ground_truth.reference, self.ground_truth.interference) if path}
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ClipsepError(f"--report {self.out_dir}: not a directory")
        for path in self.paths():
            if path.resolve() in protected:
                raise ClipsepError(f"{path}: the report would overwrite an input file; choose another --report directory")
            if path.exists() and not self.overwrite:
                raise ClipsepError(f"{path}: report file already exists (use --overwrite to replace it)")

    def _load_ground_truth(self) -> dict[str, np.ndarray]:
        """{'reference'|'interference': (n,) float32 at the model rate}, each the input's length,
        or a ClipsepError naming the file."""
        rate = self.rate
        length = len(load_audio(self.inputs[0], rate, min_samples=0).samples)
        truth = {}
        for key, path in (("reference", self.ground_truth.reference), ("interference", self.ground_truth.interference)):
            if path is None:
                continue
            if not Path(path).is_file():
                raise ClipsepError(f"--{key} {path}: no such file")
            samples = load_audio(path, rate, min_samples=1).samples
            if abs(len(samples) - length) > LENGTH_TOLERANCE:
                raise ClipsepError(
                    f"--{key} {path}: {len(samples) / rate:.3f} s ({len(samples)} samples at {rate} Hz), but the input "
                    f"{self.inputs[0]} is {length / rate:.3f} s ({length} samples): it must have the input's length"
                )
            truth[key] = _fit(samples, length)
        return truth

    # -- writing ---------------------------------------------------------------------------

    def write(self, sources: Sequence[Path]) -> list[Path]:
        """Separate `sources` (some of the planned inputs) by the queries; write their files, then
        the page. Returns the files written."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        queries = self.queries
        written: list[Path] = []
        results = []
        for source in sources:
            result, files = self._write_input(source, queries)
            results.append(result)
            written += files
        spectral = self.separator.spectral
        notes = [
            f"Sounds and pictures are at the model's rate ({self.rate} Hz mono): what the network hears. "
            f"Spectrograms use the model's own {spectral.log_freq_bins}-bin log-frequency warp "
            f"(STFT {spectral.n_fft}, hop {spectral.hop_length}), in dB full scale (a full-scale sine peaks at 0 dB).",
        ]
        page = ReportPage(model=self.separator.describe(), inputs=results, notes=notes)
        index = self.out_dir / INDEX
        with atomic_output(index, self.overwrite) as temp:
            temp.write_text(render_page(page), encoding="utf-8")
        return [*written, index]

    def _separate(self, mixture: np.ndarray, queries: "Queries") -> tuple[list[np.ndarray], list[np.ndarray], list[list[float]]]:
        """(n,) mixture -> (per query its (n,) prediction, per query its (H, n) noise heads, per
        query its presence score per second)."""
        names, no_heads = queries.names, np.zeros((0, len(mixture)), np.float32)
        if not len(mixture):  # an empty input (the batch writes empty outputs for it too)
            return ([mixture.copy() for _ in names], [np.zeros((queries.noise_heads, 0), np.float32) for _ in names],
                    [[] for _ in names])
        separation = self.separator.separate(mixture, self.rate, queries, gate=self.gate or False)
        return ([separation.sources[name] for name in names], [separation.noise.get(name, no_heads) for name in names],
                [separation.presence[name].tolist() for name in names])

    def _write_input(self, source: Path, queries: "Queries") -> tuple[InputResult, list[Path]]:
        mixture = load_audio(source, self.rate, min_samples=0).samples  # (n,): the mono mixture the network hears
        predictions, noise, presence = self._separate(mixture, queries)
        planned_inputs, planned_queries = self.plan(source)
        audio = {planned_inputs[0].stem: mixture}
        for planned in planned_inputs[1:]:
            audio[planned.stem] = self.truth[planned.stem.rsplit("/", 1)[1]]
        for planned, prediction, heads in zip(planned_queries, predictions, noise, strict=True):
            audio[planned[0].stem] = prediction
            for head_plan, head in zip(planned[1:], heads, strict=True):
                audio[head_plan.stem] = head
        spectrogram = LogSpectrogram(self.separator.spectral)
        images = {stem: spectrogram(samples) for stem, samples in audio.items()}  # (256, frames) dB each
        vmin, vmax = colour_range(list(images.values()))
        written = []
        labels = {p.stem: p.label for p in [*planned_inputs, *(p for q in planned_queries for p in q)]}
        for stem, samples in audio.items():
            written.append(self._write_wav(stem, samples))
            written.append(self._write_png(stem, images[stem], vmin, vmax, labels[stem]))
        queries = [
            QueryResult(name, [_signal(p) for p in planned], *self._metrics(mixture, prediction), presence=scores,
                        presence_threshold=self.gate.threshold if self.gate else PRESENCE_THRESHOLD)
            for name, planned, prediction, scores in zip(self.query_names, planned_queries, predictions, presence, strict=True)
        ]
        result = InputResult(
            name=str(source), duration_s=len(mixture) / self.rate, signals=[_signal(p) for p in planned_inputs],
            queries=queries, colour_range_db=(vmin, vmax),
            reference_query=self.query_names[0] if "reference" in self.truth else None,
        )
        return result, written

    def _metrics(self, mixture: np.ndarray, prediction: np.ndarray) -> tuple[float, float | None, float | None]:
        """(output energy vs mixture dB, SDR, SDRi) of one query's prediction; SDR(i) only with a reference."""
        energy = energy_ratio_db(prediction, mixture, floor_db=-math.inf)
        reference = self.truth.get("reference")
        if reference is None:
            return energy, None, None
        from clipsep_rt.dsp.metrics import separation_metrics

        interference = self.truth.get("interference", mixture - reference)
        metrics = separation_metrics(prediction, reference, interference, mixture)
        return energy, metrics.sdr, metrics.sdri

    def _write_wav(self, stem: str, samples: np.ndarray) -> Path:
        path = self.out_dir / f"{stem}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio_atomic(path, samples, self.rate, subtype="PCM_16", overwrite=self.overwrite)
        return path

    def _write_png(self, stem: str, db: np.ndarray, vmin: float, vmax: float, label: str) -> Path:
        path = self.out_dir / f"{stem}.png"
        with atomic_output(path, self.overwrite) as temp:
            render_png(db, temp, vmin, vmax, label, self.separator.spectral)
        return path


def _signal(planned: _Planned) -> Signal:
    return Signal(planned.label, f"{planned.stem}.png", f"{planned.stem}.wav")


def _fit(samples: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad (n,) to `length` (differences of a rounding sample only)."""
    if len(samples) >= length:
        return samples[:length]
    return np.pad(samples, (0, length - len(samples)))
