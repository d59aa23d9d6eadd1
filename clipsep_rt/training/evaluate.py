"""Evaluation on fixed two-source test mixtures: text query of the target label, BSS Eval v4.

    mixtures = make_eval_mixtures("data/index.csv", split="test", count=500, seed=0)
    write_mixture_list(mixtures, "mixtures.json")       # so runs are comparable
    report = evaluate(Separator.from_checkpoint("model.safetensors"), mixtures, query_mode="label")
    print(report_markdown(report))

A mixture is a target clip plus an interference clip of a different label, both cropped to
65,535 samples (at 16 kHz) from the middle (zero-padded if shorter), summed with unit gains.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.fileio import atomic_output
from clipsep_rt.training.metrics import separation_metrics

SAMPLE_RATE = 16000
CROP_SAMPLES = 65535
METRICS = ("sdr", "sir", "sar", "sdri", "si_sdr", "si_sdri")


@dataclass(frozen=True)
class EvalMixture:
    index: int
    target_audio: str  # resolved path
    target_labels: tuple[str, ...]  # canonical first, then paraphrases
    interference_audio: str
    interference_labels: tuple[str, ...]
    crop_samples: int = CROP_SAMPLES

    @property
    def target_label(self) -> str:
        return self.target_labels[0]

    @property
    def interference_label(self) -> str:
        return self.interference_labels[0]


@dataclass
class EvalReport:
    query_mode: str
    separator: str
    rows: list[dict]  # per mixture: index, target/interference label and audio, the METRICS
    overall: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> {n, mean, sem, median}
    per_class: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # label -> metric -> ...

    @property
    def count(self) -> int:
        return len(self.rows)


# ------------------------------------------------------------------------- mixtures


def _read_index_rows(index) -> list[dict]:
    """Rows (audio resolved, labels split) of an index CSV path, or of given dicts/objects."""
    if isinstance(index, (str, Path)):
        path = Path(index)
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                raw = list(csv.DictReader(handle))
        except OSError as exc:
            raise ClipsepError(f"{path}: cannot read the dataset index ({exc.strerror or exc})") from None
        base = path.parent
    else:
        raw, base = list(index), None
    rows = []
    for entry in raw:
        get = entry.get if isinstance(entry, Mapping) else lambda key, e=entry: getattr(e, key, None)
        audio, label, split = get("audio"), get("label"), get("split")
        if audio is None or label is None:
            raise ClipsepError("dataset index rows need 'audio' and 'label'")
        labels = tuple(part.strip() for part in str(label).split("|") if part.strip())
        if not labels:
            continue
        audio_path = Path(audio)
        if base is not None and not audio_path.is_absolute():
            audio_path = base / audio_path
        rows.append({"audio": str(audio_path), "labels": labels, "split": str(split or "")})
    return rows


def make_eval_mixtures(index, split: str = "test", count: int = 100, seed: int = 0) -> list[EvalMixture]:
    """`count` fixed (target, interference) pairs from `split`; the same for the same index and seed.

    Targets go through a seeded permutation of the split's clips (repeated if `count` is larger);
    each interference is drawn uniformly from clips whose canonical label differs.
    """
    rows = sorted((r for r in _read_index_rows(index) if r["split"] == split), key=lambda r: (r["audio"], r["labels"]))
    if len({r["labels"][0] for r in rows}) < 2:
        raise ClipsepError(f"split {split!r} needs clips of at least two labels to make mixtures, found {len(rows)} clips")
    if count < 1:
        raise ClipsepError("count must be at least 1")
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < count:
        order.extend(rng.permutation(len(rows)).tolist())
    mixtures = []
    for i, t in enumerate(order[:count]):
        target = rows[t]
        others = [r for r in rows if r["labels"][0] != target["labels"][0]]
        other = others[int(rng.integers(len(others)))]
        mixtures.append(EvalMixture(i, target["audio"], target["labels"], other["audio"], other["labels"]))
    return mixtures


def write_mixture_list(mixtures: Sequence[EvalMixture], path: str | Path, overwrite: bool = True) -> None:
    """The mixtures as JSON (atomically)."""
    data = {"sample_rate": SAMPLE_RATE, "crop": "middle", "mixtures": [asdict(m) for m in mixtures]}
    with atomic_output(path, overwrite=overwrite) as temp:
        temp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def read_mixture_list(path: str | Path) -> list[EvalMixture]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        EvalMixture(**{**m, "target_labels": tuple(m["target_labels"]), "interference_labels": tuple(m["interference_labels"])})
        for m in data["mixtures"]
    ]


def middle_crop(samples: np.ndarray, length: int = CROP_SAMPLES) -> np.ndarray:
    """`length` samples from the middle of `samples`, zero-padded at the end if shorter."""
    samples = np.asarray(samples, dtype=np.float32)
    start = max(0, (len(samples) - length) // 2)
    out = np.zeros(length, dtype=np.float32)
    piece = samples[start:start + length]
    out[: len(piece)] = piece
    return out


def load_mixture(mixture: EvalMixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target, interference, mixture) crops, float32 (crop_samples,) at 16 kHz."""
    from clipsep_rt.runtime.audio_io import load_audio

    target = middle_crop(load_audio(mixture.target_audio, SAMPLE_RATE).samples, mixture.crop_samples)
    interference = middle_crop(load_audio(mixture.interference_audio, SAMPLE_RATE).samples, mixture.crop_samples)
    return target, interference, target + interference


