"""Evaluation on fixed two-source test mixtures: text query of the target label, BSS Eval v4.

    mixtures = make_eval_mixtures("data/index.csv", split="test", count=500, seed=0)
    write_mixture_list(mixtures, "mixtures.json")       # so runs are comparable
    report = evaluate(Separator.from_checkpoint("model.safetensors"), mixtures, query_mode="label")
    print(report_markdown(report))

A mixture is a target clip plus an interference clip of a different label, both cropped to
65,535 samples (at 16 kHz) from the middle (zero-padded if shorter), summed with unit gains.

What a mixture is queried with is a query strategy (`candidates(mixture)` -> named vectors):

- `TextQueries` (the default): the target label's text (`label`) or its prompt ensemble;
- `ClassVectorQueries`: LabelSep, one learned vector per class (`best.queries.npz`);
- `OracleQueries`: PIT, every output is a candidate and the one with the best SDR against the
  target is kept (the CLIPSep paper's oracle post-selection).

    pit = query_vector_strategy("pit/best.queries.npz", oracle=True)    # an OracleQueries
    report = evaluate(Separator.from_checkpoint("pit/best.safetensors"), mixtures, queries=pit)

Robustness to the query's wording is measured by `training.query_variants`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.dsp.metrics import separation_metrics

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CROP_SAMPLES = 65535
METRICS = ("sdr", "sir", "sar", "sdri", "si_sdr", "si_sdri")
INPUT_SDR_BINS = (  # (name, low, high) in dB, low inclusive
    ("below -10 dB", -math.inf, -10.0),
    ("-10 to -3 dB", -10.0, -3.0),
    ("-3 to 3 dB", -3.0, 3.0),
    ("3 to 10 dB", 3.0, 10.0),
    ("10 dB and above", 10.0, math.inf),
)


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

    @property
    def class_balanced(self) -> dict[str, dict[str, float]]:
        """metric -> summary over the per-class means (n = classes): every class weighs the same."""
        return {
            metric: summary_stats(summary[metric]["mean"] for summary in self.per_class.values())
            for metric in METRICS
        }

    @property
    def by_input_sdr(self) -> dict[str, dict[str, dict[str, float]]]:
        """Bin name -> metric -> summary, the rows grouped by the mixture's own SDR against the
        target (SDR - SDRi): SDRi depends strongly on how loud the target already is."""
        bins = {}
        for name, low, high in INPUT_SDR_BINS:
            rows = [row for row in self.rows if low <= row["sdr"] - row["sdri"] < high]
            bins[name] = summarise(rows)
        return bins


# ------------------------------------------------------------------------- mixtures


def label_parts(label: str) -> tuple[str, ...]:
    """A label column's paraphrases, as mixtures carry them: split on "|", stripped, empties dropped."""
    return tuple(part.strip() for part in str(label).split("|") if part.strip())


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
        labels = label_parts(label)
        if not labels:
            continue
        audio_path = Path(audio)
        if base is not None and not audio_path.is_absolute():
            audio_path = base / audio_path
        rows.append({"audio": str(audio_path), "labels": labels, "split": str(split or "")})
    return rows


def make_eval_mixtures(index, split: str = "test", count: int = 100, seed: int = 0,
                       log: Callable[[str], None] | None = None) -> list[EvalMixture]:
    """`count` distinct fixed (target, interference) pairs from `split`; the same for the same index and seed.

    Targets go through seeded permutations of the split's clips, round after round; each
    interference is drawn uniformly from the clips of another canonical label that this target
    has not been mixed with yet. A split with fewer distinct pairs than `count` gives them all,
    and `log` hears how many there are (a mixture is never repeated: repeats would shrink the
    SEM without adding evidence).
    """
    if seed < 0:  # numpy's generators take none
        raise OptionError("seed", f"must be 0 or more, got {seed}")
    rows = sorted((r for r in _read_index_rows(index) if r["split"] == split), key=lambda r: (r["audio"], r["labels"]))
    if len({r["labels"][0] for r in rows}) < 2:
        raise ClipsepError(f"split {split!r} needs clips of at least two labels to make mixtures, found {len(rows)} clips")
    if count < 1:
        raise OptionError("count", f"must be at least 1, got {count}")
    partners = [[o for o in range(len(rows)) if rows[o]["labels"][0] != row["labels"][0]] for row in rows]
    available = sum(len(p) for p in partners)
    if available < count:
        (log or logger.info)(f"split {split!r} has only {available} distinct mixtures (each of its {len(rows)} clips "
                             f"with each clip of another label), not {count}: evaluating those {available}")
        count = available
    rng = np.random.default_rng(seed)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < count:
        for t in rng.permutation(len(rows)).tolist():
            if partners[t] and len(pairs) < count:
                pairs.append((t, partners[t].pop(int(rng.integers(len(partners[t]))))))
    return [EvalMixture(i, rows[t]["audio"], rows[t]["labels"], rows[o]["audio"], rows[o]["labels"])
            for i, (t, o) in enumerate(pairs)]


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
    from clipsep_rt.io.media import load_audio

    target = middle_crop(load_audio(mixture.target_audio, SAMPLE_RATE).samples, mixture.crop_samples)
    interference = middle_crop(load_audio(mixture.interference_audio, SAMPLE_RATE).samples, mixture.crop_samples)
    return target, interference, target + interference


