"""`clipsep-rt separate --ray ADDRESS`: the batch's Ray executor (jobs/distributed.py).

The command line is the local batch's (cli/separate.py runs both), plus the --ray options;
the queries are embedded here once and every worker loads the separator itself.
"""

from __future__ import annotations

import argparse
import sys

from clipsep_rt.errors import ClipsepError

# argparse dest -> flag of the options that only --ray uses
RAY_ONLY = {
    "ray_workers": "--ray-workers", "ray_cpus_per_worker": "--ray-cpus-per-worker",
    "ray_gpus_per_worker": "--ray-gpus-per-worker", "ray_retries": "--ray-retries",
}


def ray_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ray cluster (batch separation on many machines; needs clipsep-rt[distributed])")
    g.add_argument("--ray", metavar="ADDRESS",
                   help="separate the inputs on a pool of Ray workers: 'local' starts Ray on this machine, 'auto' joins "
                        "the running cluster (as `ray start` made it), or a cluster address (ray://HOST:10001, HOST:6379). "
                        "Inputs, -o and --checkpoint/--engine must be on storage every worker sees")
    g.add_argument("--ray-workers", type=int, metavar="N",
                   help="workers, each holding one loaded separator (default: as many as the cluster's CPUs or GPUs hold)")
    g.add_argument("--ray-cpus-per-worker", type=float, default=1.0, metavar="N", help="CPUs per worker (default: 1)")
    g.add_argument("--ray-gpus-per-worker", type=float, default=0.0, metavar="N",
                   help="GPUs per worker (default: 0; 0.5 puts two workers on each GPU)")
    g.add_argument("--ray-retries", type=int, default=2, metavar="N",
                   help="times a file is tried again after its worker died while separating it, 0 to 10 (default: 2)")


def wants_ray(args: argparse.Namespace) -> bool:
    """--ray, or one of the options that go with it (refused without it by `check_ray_options`)."""
    return args.ray is not None or any(name in args.given for name in RAY_ONLY)


def check_ray_options(args: argparse.Namespace, specs: list[str]) -> None:
    """Refuse the --ray options without --ray, and --ray with a stream."""
    if args.ray is None:
        given = [flag for name, flag in RAY_ONLY.items() if name in args.given]
        raise ClipsepError(f"{', '.join(given)}: goes with --ray ADDRESS (local, auto, or a cluster address)")
    if specs == ["mic"] or args.stream:
        raise ClipsepError("--ray separates files in batch; it does not stream (--stream or --input mic)")


def ray_cluster(args: argparse.Namespace):
    """The RayCluster of --ray and its options (checked before the model loads)."""
    from clipsep_rt.jobs.distributed import RayCluster

    return RayCluster(args.ray, args.ray_workers, args.ray_cpus_per_worker, args.ray_gpus_per_worker, args.ray_retries)


def ray_executor(separator, cluster):
    """The batch's executor on `cluster`: its workers load what `separator` was opened from."""
    from clipsep_rt.jobs.distributed import RayExecutor

    return RayExecutor(separator.spec, cluster)


class FilesMeter:
    """Progress of a Ray batch on stderr: files done / total, and audio hours separated per second."""

    def __init__(self, total: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="files", unit="file", leave=False, file=sys.stderr, disable=None)

    def update(self, progress) -> None:
        self.bar.n = progress.done
        self.bar.set_postfix_str(f"{progress.audio_hours_per_second:.3g} audio h/s"
                                 + (f", {progress.failed} failed" if progress.failed else ""), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
