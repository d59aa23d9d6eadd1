"""Robustness to the query's wording, on the same mixtures as `training.evaluate`: the label,
a short and a long paraphrase per class, and one unrelated query (whose output energy shows
whether the model keeps quiet when asked for a sound that is not there).

    variants = QueryVariants.from_file("configs/query_variants.json")
    report = evaluate_query_variants(separator, make_eval_mixtures(index), variants)
    print(variant_report_markdown(report))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


from clipsep_rt.dsp.metrics import energy_ratio_db, separation_metrics
from clipsep_rt.errors import ClipsepError
from clipsep_rt.training.evaluate import (
    METRICS,
    METRIC_TITLES,
    SAMPLE_RATE,
    EvalMixture,
    metric_cell,
    load_mixture,
    strict_json,
    summary_stats,
)

VARIANTS = ("label", "short", "long", "unrelated")
VARIANT_TITLES = {"label": "label", "short": "short paraphrase", "long": "long paraphrase", "unrelated": "unrelated"}
VARIANT_METRICS = (*METRICS, "energy_db")
DEFAULT_UNRELATED = "car engine"


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
    titles = {**METRIC_TITLES, "energy_db": "output / mixture energy (dB)"}
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
        lines.append(f"| {title.replace('|', chr(92) + '|')} | {entry['n']} | " + " | ".join(metric_cell(entry[m]) for m in shown) + " |")
    return "\n".join(lines) + "\n"


def variant_report_json(report: VariantReport) -> str:
    """The variants report as strict JSON (non-finite numbers as null)."""
    return strict_json({
        "separator": report.separator,
        "count": report.count,
        "unrelated": report.unrelated,
        "variants": list(VARIANTS),
        "metrics": list(VARIANT_METRICS),
        "summary": report.summary,
        "mixtures": report.rows,
    })