# ------------------------------------------------------------------------- query strategies


class QueryStrategy(Protocol):
    """What each mixture is queried with. `candidates` gives named (D,) query vectors; with
    several, `evaluate` keeps the one whose estimate has the best SDR against the target.
    An optional `check(mixtures)` method is called first, to fail before any separating."""

    name: str

    def candidates(self, mixture: EvalMixture) -> dict[str, np.ndarray]: ...


class TextQueries:
    """The target label's text: `label` embeds the canonical label with the separator's prompt;
    `ensemble` takes the normalised mean over the label's paraphrases, each embedded with the
    prompt-template ensemble."""

    def __init__(self, separator, mode: str = "label"):
        if mode not in ("label", "ensemble"):
            raise ClipsepError(f"query mode must be 'label' or 'ensemble', got {mode!r}")
        self.separator = separator
        self.name = mode
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def candidates(self, mixture: EvalMixture) -> dict[str, np.ndarray]:
        labels = mixture.target_labels
        if labels not in self._cache:
            self._cache[labels] = _text_query_vector(self.separator, labels, self.name)
        return {mixture.target_label: self._cache[labels]}


class ClassVectorQueries:
    """LabelSep: one learned vector per class key (the index's label column text, as the trainer
    names them in `best.queries.npz`).

    A mixture's target is matched by its paraphrases: the key whose "|"-separated, stripped parts
    equal the mixture's `target_labels`; failing that, the only key whose first part is the
    canonical label. No match, or an ambiguous one, is a ClipsepError."""

    def __init__(self, names: Sequence[str], vectors: np.ndarray, source: str = "the query vectors"):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(names) != len(vectors):
            raise ClipsepError(f"{source}: expected one vector per name, got {len(names)} names and shape {vectors.shape}")
        self.source = source
        self.vectors = {str(name): vectors[i] for i, name in enumerate(names)}
        self.name = f"class vectors ({source})"
        self._by_parts: dict[tuple[str, ...], list[str]] = {}
        self._by_canonical: dict[str, list[str]] = {}
        for key in self.vectors:
            parts = label_parts(key)
            if parts:
                self._by_parts.setdefault(parts, []).append(key)
                self._by_canonical.setdefault(parts[0], []).append(key)

    def class_key(self, labels: Sequence[str]) -> str:
        """The vector name for a target with these paraphrases (canonical first)."""
        labels = tuple(labels)
        for found in (self._by_parts.get(labels, []), self._by_canonical.get(labels[0], []) if labels else []):
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ClipsepError(f"class {' | '.join(labels)!r} matches several vectors in {self.source}: "
                                   f"{', '.join(repr(k) for k in sorted(found))}")
        held = sorted(self.vectors)
        shown = ", ".join(repr(k) for k in held[:6]) + (f" and {len(held) - 6} more" if len(held) > 6 else "")
        raise ClipsepError(f"class {labels[0]!r} has no vector in {self.source} (it holds {shown})")

    def check(self, mixtures: Sequence[EvalMixture]) -> None:
        """Every target has a vector (so a missing one fails before any separating)."""
        for mixture in mixtures:
            self.class_key(mixture.target_labels)

    def candidates(self, mixture: EvalMixture) -> dict[str, np.ndarray]:
        key = self.class_key(mixture.target_labels)
        return {key: self.vectors[key]}


class OracleQueries:
    """PIT: every vector (e.g. "output0", "output1") is a candidate; `evaluate` keeps, per mixture,
    the output with the highest SDR against the target (oracle post-selection)."""

    def __init__(self, names: Sequence[str], vectors: np.ndarray, source: str = "the query vectors"):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(names) != len(vectors) or not len(names):
            raise ClipsepError(f"{source}: expected one vector per name, got {len(names)} names and shape {vectors.shape}")
        self.vectors = {str(name): vectors[i] for i, name in enumerate(names)}
        self.name = f"oracle over {', '.join(self.vectors)}"

    def candidates(self, mixture: EvalMixture) -> dict[str, np.ndarray]:
        return dict(self.vectors)


def query_vector_strategy(path: str | Path, oracle: bool = False) -> ClassVectorQueries | OracleQueries:
    """The strategy for a query-vector file (`best.queries.npz` of a LabelSep or PIT run):
    per-class lookup, or with `oracle` every vector as a candidate."""
    from clipsep_rt.query.vectors import load_query_embeddings

    names, vectors = load_query_embeddings(path)
    source = Path(path).name
    return OracleQueries(names, vectors, source) if oracle else ClassVectorQueries(names, vectors, source)


# ------------------------------------------------------------------------- evaluation


