"""The lean install, measured: `pip install clipsep-rt` (core only) into a fresh virtualenv.

  - set-up: the wall time of `python -m venv` + `pip install <this checkout>` (core), and of
    what `make demo` adds on top (the report extra: matplotlib, scipy);
  - size: the virtualenv on disk (du), its biggest packages, and a check that neither PyTorch
    nor any CUDA library got in;
  - a 1 s file separated by the bundled model with a NEW text query (a fresh embedding cache per
    run, so the text encoder runs every time), whole process, spawn to exit: the first run after
    the install (OpenVINO's model cache empty too: both graphs compiled from scratch), then
    --repeats runs with that cache filled (the state of an install in use), best of those.

    python benchmarks/lean_install.py                 # writes benchmarks/results/lean_install-<host>.json/.md
    python benchmarks/lean_install.py --repeats 5

Pip takes packages from wherever this machine's pip configuration points (a local index here,
so the set-up figure is not a download time).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.io.user_cache import CACHE_ENV
from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import result_stem, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "dog_guitar" / "mixture.wav"
TARGET_SIZE_MB, TARGET_ONE_SECOND_S, TARGET_SETUP_S = 400.0, 1.0, 60.0
FORBIDDEN = ("torch", "nvidia", "triton", "sentence_transformers", "transformers")  # must not be in a lean venv


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def timed(argv: list[str], env: dict | None = None, timeout: float = 900) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    return time.perf_counter() - start, done


def checked(what: str, done: subprocess.CompletedProcess) -> None:
    if done.returncode != 0:
        sys.exit(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="1 s separations, each with a new query (default 3)")
    p.add_argument("--json", type=Path, help="results JSON (default benchmarks/results/lean_install-<host>.json)")
    args = p.parse_args()
    if not 1 <= args.repeats <= 20:
        sys.exit(f"--repeats: 1 to 20, got {args.repeats}")
    info = {"hostname": socket.gethostname(), **machine_info(None), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="clipsep-lean-") as temporary:
        work = Path(temporary)
        venv, python = work / "venv", work / "venv" / "bin" / "python"
        install = [str(python), "-m", "pip", "install", "--quiet", str(ROOT)]
        log(f"set-up: {sys.executable} -m venv {venv} && {shlex.join(install)}")
        start = time.perf_counter()
        checked("venv", subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True))
        checked("pip install (core)", subprocess.run(install, capture_output=True, text=True, timeout=900))
        setup_s = time.perf_counter() - start
        size_mb = folder_mb(venv)
        site = next((venv / "lib").glob("python*/site-packages"))
        packages = sorted(((folder_mb(d), d.name) for d in site.iterdir() if d.is_dir()), reverse=True)[:8]
        found = [name for name in FORBIDDEN if any(d.name.split("-")[0].replace("-", "_") == name for d in site.iterdir())]
        log(f"core install: {setup_s:.1f} s, {size_mb:.0f} MB; biggest: {', '.join(f'{n} {m:.0f}' for m, n in packages)}")
        demo_s, done = timed([str(python), "-m", "pip", "install", "--quiet", f"{ROOT}[report]"])
        checked("pip install [report]", done)
        log(f"make demo's extra (report): +{demo_s:.1f} s")

        one_second = work / "one_s.wav"
        samples, rate = sf.read(EXAMPLE, dtype="float32")
        sf.write(one_second, samples[:rate], rate, subtype="PCM_16")
        runs, ran_as = [], ""
        for index in range(args.repeats + 1):  # the first: right after the install, every cache empty
            env = dict(os.environ, **{CACHE_ENV: str(work / "user-cache"), "CLIPSEP_RT_CACHE": str(work / f"emb{index}")})
            argv = [str(venv / "bin" / "clipsep-rt"), "-q", f"a dog barking at the postman, take {index}", str(one_second),
                    "-o", str(work / f"out{index}")]
            seconds, done = timed(argv, env)
            checked("the 1 s separation", done)
            ran_as = next((line for line in done.stderr.splitlines() if " on cpu in " in line), ran_as)
            runs.append(seconds)
            log(f"  1 s file, new text query: {seconds:.2f} s")
        assert not [f for f in (work / "out0").glob("*.wav") if not np.isfinite(sf.read(f)[0]).all()]
        shutil.rmtree(work / "out0", ignore_errors=True)
    info["load_after"] = os.getloadavg()
    first, best = runs[0], min(runs[1:])
    targets = [
        ("core install size under 400 MB", size_mb, size_mb < TARGET_SIZE_MB),
        ("no PyTorch, CUDA or sentence-transformers in it", len(found), not found),
        ("1 s file with a new text query, whole process, under 1 s (OpenVINO's model cache filled)", best,
         best < TARGET_ONE_SECOND_S),
        ("make demo set-up (venv + core + report extra) under 60 s, local index", setup_s + demo_s,
         setup_s + demo_s < TARGET_SETUP_S),
    ]
    command = "python " + shlex.join(sys.argv)
    report = "\n".join([
        "### Lean install (core only, no PyTorch)", "",
        f"Command: `{command}`", "",
        f"Machine: {info['cpu']}, {info['cores']} cores; load average (1 min) {info['load_before'][0]:.2f} before, "
        f"{info['load_after'][0]:.2f} after.", "",
        f"- fresh venv + `pip install .` (core): {setup_s:.1f} s; the report extra `make demo` adds: {demo_s:.1f} s",
        f"- size of the fresh core venv: {size_mb:.0f} MB; biggest: " + ", ".join(f"{n} {m:.0f} MB" for m, n in packages),
        f"- forbidden packages found: {', '.join(found) or 'none'}",
        f"- 1 s file, bundled model, a new text query each run (the embedding cache empty): first run after the "
        f"install {first:.2f} s (every cache empty); then best {best:.2f} s, runs "
        + ", ".join(f"{s:.2f}" for s in runs[1:]) + f" ({ran_as.removeprefix('clipsep-rt: ')})",
        "", "Targets:", "",
        *[f"- {'MET' if ok else 'MISSED'} {name}: {value:.2f}" for name, value, ok in targets],
    ]) + "\n"
    print(report)
    data = {"command": command, "machine": info, "setup_s": setup_s, "demo_extra_s": demo_s, "size_mb": size_mb,
            "biggest_mb": {n: m for m, n in packages}, "forbidden_found": found, "one_second_first_s": first, "one_second_runs_s": runs[1:],
            "ran_as": ran_as, "targets": [{"name": n, "value": v, "met": ok} for n, v, ok in targets]}
    json_path = args.json or HERE / "results" / f"{result_stem('lean_install', info['hostname'], False)}.json"
    write_results(json_path, None, data, report, log=log)


if __name__ == "__main__":
    main()
