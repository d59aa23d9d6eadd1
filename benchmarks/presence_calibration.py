"""Presence score and gate (`clipsep_rt.dsp.presence`) calibrated on the real-sound dev set
(held-out packages): the threshold, precision/recall of presence per second, the output
energy on absent seconds with and without the gate, and the SDRi the gate loses where the
target is present. Bundled model, ONNX Runtime.

Trials per dev-set mixture (target t + interference n, about 4 s):
  mixture     t + n queried by its target label: present where t is (per second, below),
              and by its unrelated class's label: absent throughout
  silenced    [t + n | n | t + n] (about 12 s) queried by the target label: the target is
              silenced for the middle part (tests the time resolution and the gate's fades)
Per second, the truth: present where t holds at least -15 dB of the mixture's energy, absent
where it holds less than -40 dB (or nothing); seconds in between are left out.

Mixtures with even index pick the threshold (the highest Youden J = recall - false-alarm
rate over a grid, on offline per-second scores); odd ones are scored with it. The gate runs
with that threshold (and the module's other defaults). `--stream-count` evaluation
mixtures also go through the streaming path (`--latency` preset, causal gate).

    python benchmarks/presence_calibration.py                       # all 240 mixtures
    python benchmarks/presence_calibration.py --count 16 --stream-count 2 --quick
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.api import GateOptions, Separator
from clipsep_rt.dsp.metrics import separation_metrics
from clipsep_rt.dsp.presence import PRESENCE_THRESHOLD
from clipsep_rt.measure.machine import machine_info
from clipsep_rt.measure.results import result_stem, write_results
from clipsep_rt.runtime.streaming import stream_file_aligned

RATE = 16000
PRESENT_DB, ABSENT_DB = -15.0, -40.0
GRID = np.round(np.arange(0.02, 0.80, 0.01), 3)


def seconds_energy(x: np.ndarray) -> np.ndarray:
    """(n,) -> energy per (started) second."""
    count = -(-len(x) // RATE)
    padded = np.zeros(count * RATE)
    padded[: len(x)] = x
    return (padded.reshape(count, RATE).astype(np.float64) ** 2).sum(axis=1)


def truth(target: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """Per second: 1 present, 0 absent, -1 left out."""
    t, m = seconds_energy(target), seconds_energy(mixture)
    ratio = 10 * np.log10(np.maximum(t, 1e-20) / np.maximum(m, 1e-20))
    return np.where(ratio >= PRESENT_DB, 1, np.where((ratio < ABSENT_DB) | (t == 0), 0, -1))


def trials(entry: dict, root: Path) -> list[dict]:
    t = sf.read(root / entry["target_audio"], dtype="float32")[0]
    n = sf.read(root / entry["interference_audio"], dtype="float32")[0]
    mix = t + n
    label, unrelated = entry["target_labels"][0], entry["unrelated_labels"][0]
    silent = np.zeros_like(t)
    seq_t, seq_n = np.concatenate([t, silent, t]), np.concatenate([n, n, n])
    return [
        {"kind": "mixture", "query": label, "mixture": mix, "target": t, "interference": n, "truth": truth(t, mix)},
        {"kind": "unrelated", "query": unrelated, "mixture": mix, "target": None, "truth": np.zeros(len(truth(t, mix)), int)},
        {"kind": "silenced", "query": label, "mixture": seq_t + seq_n, "target": seq_t, "interference": seq_n,
         "truth": truth(seq_t, seq_t + seq_n)},
    ]


def absent_energy_db(output: np.ndarray, mixture: np.ndarray, labels: np.ndarray) -> float | None:
    """Output energy over the mixture's on the absent seconds, dB (None without any)."""
    absent = labels == 0
    if not absent.any():
        return None
    out, mix = seconds_energy(output)[absent].sum(), seconds_energy(mixture)[absent].sum()
    return max(-120.0, 10 * math.log10(max(out, 1e-30) / mix)) if mix > 0 else None


