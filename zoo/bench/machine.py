"""Describe the machine a benchmark ran on, including how busy it was (shared machines make absolute times drift)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from pathlib import Path

import torch

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's upper bound on 64-bit


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """1/5/15-minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def busy_processes() -> int | None:
    """Count other processes in state R (running) right now, from /proc; None off Linux."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    me = os.getpid()
    count = 0
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        count += state == "R"
    return count


def hold_allocations_steady() -> bool:
    """Keep freed large buffers in the heap (glibc mallopt) so repeated calls do not page-fault their outputs back.

    Without this, tensors above glibc's mmap threshold are returned to the OS on free and every call pays thousands of
    minor page faults, which makes eager timings bimodal. Returns False where glibc is absent.
    """
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(name)
        ok1 = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        ok2 = libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
    except (OSError, AttributeError):
        return False
    return bool(ok1 and ok2)


def describe(device: str = "cpu") -> dict:
    """Machine description stored with every result: CPU, cores, threads, versions, load, GPU if any."""
    info = {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "load_average": load_average(),
        "busy_processes": busy_processes(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info
