"""The machine a benchmark ran on, for its results: CPU, cores, threads, GPU, versions."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

from clipsep_rt.model.hardware import cpu_has_native_bf16


def machine_info(threads: int | None = None) -> dict:
    """CPU model, cores, threads, torch version, GPU (for reports)."""
    cpu = platform.processor() or platform.machine()
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except Exception:  # noqa: BLE001 - not installed or broken: not part of this machine's set-up
        info["onnxruntime"] = None
    return info