def scored(separator: Separator, trial: dict, gate: GateOptions | None, stream: str | None) -> dict:
    """One trial separated (offline, or streamed with preset `stream`): scores, absent energy, SDRi."""
    mix = trial["mixture"]
    if stream is None:
        result = separator.separate(mix, RATE, [trial["query"]], gate=gate or False)
        output, scores = result.sources[trial["query"]], result.presence[trial["query"]]
    else:
        live = separator.stream([trial["query"]], latency=stream, gate=gate or False)
        output = stream_file_aligned(live, [mix[i : i + 256] for i in range(0, len(mix), 256)])[0]
        scores = np.array(live.presence.scores()[trial["query"]], np.float64)
    labels = trial["truth"][: len(scores)]
    row = {"scores": [float(s) for s in scores], "truth": labels.tolist(),
           "absent_db": absent_energy_db(output, mix, labels)}
    if trial["kind"] == "mixture":
        row["silent_output"] = not np.any(output)
        if row["silent_output"]:  # the gate closed throughout: BSS Eval has no SDR for it; the plain SNR is 0 dB
            row["sdri"] = -float(separation_metrics(mix, trial["target"], trial["interference"], mix).sdr)
        else:
            row["sdri"] = float(separation_metrics(output, trial["target"], trial["interference"], mix).sdri)
    return row


def pick_threshold(rows: list[dict]) -> tuple[float, dict]:
    scores = np.concatenate([r["scores"] for r in rows])
    labels = np.concatenate([r["truth"] for r in rows])
    scores, labels = scores[labels >= 0], labels[labels >= 0]
    best, table = None, {}
    for threshold in GRID:
        recall = float((scores[labels == 1] >= threshold).mean())
        false_alarm = float((scores[labels == 0] >= threshold).mean())
        table[float(threshold)] = (recall, false_alarm)
        if best is None or recall - false_alarm > table[best][0] - table[best][1]:
            best = float(threshold)
    return best, {"recall": table[best][0], "false_alarm": table[best][1], "youden_j": table[best][0] - table[best][1]}


def presence_figures(rows: list[dict], threshold: float) -> dict:
    scores = np.concatenate([r["scores"] for r in rows])
    labels = np.concatenate([r["truth"] for r in rows])
    keep = labels >= 0
    said, true = scores[keep] >= threshold, labels[keep] == 1
    pos, neg = scores[keep][true], scores[keep][~true]
    auc = float((pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()) if len(pos) and len(neg) else None
    return {"seconds": int(keep.sum()), "present_seconds": int(true.sum()),
            "precision": float((said & true).sum() / max(1, said.sum())), "recall": float((said & true).sum() / max(1, true.sum())),
            "false_alarm_rate": float((said & ~true).sum() / max(1, (~true).sum())), "auc": auc}


def summary(off: list[dict], on: list[dict], kinds: list[str]) -> dict:
    out = {}
    for kind in ("unrelated", "silenced", "mixture"):
        pairs = [(a, b) for a, b, k in zip(off, on, kinds) if k == kind]
        absent = [(a["absent_db"], b["absent_db"]) for a, b in pairs if a["absent_db"] is not None]
        entry = {"trials": len(pairs)}
        if absent:
            entry["absent_db_off_mean"] = float(np.mean([a for a, _ in absent]))
            entry["absent_db_on_mean"] = float(np.mean([b for _, b in absent]))
            entry["absent_db_on_median"] = float(np.median([b for _, b in absent]))
            entry["absent_trials_30db_below"] = float(np.mean([b <= -30 for _, b in absent]))
        if kind == "mixture":
            entry["sdri_off"] = float(np.mean([a["sdri"] for a, _ in pairs]))
            entry["sdri_on"] = float(np.mean([b["sdri"] for _, b in pairs]))
            entry["sdri_lost"] = entry["sdri_off"] - entry["sdri_on"]
            entry["silenced_present_trials"] = int(sum(b["silent_output"] for _, b in pairs))
        out[kind] = entry
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devset", type=Path, default=Path("devset/devset.json"))
    parser.add_argument("--count", type=int, default=None, help="first N mixtures (default: all)")
    parser.add_argument("--stream-count", type=int, default=20, help="evaluation mixtures also streamed")
    parser.add_argument("--latency", default="balanced", help="streaming preset")
    parser.add_argument("--quick", action="store_true", help="a smoke run: results named -quick")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    data = json.loads(args.devset.read_text())
    entries = data["mixtures"][: args.count]
    separator = Separator.open(backend="onnxruntime")
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    calibration, evaluation = [], []
    for entry in entries:
        (calibration if entry["index"] % 2 == 0 else evaluation).extend(trials(entry, args.devset.parent))
    log(f"{len(calibration)} calibration and {len(evaluation)} evaluation trials")
    calib_rows = [scored(separator, trial, None, None) for trial in calibration]
    threshold, at_pick = pick_threshold(calib_rows)
    log(f"threshold {threshold} (recall {at_pick['recall']:.3f}, false alarms {at_pick['false_alarm']:.3f})")
    gate = GateOptions(threshold=threshold)
    kinds = [trial["kind"] for trial in evaluation]
    off = [scored(separator, trial, None, None) for trial in evaluation]
    on = [scored(separator, trial, gate, None) for trial in evaluation]
    streamed = [t for t in evaluation if t["kind"] != "silenced"][: 2 * args.stream_count] if args.stream_count else []
    stream_kinds = [trial["kind"] for trial in streamed]
    s_off = [scored(separator, trial, None, args.latency) for trial in streamed]
    s_on = [scored(separator, trial, gate, args.latency) for trial in streamed]
    agreement = [float(np.mean((np.array(a["scores"]) >= threshold) == (np.array(b["scores"][: len(a["scores"])]) >= threshold)))
                 for a, b in zip([o for o, t in zip(off, evaluation) if any(t is s for s in streamed)], s_off)]
    results = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine_info(),
        "model": separator.describe(),
        "mixtures": len(entries),
        "threshold": threshold,
        "threshold_in_code": PRESENCE_THRESHOLD,
        "gate": {"window_ms": gate.window_ms, "hangover_ms": gate.hangover_ms, "ramp_ms": gate.ramp_ms},
        "calibration_at_threshold": at_pick,
        "presence_offline": presence_figures(off, threshold),
        "offline": summary(off, on, kinds),
        "streaming": {"preset": args.latency, "mixtures": len(streamed) // 2,
                      "presence": presence_figures(s_off, threshold) if s_off else None,
                      **(summary(s_off, s_on, stream_kinds) if streamed else {}),
                      "second_decisions_agree_with_offline": float(np.mean(agreement)) if agreement else None},
        "trials": [{"index": index, "kind": kind, "gate_off": a, "gate_on": b}  # per evaluation trial, for later analysis
                   for index, (kind, a, b) in enumerate(zip(kinds, off, on))],
    }
    machine = results["machine"].get("gpu") or results["machine"].get("cpu") or "machine"
    stem = result_stem("presence_calibration", str(machine), args.quick)
    write_results(args.out_dir / f"{stem}.json", None, results, markdown(results), log=log)
    print(markdown(results))
    return 0


