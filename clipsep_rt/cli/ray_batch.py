"""`clipsep-rt separate --ray ADDRESS`: the batch on a Ray cluster (jobs/distributed.py).

The command line is the local batch's, plus the --ray options; the queries are embedded
here once and every worker loads the separator itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from clipsep_rt.cli.common import EXIT_FAILURES, say, say_error
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
                        "Inputs and -o must be on storage every worker sees; a .txt/.csv input is a list of inputs")
    g.add_argument("--ray-workers", type=int, metavar="N",
                   help="workers, each holding one loaded separator (default: as many as the cluster's CPUs or GPUs hold)")
    g.add_argument("--ray-cpus-per-worker", type=float, default=1.0, metavar="N", help="CPUs per worker (default: 1)")
    g.add_argument("--ray-gpus-per-worker", type=float, default=0.0, metavar="N",
                   help="GPUs per worker (default: 0; 0.5 puts two workers on each GPU)")
    g.add_argument("--ray-retries", type=int, default=2, metavar="N",
                   help="times a file is tried again after its worker died while separating it (default: 2)")


def wants_ray(args: argparse.Namespace) -> bool:
    """--ray, or one of the options that go with it (refused without it by `run_ray_batch`)."""
    return args.ray is not None or any(name in args.given for name in RAY_ONLY)


def run_ray_batch(args: argparse.Namespace, specs: list[str]) -> int:
    from clipsep_rt.cli.session import open_session
    from clipsep_rt.io.media import expand_inputs
    from clipsep_rt.io.path_lists import flatten_specs
    from clipsep_rt.jobs.distributed import DistributedJob, RayCluster, separate_on_ray
    from clipsep_rt.jobs.manifest import MANIFEST_NAME
    from clipsep_rt.jobs.outputs import OutputOptions, input_roots

    _refuse_unsupported(args, specs)
    output = Path(args.output[0] if args.output else "separated")
    options = OutputOptions(args.noise_heads, args.residual, args.combine, args.video, args.audio_format, args.sample_rate,
                            mono=args.mono)
    cluster = RayCluster(args.ray, args.ray_workers, args.ray_cpus_per_worker, args.ray_gpus_per_worker, args.ray_retries)
    session = open_session(args, noise_heads=args.noise_heads)  # embeds the queries; checks the model loads
    flat = flatten_specs(specs)
    inputs, input_errors = expand_inputs(flat)
    for message in input_errors:
        say_error(message)
    if not args.quiet:
        print(session.describe(), file=sys.stderr)
    spec = dataclasses.replace(session.separator.spec, threads=max(1, int(cluster.cpus_per_worker)))
    job = DistributedJob(spec, session.queries.names, session.queries.embeddings, options, output,
                         noise_heads=args.noise_heads, overwrite=args.overwrite)
    meter = None if args.quiet else _FilesMeter(len(inputs))
    try:
        report = separate_on_ray(job, inputs, cluster, roots=input_roots(flat), log=say,
                                 progress=meter.update if meter else None)
    finally:
        if meter is not None:
            meter.close()
    failed = len(report.failures) + len(input_errors)
    if not args.quiet:
        separated = len(report.results) - len(report.failures)
        hours = report.audio_seconds / 3600
        rate = f", {hours / report.elapsed_s * 3600:.3g} audio h/h" if report.elapsed_s and hours else ""
        say(f"{separated} of {len(inputs) + len(input_errors)} inputs separated on {len(report.workers)} Ray workers"
            + (f", {len(report.skipped)} already done" if report.skipped else "")
            + f", {len(report.written)} files written to {output}" + (f", {failed} failed" if failed else "")
            + f" ({hours:.3g} audio h in {report.elapsed_s:.1f} s{rate}); results in {output / MANIFEST_NAME}")
    return EXIT_FAILURES if failed else 0


def _refuse_unsupported(args: argparse.Namespace, specs: list[str]) -> None:
    if args.ray is None:
        given = [flag for name, flag in RAY_ONLY.items() if name in args.given]
        raise ClipsepError(f"{', '.join(given)}: goes with --ray ADDRESS (local, auto, or a cluster address)")
    if specs == ["mic"] or args.stream:
        raise ClipsepError("--ray separates files in batch; it does not stream (--stream or --input mic)")
    if args.report:
        raise ClipsepError("--report is made by a local batch, not with --ray")
    if args.output and (len(args.output) > 1 or Path(args.output[0]).suffix.lower() in (".wav", ".flac")):
        raise ClipsepError("--ray writes to one output directory: give -o DIR once")


class _FilesMeter:
    """Progress on stderr: files done / total, and audio hours separated per second."""

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
