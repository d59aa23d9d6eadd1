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

`evaluate_query_variants` measures robustness to the query's wording on the same mixtures:
the label, a short and a long paraphrase per class, and one unrelated query.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.fileio import atomic_output
from clipsep_rt.training.metrics import separation_metrics

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
    from clipsep_rt.query.embedding_file import load_query_embeddings

    names, vectors = load_query_embeddings(path)
    source = Path(path).name
    return OracleQueries(names, vectors, source) if oracle else ClassVectorQueries(names, vectors, source)


# ------------------------------------------------------------------------- evaluation


def _text_query_vector(separator, labels: tuple[str, ...], query_mode: str) -> np.ndarray:
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
        "class_balanced": report.class_balanced,
        "by_input_sdr": report.by_input_sdr,
        "per_class": report.per_class,
        "mixtures": report.rows,
    }
    return json.dumps(_json_safe(data), indent=1, allow_nan=False) + "\n"


# ------------------------------------------------------------------------- robustness to queries

VARIANTS = ("label", "short", "long", "unrelated")
VARIANT_TITLES = {"label": "label", "short": "short paraphrase", "long": "long paraphrase", "unrelated": "unrelated"}
VARIANT_METRICS = (*METRICS, "energy_db")
DEFAULT_UNRELATED = "car engine"
ENERGY_FLOOR_DB = -100.0