def markdown(r: dict) -> str:
    def fmt(value, spec=".2f"):
        return "n/a" if value is None else format(value, spec)

    lines = ["# Presence calibration\n", f"`{r['command']}`  \nModel: {r['model']}  \nMixtures: {r['mixtures']} "
             f"(even index: threshold, odd: evaluation)\n",
             f"Threshold picked: **{r['threshold']}** (in code: {r['threshold_in_code']}); gate window "
             f"{r['gate']['window_ms']:.0f} ms, hangover {r['gate']['hangover_ms']:.0f} ms, ramp {r['gate']['ramp_ms']:.0f} ms\n",
             "| path | seconds | AUC | precision | recall | false alarms |", "|---|---|---|---|---|---|"]
    for name, p in (("offline", r["presence_offline"]), ("streaming", r["streaming"]["presence"])):
        if p:
            lines.append(f"| {name} | {p['seconds']} | {fmt(p['auc'])} | {fmt(p['precision'])} | {fmt(p['recall'])} | "
                         f"{fmt(p['false_alarm_rate'])} |")
    lines += ["", "| path | trials | absent s: output vs mixture, gate off (dB) | gate on (dB, mean / median) | "
              "trials >= 30 dB down | SDRi off | SDRi on | SDRi lost |", "|---|---|---|---|---|---|---|---|"]
    for path in ("offline", "streaming"):
        for kind in ("unrelated", "silenced", "mixture"):
            e = r[path].get(kind)
            if not e:
                continue
            lines.append(f"| {path} {kind} | {e['trials']} | {fmt(e.get('absent_db_off_mean'), '.1f')} | "
                         f"{fmt(e.get('absent_db_on_mean'), '.1f')} / {fmt(e.get('absent_db_on_median'), '.1f')} | "
                         f"{fmt(e.get('absent_trials_30db_below'))} | {fmt(e.get('sdri_off'))} | {fmt(e.get('sdri_on'))} | "
                         f"{fmt(e.get('sdri_lost'))} |")
    agree = r["streaming"].get("second_decisions_agree_with_offline")
    silenced = r["offline"]["mixture"].get("silenced_present_trials")
    lines += ["", f"Streaming per-second decisions agreeing with offline: {fmt(agree)}",
              f"Present-target trials the gate silenced throughout (offline; SDR of a silent output: 0 dB, its plain SNR): "
              f"{silenced}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
