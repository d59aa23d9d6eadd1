"""The long training run of a default model, kept going across developer sessions.

A session's checkout holds the run only as committed files in the campaign folder
(`checkpoints/<run>/`): the run folder (`runs/<run>/`, untracked) lives as long as the
machine. So a session

1. `resume`s (`make train-resume`): the run folder is seeded from the campaign folder when
   the committed state is further along (or the run folder is new), then `clipsep-rt train`
   continues it in the background (nohup; its output in `train.out`, its pid in `train.pid`);
2. works beside it (pause it with `kill -STOP <pid>` while timing a benchmark, `kill -CONT` after);
3. `snapshot`s before it stops (`make train-snapshot`): the run's last state, its best checkpoint
   (chosen on the real-sound dev set by the trainer) and a row in the campaign log are copied
   into the campaign folder, to be committed.

Campaign folder:
    last.safetensors, last.state.pt   weights, optimiser, schedule, RNG, step, wall time, best dev score
    best.safetensors                  the best checkpoint on the dev set so far
    dev_log.csv                       the trainer's dev-set rows (every dev_every steps)
    log.csv                           one row per snapshot: when, step, mixtures seen, training wall
                                      time, latest and best dev SDRi, the best's step, machine
"""

from __future__ import annotations

import argparse
import csv
import datetime
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output

STATE_FILES = ("last.safetensors", "last.state.pt", "best.safetensors", "dev_log.csv")
_LOG = logging.getLogger(__name__)
CAMPAIGN_LOG_COLUMNS = ("date", "step", "mixtures_seen", "train_wall_h", "dev_sdri_latest", "dev_sdri_best",
                        "best_step", "unrelated_db_best", "machine")


def _state(folder: Path) -> dict | None:
    path = folder / "last.state.pt"
    if not path.is_file():
        return None
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def _step(folder: Path) -> int:
    state = _state(folder)
    return int(state["step"]) if state else 0


def running_pid(run_dir: Path) -> int | None:
    """The pid of this run's background trainer when it is alive, else None."""
    try:
        pid = int((run_dir / "train.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return pid
    return pid if "train" in command else None


def seed_run(run_dir: Path, campaign_dir: Path, log: Callable[[str], None] = _LOG.info) -> int:
    """Copy the campaign's committed state into the run folder when it is further along; the step to resume at."""
    committed, local = _step(campaign_dir), _step(run_dir)
    if committed > local:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in STATE_FILES:
            if (campaign_dir / name).is_file():
                shutil.copy2(campaign_dir / name, run_dir / name)
        log(f"campaign: run folder {run_dir} seeded from {campaign_dir} at step {committed}")
        return committed
    if local:
        log(f"campaign: run folder {run_dir} is at step {local} (committed: {committed})")
    return local


def resume(config_path: Path, run_dir: Path, campaign_dir: Path, threads: int = 2, log: Callable[[str], None] = _LOG.info) -> int:
    """Seed the run folder and start `clipsep-rt train` on `config_path` in the background; its pid."""
    pid = running_pid(run_dir)
    if pid is not None:
        log(f"campaign: already training (pid {pid}); output in {run_dir / 'train.out'}")
        return pid
    seed_run(run_dir, campaign_dir, log)
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "import sys; from clipsep_rt.cli import main; sys.exit(main())",
               "train", "--config", str(config_path), "--threads", str(threads)]
    with open(run_dir / "train.out", "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"})  # the log holds lines, not progress bars
    (run_dir / "train.pid").write_text(f"{process.pid}\n")
    log(f"campaign: training in the background, pid {process.pid}; follow with: tail -f {run_dir / 'train.out'}")
    log(f"campaign: pause with kill -STOP {process.pid} (resume: kill -CONT {process.pid}); "
        f"before the session ends: make train-snapshot")
    return process.pid


def snapshot(run_dir: Path, campaign_dir: Path, log: Callable[[str], None] = _LOG.info) -> dict:
    """Copy the run's state, best checkpoint and dev log into the campaign folder and append a
    row to its log.csv; the row. The trainer writes its state atomically, so a snapshot taken
    while it runs is consistent (the state of the last checkpoint step)."""
    pid = running_pid(run_dir)
    if pid is not None:
        os.kill(pid, signal.SIGSTOP)  # no checkpoint write while copying
    try:
        return _snapshot(run_dir, campaign_dir, log, pid)
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGCONT)


