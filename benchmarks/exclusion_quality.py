"""Exclusion quality on the real-sound dev set: "everything but X" against asking for the rest by
its own label, and a query with the interference left out against the query alone.

    .venv/bin/python benchmarks/exclusion_quality.py [--count N] [--threads 2]

Each dev-set mixture (devset/devset.json: target + interference, held-out packages) is
separated with the bundled model on onnxruntime (CPU), and scored with BSS Eval v4 SDRi
(clipsep_rt.dsp.metrics.bss_eval_v4):
  - the rest (the interference) as "all but <the target's first label>" (`exclude=` alone),
    against the interference asked for by its own first label (target: at least as good);
  - the target asked for by its label, alone and with the interference's label excluded.
One network pass per mixture serves every query (exclusions share it, `runtime.exclusion`).
Writes benchmarks/results/exclusion_quality-<machine>[-quick].json and .md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.api import Separator
from clipsep_rt.dsp.metrics import two_source_sdr
from clipsep_rt.measure.results import run_devset_benchmark



def _only(sources: dict[str, np.ndarray]) -> np.ndarray:
    [output] = sources.values()
    return output


def evaluate(separator: Separator, devset: Path, count: int | None, log=print) -> list[dict]:
    """One row per mixture: SDRi (dB) of the four ways of asking."""
    data = json.loads(devset.read_text())
    rate = data["sample_rate"]
    rows = []
    for mixture in data["mixtures"][:count]:
        target, interference = (sf.read(devset.parent / mixture[key], dtype="float32")[0]
                                for key in ("target_audio", "interference_audio"))
        mix = target + interference
        target_label, interference_label = mixture["target_labels"][0], mixture["interference_labels"][0]
        rest_by_exclusion = _only(separator.separate(mix, rate, exclude=[target_label]).sources)
        by_label = separator.separate(mix, rate, queries=[target_label, interference_label]).sources
        target_without = _only(separator.separate(mix, rate, queries=[target_label], exclude=[interference_label]).sources)
        base_rest, base_target = two_source_sdr(mix, interference, target), two_source_sdr(mix, target, interference)
        row = {
            "index": mixture["index"], "target_class": mixture["target_class"],
            "interference_class": mixture["interference_class"],
            "rest_all_but_target": two_source_sdr(rest_by_exclusion, interference, target) - base_rest,
            "rest_by_its_label": two_source_sdr(by_label[interference_label], interference, target) - base_rest,
            "target_by_label": two_source_sdr(by_label[target_label], target, interference) - base_target,
            "target_without_interference": two_source_sdr(target_without, target, interference) - base_target,
        }
        rows.append(row)
        log(f"{row['index']:4d} rest: all-but {row['rest_all_but_target']:6.2f} / label {row['rest_by_its_label']:6.2f}"
            f"   target: label {row['target_by_label']:6.2f} / without interference {row['target_without_interference']:6.2f} dB")
    return rows


KEYS = ("rest_all_but_target", "rest_by_its_label", "target_by_label", "target_without_interference")


def summary(rows: list[dict]) -> dict:
    out = {f"mean_{key}": float(np.mean([row[key] for row in rows])) for key in KEYS}
    out["all_but_minus_label_db"] = out["mean_rest_all_but_target"] - out["mean_rest_by_its_label"]
    out["all_but_better"] = int(sum(row["rest_all_but_target"] > row["rest_by_its_label"] for row in rows))
    out["without_minus_alone_db"] = out["mean_target_without_interference"] - out["mean_target_by_label"]
    out["mixtures"] = len(rows)
    return out


def report_markdown(results: dict, command: str) -> str:
    s, machine = results["summary"], results["machine"]
    met = "met" if s["all_but_minus_label_db"] >= 0 else "missed"
    return "\n".join([
        "# Exclusion quality (dev set, bundled model, onnxruntime)", "",
        f"Command: `{command}`", f"Machine: {machine.get('cpu', '?')}, {results['threads']} threads. Model: {results['model']}.", "",
        f"{s['mixtures']} dev-set mixtures (held-out packages), SDRi (BSS Eval v4) in dB, means.", "",
        "| the rest (interference) asked as | SDRi |", "|---|---:|",
        f"| \"all but\" the target's label (`--exclude`) | {s['mean_rest_all_but_target']:.2f} |",
        f"| its own label (`--query`) | {s['mean_rest_by_its_label']:.2f} |", "",
        f"\"All but\" - own label: {s['all_but_minus_label_db']:+.2f} dB, better on {s['all_but_better']} of "
        f"{s['mixtures']} (target: at least as good: {met}).", "",
        "| the target asked as | SDRi |", "|---|---:|",
        f"| its label | {s['mean_target_by_label']:.2f} |",
        f"| its label, the interference's label excluded | {s['mean_target_without_interference']:.2f} |", "",
        f"Excluding the interference: {s['without_minus_alone_db']:+.2f} dB.", ""])


if __name__ == "__main__":
    run_devset_benchmark("exclusion_quality", __doc__.splitlines()[0], evaluate, summary, report_markdown)