def _text_query_vector(separator, labels: tuple[str, ...], query_mode: str) -> np.ndarray:
    if query_mode == "label":
        return separator.embed_text([labels[0]])[0]
    if query_mode == "ensemble":
        from clipsep_rt.query.prompts import combine_prompt_embeddings

        rows = separator.embed_text(list(labels), prompt_ensemble=True)
        return combine_prompt_embeddings(np.asarray(rows, dtype=np.float32)).astype(np.float32)
    raise ClipsepError(f"query mode must be 'label' or 'ensemble', got {query_mode!r}")


def _sdr_key(scores) -> float:
    return scores.sdr if math.isfinite(scores.sdr) else -math.inf


def evaluate(separator, mixtures: Sequence[EvalMixture], query_mode: str = "label",
             log: Callable[[str], None] | None = None, queries: QueryStrategy | None = None) -> EvalReport:
    """Separate each mixture by its query and score the estimate.

    `queries`: a query strategy (`ClassVectorQueries`, `OracleQueries`, ...); by default
    `TextQueries(separator, query_mode)` (`label` or `ensemble`). The report's query mode is the
    strategy's name. With several candidates per mixture all are separated in one pass and the
    row of the one with the highest SDR is kept; its name is the row's `query` and every
    candidate's SDR is in `candidate_sdr`.
    """
    strategy = queries if queries is not None else TextQueries(separator, query_mode)
    if hasattr(strategy, "check"):
        strategy.check(mixtures)
    rows = []
    for number, mixture in enumerate(mixtures, 1):
        target, interference, mix = load_mixture(mixture)
        candidates = strategy.candidates(mixture)
        if not candidates:
            raise ClipsepError(f"query strategy {strategy.name!r} gave no query for mixture {mixture.index}")
        sources = separator.separate(mix, SAMPLE_RATE, embeddings=candidates).sources
        scored = {name: separation_metrics(sources[name], target, interference, mix) for name in candidates}
        chosen = max(scored, key=lambda name: _sdr_key(scored[name]))  # first of equals wins
        name = mixture.target_label
        row = {
            "index": mixture.index,
            "target_label": name,
            "interference_label": mixture.interference_label,
            "target_audio": mixture.target_audio,
            "interference_audio": mixture.interference_audio,
            "query": chosen,
            **{key: float(value) for key, value in scored[chosen]._asdict().items()},
        }
        if len(scored) > 1:
            row["candidate_sdr"] = {key: float(value.sdr) for key, value in scored.items()}
        rows.append(row)
        if log is not None:
            via = f" (via {chosen})" if len(scored) > 1 else ""
            log(f"[{number}/{len(mixtures)}] {name} vs {mixture.interference_label}: "
                f"SDR {row['sdr']:.2f} dB, SDRi {row['sdri']:.2f} dB{via}")
    report = EvalReport(query_mode=strategy.name, separator=getattr(separator, "name", "separator"), rows=rows)
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

METRIC_TITLES = {"sdr": "SDR", "sir": "SIR", "sar": "SAR", "sdri": "SDRi", "si_sdr": "SI-SDR", "si_sdri": "SI-SDRi"}


def metric_cell(stats: Mapping[str, float]) -> str:
    if not stats["n"]:
        return "—"
    sem = "" if math.isnan(stats["sem"]) else f" ± {stats['sem']:.2f}"
    return f"{stats['mean']:.2f}{sem} ({stats['median']:.2f})"


def report_markdown(report: EvalReport) -> str:
    header = "| | n | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |"
    rule = "|---|---:|" + "---:|" * len(METRICS)

    def line(name: str, summary: Mapping) -> str:
        n = max(summary[m]["n"] for m in METRICS)
        return f"| {name} | {n} | " + " | ".join(metric_cell(summary[m]) for m in METRICS) + " |"

    lines = [
        f"# Evaluation of {report.separator}",
        "",
        (f"{report.count} mixtures, query mode `{report.query_mode}`; BSS Eval v4 over the whole signal, dB; "
         "mean ± SEM (median)."),
        "",
        header,
        rule,
        line("**all**", report.overall),
        line("**mean of the class means**", report.class_balanced),
    ]
    lines += [line(label.replace("|", "\\|"), summary) for label, summary in report.per_class.items()]
    lines += [
        "",
        "By input SDR (the mixture's own SDR against the target; a loud target leaves little to gain):",
        "",
        header.replace("| |", "| input SDR |", 1),
        rule,
    ]
    lines += [line(name, summary) for name, summary in report.by_input_sdr.items()]
    return "\n".join(lines) + "\n"


def json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def strict_json(data: Mapping) -> str:
    """`data` as indented strict JSON, non-finite numbers as null."""
    return json.dumps(json_safe(data), indent=1, allow_nan=False) + "\n"


def report_json(report: EvalReport) -> str:
    """The report as strict JSON (non-finite numbers as null)."""
    return strict_json({
        "separator": report.separator,
        "query_mode": report.query_mode,
        "count": report.count,
        "metrics": list(METRICS),
        "overall": report.overall,
        "class_balanced": report.class_balanced,
        "by_input_sdr": report.by_input_sdr,
        "per_class": report.per_class,
        "mixtures": report.rows,
    })
