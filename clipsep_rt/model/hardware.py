"""What this machine's hardware offers, read without importing torch (backend choice runs it)."""

from __future__ import annotations

import math
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


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # a container's CPU quota (cgroup v2): "QUOTA PERIOD" or "max PERIOD"


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the OS has one (Linux),
    else every core; at most its container's CPU quota, rounded up (`docker --cpus 2` on a
    64-core host gives 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return min(cores, quota) if quota is not None else cores


def _cgroup_cpu_quota() -> int | None:
    """The cgroup v2 CPU quota in whole cores (rounded up, at least 1), or None without one."""
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        return max(1, math.ceil(int(quota) / int(period))) if quota != "max" else None
    except (OSError, ValueError, ZeroDivisionError):  # no cgroup v2 file here, or one we cannot read
        return None


def check_threads(threads: int | None) -> None:
    """OptionError("threads") unless `threads` is None (the backend's choice) or 1 to
    `usable_cores()`: more threads than cores only take turns on them, and thousands of
    them made a machine unusable for minutes."""
    if threads is None:
        return
    cores = usable_cores()
    if not 1 <= threads <= cores:
        raise OptionError("threads", f"must be 1 to {cores} (the CPU cores this process may use), got {threads}")
