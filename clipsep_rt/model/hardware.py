"""What this machine's hardware offers, read without importing torch (backend choice runs it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from clipsep_rt.errors import OptionError


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX, where bf16 convolutions are fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def nvidia_gpu_possible() -> bool:
    """False only where no CUDA GPU can be seen for sure: Linux with no NVIDIA driver loaded
    (no /proc/driver/nvidia/version) and no WSL GPU bridge (/dev/dxg). Elsewhere True: ask CUDA."""
    if not sys.platform.startswith("linux") or os.path.exists("/dev/dxg"):
        return True
    return os.path.exists("/proc/driver/nvidia/version")


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the OS has one (Linux),
    else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_threads(threads: int | None) -> None:
    """OptionError("threads") unless `threads` is None (the backend's choice) or 1 to
    `usable_cores()`: more threads than cores only take turns on them, and thousands of
    them made a machine unusable for minutes."""
    if threads is None:
        return
    cores = usable_cores()
    if not 1 <= threads <= cores:
        raise OptionError("threads", f"must be 1 to {cores} (the CPU cores this process may use), got {threads}")