def _consistent_state(run_dir: Path, pid: int | None) -> dict | None:
    """The run's state once last.safetensors and last.state.pt are of the same step (a trainer
    stopped between writing the two is let run a moment longer)."""
    from clipsep_rt.model.checkpoint import load_checkpoint

    for _ in range(20):
        state = _state(run_dir)
        if state is None or load_checkpoint(run_dir / "last.safetensors").provenance.get("step") == state["step"]:
            return state
        if pid is None:
            break
        os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)
        os.kill(pid, signal.SIGSTOP)
    raise ClipsepError(f"campaign: {run_dir}: last.safetensors and last.state.pt are of different steps")


def _snapshot(run_dir: Path, campaign_dir: Path, log, pid: int | None) -> dict:
    state = _consistent_state(run_dir, pid)
    if state is None:
        raise ClipsepError(f"campaign: {run_dir} holds no training state (last.state.pt): nothing to snapshot")
    if state["step"] < _step(campaign_dir):
        raise ClipsepError(f"campaign: {run_dir} is at step {state['step']}, behind the committed "
                           f"step {_step(campaign_dir)}: resume it first (make train-resume)")
    campaign_dir.mkdir(parents=True, exist_ok=True)
    for name in STATE_FILES:
        source = run_dir / name
        if source.is_file():
            with atomic_output(campaign_dir / name, overwrite=True) as temporary:
                shutil.copy2(source, temporary)
    from clipsep_rt.training.run_state import read_dev_log

    rows = [r for r in read_dev_log(run_dir) if int(r["step"]) <= int(state["step"])]
    best = max(rows, key=lambda r: float(r["sdri_label"])) if rows else None
    row = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "step": int(state["step"]),
        "mixtures_seen": int(state.get("mixtures_seen", 0)),
        "train_wall_h": f"{float(state.get('wall_s', 0.0)) / 3600:.2f}",
        "dev_sdri_latest": rows[-1]["sdri_label"] if rows else "",
        "dev_sdri_best": best["sdri_label"] if best else "",
        "best_step": best["step"] if best else "",
        "unrelated_db_best": best["unrelated_db"] if best else "",
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }
    log_path = campaign_dir / "log.csv"
    new = not log_path.is_file()
    with open(log_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CAMPAIGN_LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    log(f"campaign: snapshot of step {row['step']} ({row['mixtures_seen']} mixtures, {row['train_wall_h']} h) "
        f"in {campaign_dir}; best dev SDRi {row['dev_sdri_best']} dB at step {row['best_step']}: commit it")
    return row


def stop(run_dir: Path, log: Callable[[str], None] = _LOG.info) -> None:
    """Stop the background trainer (SIGTERM; it keeps its last checkpoint)."""
    pid = running_pid(run_dir)
    if pid is None:
        log(f"campaign: no trainer running for {run_dir}")
        return
    os.kill(pid, signal.SIGCONT)
    os.kill(pid, signal.SIGTERM)
    log(f"campaign: sent SIGTERM to {pid}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Resume, snapshot or stop the long training run of a default model.")
    parser.add_argument("action", choices=("resume", "snapshot", "stop", "status"))
    parser.add_argument("--config", type=Path, default=Path("configs/default_model_v3.toml"))
    parser.add_argument("--campaign", type=Path, default=Path("checkpoints/default_v3"), help="the committed campaign folder")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from clipsep_rt.training.train_config import TrainConfig

    try:
        run_dir = TrainConfig.from_file(args.config).out_dir.resolve()
        if args.action == "resume":
            resume(args.config, run_dir, args.campaign, args.threads, log=print)
        elif args.action == "snapshot":
            snapshot(run_dir, args.campaign, log=print)
        elif args.action == "stop":
            stop(run_dir, log=print)
        else:
            pid = running_pid(run_dir)
            print(f"run {run_dir}: step {_step(run_dir)}, {'training, pid ' + str(pid) if pid else 'not running'}; "
                  f"committed step {_step(args.campaign)}")
    except ClipsepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
