"""`clipsep-rt train`: train CLIPSep, CLIPSep-NIT, LabelSep or PIT from a config file."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipsep_rt.cli.common import say


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train CLIPSep, CLIPSep-NIT, LabelSep or PIT from a config file",
        description="Train a separator with the paper's recipe (2-source mix-and-separate, binary masks, weighted "
                    "BCE, Adam with warm-up and linear decay, gradient clip 1.0). Runs resume from OUT_DIR.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE.toml|json")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--out-dir", type=Path, metavar="DIR", help="override the output folder")
    p.add_argument("-d", "--device", help="override the device (cpu, cuda)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from clipsep_rt.model.hardware import check_threads
    from clipsep_rt.training.train_config import TrainConfig
    from clipsep_rt.training.trainer import train

    if args.threads is not None:
        check_threads(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    config = TrainConfig.from_file(args.config)
    overrides = {"steps": args.steps, "out_dir": args.out_dir, "device": args.device}
    config = replace(config, **{key: value for key, value in overrides.items() if value is not None})
    best = train(config, log=say)
    print(f"best checkpoint: {best}")
    return 0
