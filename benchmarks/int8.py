"""The INT8 CPU graph against fp32 and bf16: speed, mask SNR and SDRi, in one run.

For the bundled default model (and, with --full-size, the paper-size ngf 64 U-Net with random
weights, speed only) this exports an engine folder with `export_engines(int8=True)`,
calibrated on --calibration audio (default: the shipped examples/dog_guitar sounds), then:
  - speed: end-to-end offline separation (`Separator.separate`: STFT, windows, network,
    masks, iSTFT) of the example mixture tiled to --seconds, one query, in x real-time,
    median of --repeats runs after a warm-up, for torch fp32, torch bf16 (CPUs with native
    bf16), onnxruntime fp32 and onnxruntime int8;
  - quality (default model): the INT8 masks' SNR against FP32 on held-out calibration
    windows (the manifest's record), and the SDRi of the query "dog barking" on the example
    mixture against its shipped ground truth (dog.wav, guitar.wav) for every engine.

    python benchmarks/int8.py                       # default model, 2 threads
    python benchmarks/int8.py --full-size           # also the ngf 64 U-Net (speed)
    python benchmarks/int8.py --quick               # smoke test
    python benchmarks/int8.py --calibration-corpus corpus/index.csv --keep-engines engines-int8/
    python benchmarks/separation_quality.py --engine engines-int8/ --precision int8 --stream-count 0 \
        --split test --split cross_source     # and --precision fp32: corpus SDRi, same mixtures

--calibration-corpus calibrates on two-source mixtures of the corpus's train split
(`write_training_mixtures`) instead of the example sounds, so the SDRi of held-out corpus
mixtures (separation_quality.py, test and cross_source splits) is not flattered by it.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from clipsep_rt.api import Separator
from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import write_results
from clipsep_rt.config import ModelConfig
from clipsep_rt.dsp.metrics import separation_metrics
from clipsep_rt.errors import ClipsepError
from clipsep_rt.export.pipeline import ExportOptions, export_engines
from clipsep_rt.model.checkpoint import checkpoint_from_model, save_checkpoint
from clipsep_rt.model.device import cpu_has_native_bf16
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.model.weights import default_checkpoint

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dog_guitar"
ENGINES = (("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"))
SDRI_TOLERANCE_DB = 0.2  # `auto` may pick int8 only within this of fp32


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--full-size", action="store_true", help="also time the ngf 64 U-Net (random weights)")
    p.add_argument("--calibration", type=Path, nargs="+", default=sorted(EXAMPLE.glob("*.wav")))
    p.add_argument("--calibration-corpus", type=Path, metavar="INDEX",
                   help="calibrate on --calibration-mixtures two-source mixtures of this corpus index's train split "
                        "instead (written to a temporary folder)")
    p.add_argument("--calibration-mixtures", type=int, default=32)
    p.add_argument("--keep-engines", type=Path, metavar="DIR",
                   help="export the default model's engine folder here and keep it (e.g. for separation_quality.py --engine)")
    p.add_argument("--quick", action="store_true", help="1 repeat of 10 s")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/int8.json"))
    p.add_argument("--markdown", type=Path, default=None)
    return p.parse_args()


def write_training_mixtures(index: Path, folder: Path, count: int, seed: int = 7) -> list[Path]:
    """`count` mixtures of two train-split clips of different classes (up to 4 s, the second at
    a target-to-interference ratio uniform in -5..+5 dB, peak-limited), as 16 kHz WAV files."""
    from clipsep_rt.io.media import load_audio
    from clipsep_rt.training.index import read_index

    by_label: dict[str, list[Path]] = {}
    for clip in read_index(index):
        if clip.split == "train":
            by_label.setdefault(clip.label, []).append(clip.audio)
    labels = sorted(by_label)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        first, second = (by_label[labels[i]] for i in rng.choice(len(labels), 2, replace=False))
        a = load_audio(first[rng.integers(len(first))], 16000).samples
        b = load_audio(second[rng.integers(len(second))], 16000).samples
        n = min(len(a), len(b), 4 * 16000)
        a, b = a[:n], b[:n]
        b = b * (np.sqrt(np.mean(a**2)) + 1e-9) / (np.sqrt(np.mean(b**2)) + 1e-9) * 10 ** (-rng.uniform(-5, 5) / 20)
        mixture = a + b
        mixture /= max(1.0, float(np.abs(mixture).max()) / 0.99)
        paths.append(folder / f"train_mixture_{k:02d}.wav")
        sf.write(paths[-1], mixture.astype(np.float32), 16000)
    return paths


def _read(name: str) -> np.ndarray:
    samples, _ = sf.read(EXAMPLE / f"{name}.wav", dtype="float32")
    return samples


def _speed(separator: Separator, mixture: np.ndarray, embedding: np.ndarray, repeats: int) -> float:
    """x real-time of separating `mixture` (16 kHz) with one query vector."""
    separator.separate(mixture[:16000 * 5], 16000, embeddings={"q": embedding})  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        separator.separate(mixture, 16000, embeddings={"q": embedding})
        times.append(time.perf_counter() - start)
    return len(mixture) / 16000 / statistics.median(times)


def measure_model(name: str, checkpoint: Path, args, quality: bool, log) -> tuple[list[dict], dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="clipsep-int8-bench-") as folder:
        engine_dir, keep = Path(folder) / "engines", quality and args.keep_engines is not None
        if keep:  # the default model's folder, with its text encoder, for separation_quality.py --engine
            engine_dir = args.keep_engines
        manifest = export_engines(checkpoint, engine_dir, ExportOptions(
            fp16=False, text_encoder=keep, int8=True, calibration=tuple(args.calibration)), log=log)
        mixture, dog, guitar = _read("mixture"), _read("dog"), _read("guitar")
        long_mix = np.resize(mixture, int(args.seconds * 16000))
        reference = None
        for backend, precision in ENGINES:
            row = {"model": name, "engine": f"{backend} {precision}", "x_realtime": None, "sdri_db": None, "status": "ok"}
            if precision == "bf16" and not cpu_has_native_bf16():
                rows.append({**row, "status": "skipped: no native bf16 on this CPU"})
                continue
            try:
                separator = Separator.open(engine_dir=engine_dir, backend=backend, device="cpu", precision=precision,
                                           threads=args.threads)
            except ClipsepError as error:
                rows.append({**row, "status": f"skipped: {error}"})
                continue
            embedding = np.random.default_rng(0).standard_normal(separator.query_dim).astype(np.float32)
            row["x_realtime"] = _speed(separator, long_mix, embedding / np.linalg.norm(embedding), args.repeats)
            if quality:
                estimate = separator.separate(mixture, 16000, ["dog barking"]).sources["dog barking"]
                row["sdri_db"] = float(separation_metrics(estimate, dog, guitar, mixture).sdri)
                if reference is None:
                    reference = row["sdri_db"]  # torch fp32
                row["sdri_vs_fp32_db"] = row["sdri_db"] - reference
            log(f"  {name} {row['engine']}: {row['x_realtime']:.1f}x real-time"
                + (f", SDRi {row['sdri_db']:.2f} dB" if quality else ""))
            rows.append(row)
    return rows, manifest.separator.int8


def report(args, rows: list[dict], int8_records: dict, machine: dict) -> str:
    command = "python benchmarks/int8.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        "# INT8 CPU graph", "",
        f"Command: `{command.strip()}`", "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {args.threads} threads, torch {machine['torch']}, "
        f"onnxruntime {machine['onnxruntime']}, no GPU.", "",
        f"Speed: offline separation of {args.seconds:g} s (the example mixture tiled), 1 query, median of "
        f"{args.repeats}. SDRi: query \"dog barking\" on examples/dog_guitar/mixture.wav against its ground truth.", "",
        "| model | engine | x real-time | SDRi (dB) | SDRi - torch fp32 (dB) |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['model']} | {row['engine']} | {row['status']} | | |")
            continue
        sdri = f"{row['sdri_db']:.2f}" if row["sdri_db"] is not None else "-"
        delta = f"{row['sdri_vs_fp32_db']:+.2f}" if row.get("sdri_vs_fp32_db") is not None else "-"
        lines.append(f"| {row['model']} | {row['engine']} | {row['x_realtime']:.1f}x | {sdri} | {delta} |")
    lines.append("")
    for name, record in int8_records.items():
        calibration = ", ".join(item["name"] for item in record["calibration"])
        lines.append(f"- {name}: INT8 masks {record['mask_snr_db']} dB SNR against FP32 on {record['check_windows']} "
                     f"held-out windows; calibrated on {record['calibration_windows']} windows of {calibration}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    if args.quick:
        args.seconds, args.repeats = 10.0, 1
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="clipsep-int8-calibration-") as scratch:
        if args.calibration_corpus is not None:
            args.calibration = write_training_mixtures(args.calibration_corpus, Path(scratch), args.calibration_mixtures)
        run(args)


def run(args) -> None:
    log = lambda line: print(line, flush=True)  # noqa: E731
    rows, records = measure_model("default (ngf 16)", default_checkpoint(), args, True, log)
    int8_records = {"default (ngf 16)": records}
    if args.full_size:
        torch.manual_seed(0)
        model = CLIPSepSeparator(ModelConfig(query_dim=384)).eval()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "full.safetensors"
            save_checkpoint(checkpoint_from_model(model, None), path)
            full_rows, record = measure_model("full size (ngf 64, random)", path, args, False, log)
        rows += full_rows
        int8_records["full size (ngf 64, random)"] = record
    machine = machine_info(args.threads)
    write_results(args.json, args.markdown, {"machine": machine, "rows": rows, "int8": int8_records},
                  report(args, rows, int8_records, machine), log=log)


if __name__ == "__main__":
    main()
