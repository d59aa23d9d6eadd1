"""Query by example and by time span against the text label, on the real-sound dev set.

    .venv/bin/python benchmarks/query_by_example.py [--count N] [--threads 2]

For each dev-set mixture (devset/devset.json: target + interference, held-out packages) whose
target class has another dev recording (another mixture's target_audio with a different
target_source), SDRi (clipsep_rt.dsp.metrics.bss_eval_v4) of the target separated by
  (a) the first text label of the target,
  (b) a query fitted (`Separator.query_from_audio`) on that OTHER recording of the class,
  (b') the same fit started from the text label's embedding (`start_from`),
  (c) a span query: 2 s of the target alone are put before the mixture, the query is fitted
      on that span (`Separator.query_from_span(audio, 16000, 0, 2)`, the rest of this input
      being the other sound), and the mixture part after the 2 s is scored,
with the bundled model on onnxruntime (CPU), and the time each fit took. Writes
benchmarks/results/query_by_example-<machine>[-quick].json and .md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.api import Separator
from clipsep_rt.dsp.metrics import two_source_sdr
from clipsep_rt.measure.results import run_devset_benchmark

SPAN_S = 2.0


def evaluate(separator: Separator, devset: Path, count: int | None, log=print) -> list[dict]:
    """One row per mixture with another recording of its class: SDRi of (a), (b), (c), fit times."""
    data = json.loads(devset.read_text())
    mixtures = data["mixtures"]
    rate = data["sample_rate"]

    def read(name: str) -> np.ndarray:
        return sf.read(devset.parent / name, dtype="float32")[0]

    rows = []
    for mixture in mixtures:
        other = next((m for m in mixtures if m["target_class"] == mixture["target_class"]
                      and m["target_source"] != mixture["target_source"]), None)
        if other is None:
            continue
        target, interference = read(mixture["target_audio"]), read(mixture["interference_audio"])
        mix = target + interference
        started = time.perf_counter()
        _, example = separator.query_from_audio(read(other["target_audio"]), rate, name="example")
        example_s = time.perf_counter() - started
        text = separator.embed_text([mixture["target_labels"][0]])[0]
        _, guided = separator.query_from_audio(read(other["target_audio"]), rate, name="guided", start_from=text)
        extended = np.concatenate([target[: int(SPAN_S * rate)], mix])
        started = time.perf_counter()
        _, span = separator.query_from_span(extended, rate, 0.0, SPAN_S)
        span_s = time.perf_counter() - started
        sources = separator.separate(mix, rate, embeddings={"text": text, "example": example, "guided": guided}).sources
        spanned = separator.separate(extended, rate, embeddings={"span": span}).sources["span"][int(SPAN_S * rate):]
        base = two_source_sdr(mix, target, interference)
        row = {"index": mixture["index"], "target_class": mixture["target_class"], "label": mixture["target_labels"][0],
               "example_from": other["target_source"], "sdr_mixture": base,
               "sdri_text": two_source_sdr(sources["text"], target, interference) - base,
               "sdri_example": two_source_sdr(sources["example"], target, interference) - base,
               "sdri_guided": two_source_sdr(sources["guided"], target, interference) - base,
               "sdri_span": two_source_sdr(spanned, target, interference) - base, "fit_example_s": example_s, "fit_span_s": span_s}
        rows.append(row)
        log(f"{row['index']:4d} {row['target_class']:18s} text {row['sdri_text']:6.2f}  example {row['sdri_example']:6.2f}"
            f"  guided {row['sdri_guided']:6.2f}  span {row['sdri_span']:6.2f} dB  (fits {example_s:.2f} s, {span_s:.2f} s)")
        if count is not None and len(rows) >= count:
            break
    return rows


def summary(rows: list[dict]) -> dict:
    keys = ("sdri_text", "sdri_example", "sdri_guided", "sdri_span", "fit_example_s", "fit_span_s")
    out = {f"mean_{key}": float(np.mean([row[key] for row in rows])) for key in keys}
    out["median_fit_example_s"] = float(np.median([row["fit_example_s"] for row in rows]))
    out["example_minus_text_db"] = out["mean_sdri_example"] - out["mean_sdri_text"]
    out["example_beats_text"] = int(sum(row["sdri_example"] > row["sdri_text"] for row in rows))
    out["guided_minus_text_db"] = out["mean_sdri_guided"] - out["mean_sdri_text"]
    out["mixtures"] = len(rows)
    return out


def report_markdown(results: dict, command: str) -> str:
    s, machine = results["summary"], results["machine"]
    return "\n".join([
        "# Query by example and by time span (dev set, bundled model, onnxruntime)", "",
        f"Command: `{command}`", f"Machine: {machine.get('cpu', '?')}, {results['threads']} threads.", "",
        f"{s['mixtures']} dev-set mixtures (held-out packages) whose class has another dev recording. "
        "(a) the first text label; (b) a query fitted on that other recording; (c) a query fitted on 2 s "
        "of the target alone put before the mixture (the rest of the input as the other sound).", "",
        "| query | mean SDRi (dB) |", "|---|---:|",
        f"| (a) text label | {s['mean_sdri_text']:.2f} |",
        f"| (b) fitted on another recording | {s['mean_sdri_example']:.2f} |",
        f"| (b') the same, the fit started from the text label | {s['mean_sdri_guided']:.2f} |",
        f"| (c) span (2 s alone) | {s['mean_sdri_span']:.2f} |", "",
        f"(b) - (a): {s['example_minus_text_db']:+.2f} dB (target: +1 dB); (b) better on {s['example_beats_text']} "
        f"of {s['mixtures']}; (b') - (a): {s['guided_minus_text_db']:+.2f} dB. Fit time: mean {s['mean_fit_example_s']:.2f} s (median {s['median_fit_example_s']:.2f} s) "
        f"for (b), {s['mean_fit_span_s']:.2f} s for (c).", ""])


if __name__ == "__main__":
    run_devset_benchmark("query_by_example", __doc__.splitlines()[0], evaluate, summary, report_markdown)
