"""EXPERIMENTS.md runs: CLIPSep vs CLIPSep-NIT on noisy training data, LabelSep and PIT
references, and CLIPSep-NIT's mean noise-head activation against gamma.

Every run trains on the *noisy* variant of the real-sound corpus (`make corpus`; each source
carries an off-screen clip of another class at -5..5 dB SNR while its text query names only
the source's class) with MiniLM text queries, and is evaluated on the same fixed list of
clean 2-source test mixtures.

The paper trains 200k steps at batch 32 with a 64-wide U-Net on a GPU. This script's
default is a reduced CPU configuration (SCALES["reduced"]; EXPERIMENTS.md states it):
8-wide U-Net, batch 8, 1,000 steps, warm-up 100 steps, linear decay to 1e-4 at the end.
`--scale paper` uses the paper's width, batch, steps and schedule (a GPU job).

    python benchmarks/experiments.py train            # all runs, resumable (runs/experiments/NAME)
    python benchmarks/experiments.py train --only nit_g0.25 clipsep
    python benchmarks/experiments.py eval             # scores -> benchmarks/results/experiments.{json,md}
    python benchmarks/experiments.py train --scale paper --device cuda   # runs/experiments-paper/NAME

Each run resumes from its last checkpoint when the command is run again, so the whole
thing can be split into pieces of any length (e.g. 10-minute GPU calls).
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.config import ModelConfig
from clipsep_rt.training.schedule import TrainingRecipe
from clipsep_rt.training.train_config import TrainConfig
from clipsep_rt.training.trainer import train

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
INDEX = ROOT / "corpus" / "index.csv"


@dataclass(frozen=True)
class Scale:
    """The training configuration shared by every run of one scale."""

    name: str
    settings: dict  # TrainConfig fields
    model: ModelConfig
    recipe: TrainingRecipe

    @property
    def runs(self) -> Path:
        return ROOT / "runs" / ("experiments" if self.name == "reduced" else f"experiments-{self.name}")

    @property
    def results_stem(self) -> str:
        return "experiments" if self.name == "reduced" else f"experiments-{self.name}"

    def to_dict(self) -> dict:
        return {"scale": self.name, **self.settings, "model": self.model.to_dict(), "recipe": self.recipe.to_dict()}


COMMON = dict(noisy=True, query_encoder="minilm")  # the paper trains with CLIP image queries
# The reduced CPU configuration (the paper's values in comments) and the paper's own.
SCALES = {
    "reduced": Scale(
        "reduced",
        dict(COMMON, steps=1_000, batch_size=8, val_every=250, val_batches=4),  # paper: 200k steps, batch 32
        ModelConfig(depth=7, ngf=8, channels=32, query_dim=384),  # paper: ngf 64
        TrainingRecipe(warmup_steps=100, decay_end=1_000),  # paper: 5k / 100k
    ),
    "paper": Scale(
        "paper",
        dict(COMMON, steps=200_000, batch_size=32, val_every=10_000, val_batches=16),
        ModelConfig(depth=7, ngf=64, channels=32, query_dim=384),
        TrainingRecipe(),
    ),
}

# name -> (model type, gamma); the order is the order of importance when time is short.
RUNS_TABLE = {
    "clipsep": ("clipsep", 0.25),
    "nit_g0.25": ("nit", 0.25),
    "nit_g0.1": ("nit", 0.1),
    "nit_g0.5": ("nit", 0.5),
    "labelsep": ("labelsep", 0.25),
    "pit": ("pit", 0.25),
}


def run_config(scale: Scale, name: str, steps: int | None, device: str) -> TrainConfig:
    model_type, gamma = RUNS_TABLE[name]
    settings = dict(scale.settings)
    if steps is not None:
        settings["steps"] = steps
    return TrainConfig(
        index=INDEX,
        out_dir=scale.runs / name,
        model_type=model_type,
        model=scale.model,
        recipe=replace(scale.recipe, gamma=gamma),
        device=device,
        **settings,
    )


def mean_activations(log_csv: Path, last: int = 100) -> tuple[float, float]:
    """Mean query- and noise-head activation over the last `last` logged training steps."""
    with open(log_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))[-last:]
    query = float(np.mean([float(r["query_activation"]) for r in rows]))
    noise = float(np.mean([float(r["noise_activation"]) for r in rows]))
    return query, noise


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)"


def command_train(args: argparse.Namespace) -> int:
    if not INDEX.is_file():
        print(f"experiments: {INDEX} is missing: build the corpus first (make corpus)", file=sys.stderr)
        return 1
    for name in args.only or RUNS_TABLE:
        config = run_config(SCALES[args.scale], name, args.steps, args.device)
        started = time.perf_counter()
        print(f"experiments: training {name} ({config.model_type}, gamma {config.recipe.gamma}) on {machine()}", flush=True)
        train(config, log=lambda line: print(f"  {name}: {line}", flush=True), progress=False)
        print(f"experiments: {name} done in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


def _strategy(name: str, separator, checkpoint: Path):
    from clipsep_rt.training.evaluate import TextQueries, query_vector_strategy

    model_type = RUNS_TABLE[name][0]
    if model_type in ("clipsep", "nit"):
        return TextQueries(separator, "label")
    return query_vector_strategy(checkpoint.with_suffix(".queries.npz"), oracle=model_type == "pit")


def evaluate_run(run_dir: Path, name: str, mixtures, device: str) -> dict:
    from clipsep_rt.api import Separator
    from clipsep_rt.model import load_checkpoint
    from clipsep_rt.query import QueryEncoderOptions
    from clipsep_rt.training.evaluate import evaluate

    checkpoint = run_dir / "best.safetensors"
    separator = Separator.from_checkpoint(checkpoint, device=device, precision="fp32",
                                          encoder=QueryEncoderOptions(use_cache=False))
    report = evaluate(separator, mixtures, queries=_strategy(name, separator, checkpoint))
    query_act, noise_act = mean_activations(run_dir / "log.csv")
    model_type, gamma = RUNS_TABLE[name]
    return {
        "run": name,
        "model_type": model_type,
        "gamma": gamma if model_type == "nit" else None,
        "steps": load_checkpoint(checkpoint).provenance.get("step"),
        "query": report.query_mode,
        "overall": report.overall,
        "mean_query_activation": query_act,
        "mean_noise_activation": noise_act if model_type == "nit" else None,
    }


def _fmt(stats: dict) -> str:
    return f"{stats['mean']:.2f} ± {stats['sem']:.2f} (median {stats['median']:.2f})"


def results_markdown(results: list[dict], count: int, machine: dict, mixture_file: Path) -> str:
    lines = [
        f"Clean 2-source test mixtures: {count} ({mixture_file.relative_to(ROOT)}, seed 0). "
        f"Device: {machine['cpu']}, {machine['threads']} thread(s). Mean ± SEM (median), dB.",
        "",
        "| run | model | gamma | best step | query | SDRi | SDR | SIR | SAR | SI-SDRi | mean query act. | mean noise act. |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        o = r["overall"]
        noise = "" if r["mean_noise_activation"] is None else f"{r['mean_noise_activation']:.3f}"
        gamma = "" if r["gamma"] is None else f"{r['gamma']}"
        lines.append(
            f"| {r['run']} | {r['model_type']} | {gamma} | {r['steps']} | {r['query']} | {_fmt(o['sdri'])} | "
            f"{_fmt(o['sdr'])} | {_fmt(o['sir'])} | {_fmt(o['sar'])} | {_fmt(o['si_sdri'])} | "
            f"{r['mean_query_activation']:.3f} | {noise} |"
        )
    return "\n".join(lines) + "\n"


def command_eval(args: argparse.Namespace) -> int:
    from clipsep_rt.measure.machine import machine_info
    from clipsep_rt.measure.results import write_results
    from clipsep_rt.training.evaluate import (
        make_eval_mixtures,
        read_mixture_list,
        write_mixture_list,
    )

    scale = SCALES[args.scale]
    mixture_file = scale.runs / "mixtures.json"
    if mixture_file.is_file():
        mixtures = read_mixture_list(mixture_file)
    else:
        mixtures = make_eval_mixtures(INDEX, split="test", count=args.count, seed=0)
        write_mixture_list(mixtures, mixture_file)
    names = [n for n in (args.only or RUNS_TABLE) if (scale.runs / n / "best.safetensors").is_file()]
    results = []
    for name in names:
        started = time.perf_counter()
        results.append(evaluate_run(scale.runs / name, name, mixtures, args.device))
        print(f"experiments: {name}: SDRi {_fmt(results[-1]['overall']['sdri'])} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    machine = machine_info()
    report = results_markdown(results, len(mixtures), machine, mixture_file)
    print(report, end="")
    write_results(RESULTS / f"{scale.results_stem}.json", RESULTS / f"{scale.results_stem}.md",
                  {"machine": machine, "config": scale.to_dict(), "results": results}, report, log=lambda line: print(line, file=sys.stderr))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train the runs (resumable)")
    p.add_argument("--only", nargs="+", choices=list(RUNS_TABLE), help="train only these runs")
    p.add_argument("--steps", type=int, help="override the scale's steps (reduced 1,000; paper 200,000)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(handler=command_train)
    p = sub.add_parser("eval", help="score every trained run on the same clean test mixtures")
    p.add_argument("--only", nargs="+", choices=list(RUNS_TABLE), help="evaluate only these runs")
    p.add_argument("--count", type=int, default=150, help="mixtures, when runs/experiments/mixtures.json is missing")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(handler=command_eval)
    for p in sub.choices.values():
        p.add_argument("--scale", choices=list(SCALES), default="reduced",
                       help="reduced (CPU, the default) or paper (ngf 64, batch 32, 200k steps: a GPU job)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
