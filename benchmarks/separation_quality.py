"""Separation quality as users meet it: batch and streamed, by label, paraphrase and the other
source's label, on mixtures at a controlled target-to-interference ratio.

Each mixture is a target clip plus an interference clip of another class (corpus index, one
split), middle-cropped to 65,535 samples at 16 kHz; the interference is scaled so that the
target-to-interference ratio (TIR, RMS over the crop) is drawn uniformly from --tir (default
-5..+5 dB, as text-queried separation benchmarks mix), per mixture, seeded. Per mixture:

  label      SDRi of the target queried by its class label (BSS Eval v4, clipsep_rt.dsp.metrics)
  short/long SDRi with the label's first and second paraphrase (the corpus labels carry them)
  other      SDRi of the interference queried by its own label (the other direction)
  unrelated  output energy of an unrelated query ("car engine") minus that of the label query, dB
  stream     SDRi of the label query streamed through each latency preset (StreamingSeparator,
             output aligned with the input), next to the batch figure

Summaries: mean, SEM over distinct mixtures, median, mean of the class means. With
--compare, a second model is scored on the same mixtures.

    python benchmarks/separation_quality.py --data corpus/index.csv --split test --split cross_source
    python benchmarks/separation_quality.py --checkpoint runs/v2/best.safetensors \
        --compare checkpoints/v1/clipsep-nit-minilm-w16.safetensors --count 100
    python benchmarks/separation_quality.py --engine engines/ --precision int8 --stream-count 0

`--devset devset/devset.json` scores the real-sound dev set instead (held-out packages, mixtures
already at their TIR; `short` is its unseen paraphrase, `unrelated` its unrelated class's label):

    python benchmarks/separation_quality.py --devset devset/devset.json --checkpoint runs/default_v3/best.safetensors \
        --compare checkpoints/v1/clipsep-nit-minilm-w16.safetensors --stream-count 60

`--engine` scores an exported engine folder on ONNX Runtime (`--precision int8` for its INT8
graph); runs with the same --data, --split, --count and --seed score the same mixtures, so two
runs' rows pair by `index`.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.api import Separator
from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import result_stem, write_results
from clipsep_rt.dsp.metrics import energy_ratio_db, separation_metrics
from clipsep_rt.runtime.streaming import stream_file_aligned
from clipsep_rt.runtime.streaming_presets import PRESETS
from clipsep_rt.training.devset_reader import load_devset
from clipsep_rt.training.evaluate import load_mixture, make_eval_mixtures, summary_stats

SEED = 0
UNRELATED = "car engine"
BLOCK_SAMPLES = 256  # 16 ms blocks into the stream, like an audio callback
VARIANTS = ("label", "short", "long", "other")


def scale_to_tir(target: np.ndarray, interference: np.ndarray, tir_db: float) -> np.ndarray | None:
    """The interference scaled so that 20 log10(rms(target) / rms(interference)) = tir_db;
    None when either crop is silent."""
    target_rms, interference_rms = float(np.sqrt(np.mean(target**2))), float(np.sqrt(np.mean(interference**2)))
    if target_rms == 0.0 or interference_rms == 0.0:
        return None
    return (interference * (target_rms / interference_rms) * 10 ** (-tir_db / 20)).astype(np.float32)


def score_mixture(separator: Separator, mixture, tir_db: float, presets: list[str]) -> dict | None:
    """One corpus mixture's row (see the module docstring), or None for a silent crop; streamed
    through each of `presets` (none: batch figures only)."""
    target, interference, _ = load_mixture(mixture)
    interference = scale_to_tir(target, interference, tir_db)
    if interference is None:
        return None
    labels = mixture.target_labels
    texts = {"label": labels[0], "other": mixture.interference_label, "unrelated": UNRELATED}
    if len(labels) > 1:
        texts["short"] = labels[1]
    if len(labels) > 2:
        texts["long"] = labels[2]
    row = {"index": mixture.index, "target": labels[0], "interference": mixture.interference_label, "tir_db": tir_db}
    return score_pair(separator, target, interference, texts, presets, row)


def score_dev_mixture(separator: Separator, devset, index: int, presets: list[str]) -> dict:
    """One dev-set mixture's row: its label, unseen paraphrase (`short`), the interference's label
    (`other`) and its unrelated class."""
    mixture = devset.mixtures[index]
    target, interference = devset.load_mixture(index)
    texts = {"label": mixture.target_labels[0], "short": mixture.paraphrase, "other": mixture.interference_labels[0],
             "unrelated": mixture.unrelated_labels[0]}
    row = {"index": mixture.index, "target": mixture.target_labels[0], "interference": mixture.interference_labels[0],
           "tir_db": mixture.tir_db}
    return score_pair(separator, target, interference, texts, presets, row)


def score_pair(separator: Separator, target: np.ndarray, interference: np.ndarray, texts: dict[str, str],
               presets: list[str], row: dict) -> dict:
    """`row` with the SDRi of each query in `texts` (name -> text; `unrelated` as an energy
    ratio), batch and streamed through each of `presets`."""
    mix = target + interference
    names = list(texts)
    queries = separator.prepare_queries(names, separator.embed_text([texts[n] for n in names]))
    outputs = separator.separate(mix, separator.sample_rate, queries).sources  # name -> (n,)
    for name in VARIANTS:
        if name not in outputs:
            continue
        wanted, other = (interference, target) if name == "other" else (target, interference)
        row[name] = separation_metrics(outputs[name], wanted, other, mix).sdri
    row["unrelated_energy_db"] = energy_ratio_db(outputs["unrelated"], mix) - energy_ratio_db(outputs["label"], mix)
    label_query = separator.prepare_queries(["label"], separator.embed_text([texts["label"]]))
    blocks = [mix[i : i + BLOCK_SAMPLES] for i in range(0, len(mix), BLOCK_SAMPLES)]
    for preset in presets:
        stream = separator.stream(label_query, latency=preset)
        streamed = stream_file_aligned(stream, blocks)[0]
        row[f"stream_{preset}"] = separation_metrics(streamed, target, interference, mix).sdri
    return row


def summarise(rows: list[dict], columns: list[str]) -> dict:
    """column -> {n, mean, sem, median, class_mean} over the rows that have it."""
    summary = {}
    for column in columns:
        values = [row[column] for row in rows if column in row and math.isfinite(row[column])]
        stats = summary_stats(values)
        by_class: dict[str, list[float]] = {}
        for row in rows:
            if column in row and math.isfinite(row[column]):
                by_class.setdefault(row["target"], []).append(row[column])
        stats["class_mean"] = float(np.mean([np.mean(v) for v in by_class.values()])) if by_class else math.nan
        summary[column] = stats
    return summary


def _cell(stats: dict) -> str:
    if not stats.get("n"):
        return "-"
    return f"{stats['mean']:.2f} ± {stats['sem']:.2f} (median {stats['median']:.2f}, class mean {stats['class_mean']:.2f})"


def report_markdown(results: dict, command: str) -> str:
    machine = results["machine"]
    lines = [
        "# Separation quality: batch and streamed, controlled TIR",
        "",
        f"Command: `{command}`",
        f"Machine: {machine.get('cpu', '?')}, {results['threads']} threads, {results['precision']}; mixtures: up to "
        f"{results['count']} per split (seed {results['seed']}), the first {results['stream_count']} also streamed; "
        f"TIR uniform in {results['tir_db'][0]:+g}..{results['tir_db'][1]:+g} dB.",
        "",
        "SDRi in dB: mean ± SEM over distinct mixtures (median, mean of class means); "
        "`unrelated`: the unrelated query's output energy minus the label query's (dB, lower is better).",
        "",
    ]
    for split, models in results["splits"].items():
        lines += [f"## {split}", "", "| model | figure | value |", "| --- | --- | --- |"]
        for model, entry in models.items():
            summary = entry["summary"]
            for column, stats in summary.items():
                lines.append(f"| {model} | {column} (n {stats['n']}) | {_cell(stats)} |")
            for preset in results["presets"]:
                key = f"stream_{preset}"
                streamed = [row for row in entry["rows"] if key in row]
                if streamed:
                    gap = np.mean([row[key] - row["label"] for row in streamed])
                    lines.append(f"| {model} | {preset} minus batch, same {len(streamed)} mixtures | {gap:+.2f} dB |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("corpus/index.csv"), help="corpus index CSV")
    parser.add_argument("--split", action="append", help="index split(s) to draw from (default: test)")
    parser.add_argument("--devset", type=Path, metavar="DEVSET.json", help="score the real-sound dev set (make devset) instead")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", type=Path, help="the model (default: the bundled model)")
    model.add_argument("--engine", type=Path, metavar="DIR", help="an exported engine folder, run on ONNX Runtime")
    parser.add_argument("--compare", type=Path, help="a second model scored on the same mixtures")
    parser.add_argument("--count", type=int, help="mixtures per split (default 100; with --devset: all of it)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--tir", type=float, nargs=2, default=(-5.0, 5.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS), help="streaming presets (default: all)")
    parser.add_argument("--stream-count", type=int, default=40,
                        help="of those, the first N are also streamed through every preset (default 40: the low preset "
                             "runs the network every 32 ms of audio, so streaming dominates the run time)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"),
                        help="bf16: torch on CPUs with native bf16; int8: an --engine folder's INT8 graph")
    parser.add_argument("--json", type=Path, help="results JSON (default benchmarks/results/separation_quality-<machine>.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = args.split or ["test"]
    presets = args.preset or list(PRESETS)
    if args.precision == "int8" and args.engine is None:
        parser.error("--precision int8 needs --engine DIR (an engine folder exported with --int8)")
    if args.engine is not None:
        separators = {"model": Separator.open(engine_dir=args.engine, backend="onnxruntime", device="cpu",
                                              precision=args.precision, threads=args.threads)}
    else:
        separators = {"model": Separator.open(checkpoint=args.checkpoint, backend="torch", device="cpu",
                                              precision=args.precision)}
    if args.compare:
        separators["compare"] = Separator.open(checkpoint=args.compare, backend="torch", device="cpu",
                                               precision="fp32" if args.precision == "int8" else args.precision)
    results = {"count": args.count or 100, "stream_count": args.stream_count, "seed": args.seed, "tir_db": list(args.tir), "presets": presets,
               "threads": args.threads, "precision": args.precision, "machine": machine_info(args.threads),
               "models": {name: s.name for name, s in separators.items()}, "splits": {}}
    rng = np.random.default_rng(args.seed)
    columns = [*VARIANTS, "unrelated_energy_db", *(f"stream_{p}" for p in presets)]
    if args.devset is not None:
        devset = load_devset(args.devset)
        count = min(args.count or len(devset), len(devset))
        results["count"], results["tir_db"] = count, [-5.0, 5.0]
        scorers = {"devset": lambda separator, number: score_dev_mixture(separator, devset, number - 1, presets if number <= args.stream_count else [])}
        sizes = {"devset": count}
    else:
        scorers, sizes = {}, {}
        for split in splits:
            mixtures = make_eval_mixtures(args.data, split=split, count=args.count or 100, seed=args.seed)
            tirs = rng.uniform(*args.tir, size=len(mixtures))
            scorers[split] = lambda separator, number, m=mixtures, t=tirs: score_mixture(
                separator, m[number - 1], float(t[number - 1]), presets if number <= args.stream_count else [])
            sizes[split] = len(mixtures)
    for split, scorer in scorers.items():
        results["splits"][split] = {}
        for name, separator in separators.items():
            rows = []
            for number in range(1, sizes[split] + 1):
                row = scorer(separator, number)
                if row is not None:
                    rows.append(row)
                print(f"{split} {name}: {number}/{sizes[split]}", file=sys.stderr, end="\r")
            print(file=sys.stderr)
            results["splits"][split][name] = {"summary": summarise(rows, columns), "rows": rows}
    command = "python benchmarks/separation_quality.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    report = report_markdown(results, command)
    print(report)
    json_path = args.json or Path("benchmarks/results") / (result_stem("separation_quality", results["machine"]["cpu"], False) + ".json")
    write_results(json_path, None, results, report, log=lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
