"""Model v3 screening: recipe choices at equal training budget, scored on the real-sound dev set.

Every run is `configs/default_model_v3.toml` (the long run's config) made CLIPSep-NIT with
negative queries (b_negatives, the screening's reference) and then changed in one way, trained
from scratch for the same number of steps at the same batch size (so the same number of
mixtures seen), into runs/v3_experiments/NAME, and scored by the trainer on the dev set
(devset/devset.json, held-out packages only) every `--dev-every` steps:

  v2_recipe     the v1/v2 recipe on corpus v3: clips sampling (speech-heavy), native levels,
                short clips padded at the window start, no hierarchy, full augmentation
  a_recipe      the v3 mixture recipe alone (tempered classes, levelled sources at a drawn
                ratio, looped/placed short clips, class hierarchy), no negative queries
  b_negatives   a_recipe + hierarchy-aware negative queries (weight 0.3)
  c_film        b_negatives with the query also conditioning the U-Net (FiLM on the bottleneck
                and decoder levels, `ModelConfig.film`): one decoder pass per query
  d_clipsep     b_negatives as plain CLIPSep (no noise heads): chosen for the long run, so
                configs/default_model_v3.toml is this run's config
  e_width24     b_negatives with a U-Net 24 wide instead of 16

    python benchmarks/v3_experiments.py train --steps 1000              # all, resumable
    python benchmarks/v3_experiments.py train --only a_recipe e_width24
    python benchmarks/v3_experiments.py report                           # -> benchmarks/results/v3_experiments.{json,md}
    python benchmarks/v3_experiments.py query-cost                       # late fusion vs FiLM per extra query

`query-cost` times one network window (256 frames, the v3 width, fp32, 2 threads, median of
repeats) with 1, 2 and 4 queries for late fusion and for FiLM: what each extra query costs at
run time (pause any training on the machine while it runs).

The training wall time of each run is its own steps' time (evaluation excluded) on this
machine, which other work may share: compare mixtures seen, not hours.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import write_results
from clipsep_rt.training.augment import AugmentConfig
from clipsep_rt.training.datasets import MixRecipe
from clipsep_rt.training.run_state import read_dev_log
from clipsep_rt.training.train_config import TrainConfig
from clipsep_rt.training.trainer import train

ROOT = Path(__file__).resolve().parent.parent
BASE_CONFIG = ROOT / "configs/default_model_v3.toml"
RUNS = ROOT / "runs/v3_experiments"


def experiments(base: TrainConfig) -> dict[str, TrainConfig]:
    """Name -> config: the screening's reference (the long run's config as CLIPSep-NIT with
    negative queries) with one change each."""
    base = replace(base, model_type="nit", model=replace(base.model, noise_heads=2), negative_weight=0.3)
    recipe_only = replace(base, negative_weight=0.0)
    return {
        "v2_recipe": replace(recipe_only, sampling="clips", mix=MixRecipe(), augment=AugmentConfig(enabled=True)),
        "a_recipe": recipe_only,
        "b_negatives": base,
        "c_film": replace(base, model=replace(base.model, film=True)),
        "d_clipsep": replace(base, model_type="clipsep", model=replace(base.model, noise_heads=0)),
        "e_width24": replace(base, model=replace(base.model, ngf=24)),
    }


def report(names: list[str], steps: int) -> dict:
    results = {"machine": machine_info(2), "steps": steps, "runs": {}}
    for name in names:
        rows = [r for r in read_dev_log(RUNS / name) if int(r["step"]) <= steps]
        if not rows:
            continue
        last = rows[-1]
        best = max(rows, key=lambda r: float(r["sdri_label"]))
        results["runs"][name] = {
            "step": int(last["step"]), "mixtures_seen": int(last["mixtures_seen"]),
            "seconds_per_step": float(last["wall_s"]) / int(last["step"]),
            "last": {k: float(last[k]) for k in ("sdri_label", "sdri_paraphrase", "unrelated_db")},
            "best": {"step": int(best["step"]), **{k: float(best[k]) for k in ("sdri_label", "sdri_paraphrase", "unrelated_db")}},
            "curve": [(int(r["step"]), float(r["sdri_label"])) for r in rows],
        }
    return results


def report_markdown(results: dict, command: str) -> str:
    lines = [
        "# Model v3 screening on the real-sound dev set",
        "",
        f"Command: `{command}`",
        f"Machine: {results['machine'].get('cpu', '?')}, 2 threads. Budget: {results['steps']} steps of batch 8 per run.",
        "",
        "| run | mixtures seen | s/step | dev SDRi label (last) | paraphrase (last) | unrelated dB (last) | best SDRi (step) | curve (step: SDRi) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, run in results["runs"].items():
        last, best = run["last"], run["best"]
        curve = ", ".join(f"{s}: {v:.2f}" for s, v in run["curve"])
        lines.append(f"| {name} | {run['mixtures_seen']:,} | {run['seconds_per_step']:.2f} | {last['sdri_label']:.2f} | "
                     f"{last['sdri_paraphrase']:.2f} | {last['unrelated_db']:+.1f} | {best['sdri_label']:.2f} ({best['step']}) | {curve} |")
    return "\n".join(lines) + "\n"


def query_cost(base: TrainConfig, repeats: int = 7) -> dict:
    """Median seconds of one window's forward pass by query count, late fusion and FiLM."""
    from clipsep_rt.model.separator import CLIPSepSeparator

    torch.manual_seed(0)
    log_mag = torch.randn(1, 1, 256, 256)
    out = {}
    for name, config in (("late_fusion", base.model), ("film", replace(base.model, film=True))):
        model = CLIPSepSeparator(config).eval()
        out[name] = {}
        for queries in (1, 2, 4):
            embeddings = torch.randn(queries, config.query_dim)
            times = []
            with torch.no_grad():
                model(log_mag, embeddings)  # warm-up
                for _ in range(repeats):
                    started = time.perf_counter()
                    model(log_mag, embeddings)
                    times.append(time.perf_counter() - started)
            out[name][queries] = sorted(times)[len(times) // 2]
    return out


def query_cost_markdown(cost: dict, machine: dict) -> str:
    lines = ["# Run-time cost of extra queries: late fusion against FiLM", "",
             "Command: `python benchmarks/v3_experiments.py query-cost`",
             f"Machine: {machine.get('cpu', '?')}, 2 threads, fp32 torch; one 256-frame window (4.1 s), median of 7.", "",
             "| queries | late fusion (ms) | FiLM (ms) | FiLM / late |", "| ---: | ---: | ---: | ---: |"]
    for queries in cost["late_fusion"]:
        late, film = cost["late_fusion"][queries] * 1e3, cost["film"][queries] * 1e3
        lines.append(f"| {queries} | {late:.1f} | {film:.1f} | {film / late:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("train", "report", "query-cost"))
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--dev-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    base = TrainConfig.from_file(BASE_CONFIG)
    runs = experiments(base)
    names = args.only or list(runs)
    unknown = set(names) - set(runs)
    if unknown:
        parser.error(f"unknown run(s) {', '.join(sorted(unknown))}; known: {', '.join(runs)}")
    if args.action == "train":
        torch.set_num_threads(args.threads)
        for name in names:
            config = replace(runs[name], out_dir=RUNS / name, steps=args.steps, dev_every=args.dev_every,
                             val_every=args.dev_every)
            print(f"== {name}", flush=True)
            train(config, log=lambda line: print(line, flush=True), progress=False)
        return 0
    if args.action == "query-cost":
        torch.set_num_threads(args.threads)
        machine = machine_info(args.threads)
        cost = query_cost(base)
        markdown = query_cost_markdown(cost, machine)
        print(markdown)
        write_results(ROOT / "benchmarks/results/v3_query_cost.json", None, {"machine": machine, "seconds": cost}, markdown,
                      log=lambda line: print(line, file=sys.stderr))
        return 0
    results = report(names, args.steps)
    command = "python benchmarks/v3_experiments.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    markdown = report_markdown(results, command)
    print(markdown)
    write_results(ROOT / "benchmarks/results/v3_experiments.json", None, results, markdown, log=lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