@dataclass(frozen=True)
class QueryVariants:
    """Per class (keyed by canonical label) a short and a long paraphrase, plus one unrelated
    query used for every mixture. The `label` variant is the mixture's canonical label.

    File form (JSON): {"unrelated": "car engine", "classes": {"violin": {"short": "violin",
    "long": "a person playing the violin in a concert hall"}, ...}}; the classes may also be given
    at the top level, next to "unrelated".
    """

    classes: dict[str, dict[str, str]]
    unrelated: str = DEFAULT_UNRELATED

    @classmethod
    def from_dict(cls, data, source: str = "query variants", unrelated: str | None = None) -> QueryVariants:
        """`unrelated` (when given) replaces the data's unrelated query."""
        if not isinstance(data, Mapping):
            raise ClipsepError(f"{source}: expected a JSON object of classes")
        data = dict(data)
        given = data.pop("unrelated", None)
        if given is not None and not isinstance(given, str):
            raise ClipsepError(f"{source}: 'unrelated' must be a text, got {given!r}")
        if "classes" in data:
            if set(data) != {"classes"}:
                raise ClipsepError(f"{source}: unexpected key(s) next to 'classes': {', '.join(sorted(set(data) - {'classes'}))}")
            data = data["classes"]
            if not isinstance(data, Mapping):
                raise ClipsepError(f"{source}: 'classes' must be an object of classes")
        classes = {}
        for label, entry in data.items():
            if not isinstance(entry, Mapping):
                raise ClipsepError(f"{source}: class {label!r} must be an object with 'short' and 'long'")
            unknown = set(entry) - {"short", "long"}
            if unknown:
                raise ClipsepError(f"{source}: class {label!r} has unknown key(s) {', '.join(sorted(unknown))} "
                                   "(expected 'short' and 'long')")
            for kind in ("short", "long"):
                text = entry.get(kind)
                if not isinstance(text, str) or not text.strip():
                    raise ClipsepError(f"{source}: class {label!r} needs a non-empty '{kind}' text")
            classes[str(label).strip()] = {kind: entry[kind].strip() for kind in ("short", "long")}
        if not classes:
            raise ClipsepError(f"{source}: no classes given")
        text = unrelated if unrelated is not None else given if given is not None else DEFAULT_UNRELATED
        if not text.strip():
            raise ClipsepError(f"{source}: the unrelated query is empty")
        return cls(classes, text.strip())

    @classmethod
    def from_file(cls, path: str | Path, unrelated: str | None = None) -> QueryVariants:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ClipsepError(f"query variants {path}: cannot be read ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise ClipsepError(f"query variants {path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, f"query variants {path}", unrelated)

    def texts(self, mixture: EvalMixture) -> dict[str, str]:
        """Variant -> query text for this mixture's target."""
        entry = self.classes[mixture.target_label]
        return {"label": mixture.target_label, "short": entry["short"], "long": entry["long"], "unrelated": self.unrelated}

    def check(self, mixtures: Sequence[EvalMixture], source: str = "query variants") -> None:
        """Every target class has paraphrases, and the unrelated query names none of the classes."""
        missing = sorted({m.target_label for m in mixtures} - set(self.classes))
        if missing:
            shown = ", ".join(repr(label) for label in missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
            raise ClipsepError(f"{source}: no short/long paraphrases for class(es) {shown}")
        unrelated = self.unrelated.casefold()
        for mixture in mixtures:
            for labels in (mixture.target_labels, mixture.interference_labels):
                if unrelated in {label.casefold() for label in labels}:
                    raise ClipsepError(f"{source}: the unrelated query {self.unrelated!r} is a label of the mixtures' "
                                       "classes; choose another one")


@dataclass
class VariantReport:
    separator: str
    unrelated: str
    rows: list[dict]  # per mixture and variant: index, variant, query, labels, METRICS, energy_db
    summary: list[dict] = field(default_factory=list)  # per variant: variant, title, n, metric -> {n, mean, sem, median}

    @property
    def count(self) -> int:
        """Number of mixtures."""
        return len({row["index"] for row in self.rows})


def energy_ratio_db(estimate: np.ndarray, mixture: np.ndarray, floor_db: float = ENERGY_FLOOR_DB) -> float:
    """10 log10(|estimate|^2 / |mixture|^2), floored at `floor_db` (a silent estimate); NaN for a silent mixture."""
    mix_energy = float(np.sum(np.asarray(mixture, np.float64) ** 2))
    if mix_energy == 0:
        return math.nan
    ratio = float(np.sum(np.asarray(estimate, np.float64) ** 2)) / mix_energy
    return max(floor_db, 10 * math.log10(ratio)) if ratio > 0 else floor_db


def evaluate_query_variants(separator, mixtures: Sequence[EvalMixture], variants: QueryVariants | Mapping,
                            log: Callable[[str], None] | None = None) -> VariantReport:
    """Robustness to the query's wording (the CLIPSep demo's "robustness to queries").

    Each mixture is separated by four text queries in one pass: its canonical `label`, the class's
    `short` and `long` paraphrase, and the `unrelated` query. Every estimate is scored against the
    target (for the unrelated query SDRi should be low), and `energy_db` is the estimate's energy
    relative to the mixture's (how much a query extracts at all).
    """
    if not isinstance(variants, QueryVariants):
        variants = QueryVariants.from_dict(variants)
    variants.check(mixtures)
    texts = sorted({text for m in mixtures for text in variants.texts(m).values()})
    vectors = dict(zip(texts, separator.embed_text(texts), strict=True)) if texts else {}
    rows = []
    for number, mixture in enumerate(mixtures, 1):
        target, interference, mix = load_mixture(mixture)
        queries = variants.texts(mixture)
        sources = separator.separate(mix, SAMPLE_RATE, embeddings={kind: vectors[text] for kind, text in queries.items()}).sources
        for kind in VARIANTS:
            scores = separation_metrics(sources[kind], target, interference, mix)
            rows.append({
                "index": mixture.index,
                "variant": kind,
                "query": queries[kind],
                "target_label": mixture.target_label,
                "interference_label": mixture.interference_label,
                **{key: float(value) for key, value in scores._asdict().items()},
                "energy_db": energy_ratio_db(sources[kind], mix),
            })
        if log is not None:
            done = {row["variant"]: row for row in rows[-len(VARIANTS):]}
            log(f"[{number}/{len(mixtures)}] {mixture.target_label} vs {mixture.interference_label}: SDRi "
                + ", ".join(f"{kind} {done[kind]['sdri']:.2f}" for kind in VARIANTS) + " dB")
    report = VariantReport(separator=getattr(separator, "name", "separator"), unrelated=variants.unrelated, rows=rows)
    for kind in VARIANTS:
        chosen = [row for row in rows if row["variant"] == kind]
        stats = {metric: summary_stats(row[metric] for row in chosen) for metric in VARIANT_METRICS}
        report.summary.append({"variant": kind, "title": VARIANT_TITLES[kind], "n": len(chosen), **stats})
    return report


def variant_report_markdown(report: VariantReport) -> str:
    shown = ("sdri", "si_sdri", "sdr", "sir", "energy_db")
    titles = {**_TITLES, "energy_db": "output / mixture energy (dB)"}
    lines = [
        f"# Robustness to queries: {report.separator}",
        "",
        (f"{report.count} mixtures, each separated by four queries: its label, a short and a long paraphrase, and "
         f"the unrelated query {report.unrelated!r}. Scores are against the target; BSS Eval v4 over the whole "
         "signal, dB; mean ± SEM (median)."),
        "",
        "| query | n | " + " | ".join(titles[m] for m in shown) + " |",
        "|---|---:|" + "---:|" * len(shown),
    ]
    for entry in report.summary:
        title = entry["title"] + (f" ({report.unrelated})" if entry["variant"] == "unrelated" else "")
        lines.append(f"| {title.replace('|', chr(92) + '|')} | {entry['n']} | " + " | ".join(_cell(entry[m]) for m in shown) + " |")
    return "\n".join(lines) + "\n"


def variant_report_json(report: VariantReport) -> str:
    """The variants report as strict JSON (non-finite numbers as null)."""
    data = {
        "separator": report.separator,
        "count": report.count,
        "unrelated": report.unrelated,
        "variants": list(VARIANTS),
        "metrics": list(VARIANT_METRICS),
        "summary": report.summary,
        "mixtures": report.rows,
    }
    return json.dumps(_json_safe(data), indent=1, allow_nan=False) + "\n"