# ------------------------------------------------------------------------- evaluation


def _query_vector(separator, labels: tuple[str, ...], query_mode: str) -> np.ndarray:
    if query_mode == "label":
        return separator.embed_text([labels[0]])[0]
    if query_mode == "ensemble":
        from clipsep_rt.query.prompts import combine_prompt_embeddings

        previous = separator.encoder
        separator.encoder = replace(previous, prompt_ensemble=True)
        try:
            rows = separator.embed_text(list(labels))
        finally:
            separator.encoder = previous
        return combine_prompt_embeddings(np.asarray(rows, dtype=np.float32)).astype(np.float32)
    raise ClipsepError(f"query mode must be 'label' or 'ensemble', got {query_mode!r}")


def evaluate(separator, mixtures: Sequence[EvalMixture], query_mode: str = "label",
             log: Callable[[str], None] | None = None) -> EvalReport:
    """Separate each mixture by the text of its target label and score the estimate.

    `label`: the canonical label with the separator's prompt; `ensemble`: the normalised mean over
    the label's paraphrases, each embedded with the prompt-template ensemble.
    """
    if query_mode not in ("label", "ensemble"):
        raise ClipsepError(f"query mode must be 'label' or 'ensemble', got {query_mode!r}")
    queries: dict[tuple[str, ...], np.ndarray] = {}
    rows = []
    for number, mixture in enumerate(mixtures, 1):
        target, interference, mix = load_mixture(mixture)
        if mixture.target_labels not in queries:
            queries[mixture.target_labels] = _query_vector(separator, mixture.target_labels, query_mode)
        name = mixture.target_label
        estimate = separator.separate(mix, SAMPLE_RATE, embeddings={name: queries[mixture.target_labels]}).sources[name]
        scores = separation_metrics(estimate, target, interference, mix)
        row = {
            "index": mixture.index,
            "target_label": name,
            "interference_label": mixture.interference_label,
            "target_audio": mixture.target_audio,
            "interference_audio": mixture.interference_audio,
            **{key: float(value) for key, value in scores._asdict().items()},
        }
        rows.append(row)
        if log is not None:
            log(f"[{number}/{len(mixtures)}] {name} vs {mixture.interference_label}: "
                f"SDR {row['sdr']:.2f} dB, SDRi {row['sdri']:.2f} dB")
    report = EvalReport(query_mode=query_mode, separator=getattr(separator, "name", "separator"), rows=rows)
    report.overall = summarise(rows)
    for label in sorted({row["target_label"] for row in rows}):
        report.per_class[label] = summarise([row for row in rows if row["target_label"] == label])
    return report


def summary_stats(values: Iterable[float]) -> dict[str, float]:
    """n, mean, SEM (sample std with ddof=1 over sqrt(n); NaN for n < 2) and median of the finite values."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    n = len(finite)
    if n == 0:
        return {"n": 0, "mean": math.nan, "sem": math.nan, "median": math.nan}
    sem = float(finite.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": float(finite.mean()), "sem": sem, "median": float(np.median(finite))}


def summarise(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    return {metric: summary_stats(row[metric] for row in rows) for metric in METRICS}


# ------------------------------------------------------------------------- rendering

_TITLES = {"sdr": "SDR", "sir": "SIR", "sar": "SAR", "sdri": "SDRi", "si_sdr": "SI-SDR", "si_sdri": "SI-SDRi"}


def _cell(stats: Mapping[str, float]) -> str:
    if not stats["n"]:
        return "—"
    sem = "" if math.isnan(stats["sem"]) else f" ± {stats['sem']:.2f}"
    return f"{stats['mean']:.2f}{sem} ({stats['median']:.2f})"


def report_markdown(report: EvalReport) -> str:
    header = "| | n | " + " | ".join(_TITLES[m] for m in METRICS) + " |"
    rule = "|---|---:|" + "---:|" * len(METRICS)

    def line(name: str, summary: Mapping) -> str:
        n = max(summary[m]["n"] for m in METRICS)
        return f"| {name} | {n} | " + " | ".join(_cell(summary[m]) for m in METRICS) + " |"

    lines = [
        f"# Evaluation of {report.separator}",
        "",
        f"{report.count} mixtures, query mode `{report.query_mode}`; BSS Eval v4 over the whole signal, dB; "
        "mean ± SEM (median).",
        "",
        header,
        rule,
        line("**all**", report.overall),
    ]
    lines += [line(label.replace("|", "\\|"), summary) for label, summary in report.per_class.items()]
    return "\n".join(lines) + "\n"


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def report_json(report: EvalReport) -> str:
    """The report as strict JSON (non-finite numbers as null)."""
    data = {
        "separator": report.separator,
        "query_mode": report.query_mode,
        "count": report.count,
        "metrics": list(METRICS),
        "overall": report.overall,
        "per_class": report.per_class,
        "mixtures": report.rows,
    }
    return json.dumps(_json_safe(data), indent=1, allow_nan=False) + "\n"
