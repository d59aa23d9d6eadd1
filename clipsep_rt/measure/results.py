"""Benchmark results: the bench rows as a markdown table and as JSON, results file names,
writing a benchmark's JSON and markdown report, and the command line of the dev-set benchmarks."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.stream_timing import BenchRow
from clipsep_rt.io.files import atomic_output

JSON_FORMAT = "clipsep_rt-bench"


def _cell(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def format_table(rows: list[BenchRow]) -> str:
    """A markdown table of the rows, with the model they ran and how to read them."""
    lines = [f"Model: {model}" for model in dict.fromkeys(row.model for row in rows)]
    lines += [
        "",
        (
            "| backend | device | precision | preset (H+L frames) | latency ms | hop ms | compute p50 ms | p99 ms "
            "| RTF p99 | RTF mean | real time |"
        ),
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        preset = f"{r.preset} ({r.hop_frames}+{r.lookahead_frames})"
        head = f"| {r.backend} | {r.device} | {r.precision} | {preset} | {_cell(r.latency_ms, '.0f')} | {_cell(r.hop_ms, '.0f')} |"
        if r.status != "ok":
            lines.append(f"{head} {r.status} | | | | |")
            continue
        realtime = "yes" if r.realtime else "NO"
        lines.append(
            f"{head} {r.compute_p50_ms:.1f} | {r.compute_p99_ms:.1f} | {r.rtf_p99:.2f} | {r.rtf_mean:.2f} | {realtime} |"
        )
    notes = sorted({f"{r.backend}: {r.note}" for r in rows if r.note})
    lines += [
        "",
        (
            "latency: input-to-output delay of the stream. compute: one network step (every hop). "
            "RTF = compute / hop duration; real time when RTF p99 < 1."
        ),
        *notes,
    ]
    return "\n".join(lines) + "\n"


def rows_to_json(rows: list[BenchRow], machine: dict | None = None) -> dict:
    """The rows (each the stream-statistics schema plus the bench columns) and the machine."""
    return {"format": JSON_FORMAT, "machine": machine if machine is not None else machine_info(), "rows": [asdict(r) for r in rows]}


def result_stem(kind: str, machine: str, quick: bool) -> str:
    """`kind-<machine>[-quick]` (machine: a GPU name or host name, lower-case, dashes), the
    results file name of a benchmark, so a smoke test never overwrites a full run."""
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9]+", "-", machine).strip("-").lower() + ("-quick" if quick else "")


def write_results(json_path: Path, markdown_path: Path | None, data: dict, report: str,
                  log: Callable[[str], None] | None = None) -> None:
    """A benchmark's results as JSON and its markdown report (default: the JSON path with
    .md), both written atomically; `log` is told where they went."""
    markdown_path = markdown_path or json_path.with_suffix(".md")
    for path, text in ((json_path, json.dumps(data, indent=2) + "\n"), (markdown_path, report)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, overwrite=True) as temp:
            temp.write_text(text)
    if log is not None:
        log(f"wrote {json_path} and {markdown_path}")


def run_devset_benchmark(
    kind: str,
    description: str,
    evaluate: Callable[..., list[dict]],
    summary: Callable[[list[dict]], dict],
    report_markdown: Callable[[dict, str], str],
) -> None:
    """The command line of a benchmark on the real-sound dev set (`--devset`, `--count` for a quick
    run, `--threads`): the bundled model on onnxruntime, `evaluate(separator, devset, count)` ->
    rows, then `kind-<machine>[-quick].json` and .md under benchmarks/results/ with the machine,
    the model, `summary(rows)` and the rows; `report_markdown(results, command)` is printed too."""
    from clipsep_rt.api import Separator

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--devset", type=Path, default=root / "devset" / "devset.json")
    parser.add_argument("--count", type=int, help="at most this many mixtures (a quick run)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    separator = Separator.open(backend="onnxruntime", threads=args.threads)
    rows = evaluate(separator, args.devset, args.count)
    machine = machine_info(args.threads)
    results = {"threads": args.threads, "machine": machine, "model": separator.describe(), "summary": summary(rows),
               "rows": rows}
    stem = result_stem(kind, machine.get("gpu") or machine["cpu"], args.count is not None)
    report = report_markdown(results, " ".join(["python", *sys.argv]))
    print(report)
    write_results(root / "benchmarks" / "results" / f"{stem}.json", None, results, report, log=print)
