"""Interleaved timing: every variant of a case is sampled once per round, so drift on a shared machine hits all alike."""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Sequence

import torch


@dataclass
class Variant:
    """One way to run a case: `fn()` does one call; `context()` is entered around each timed sample (e.g. a backend)."""

    name: str
    fn: Callable[[], object]
    context: Callable[[], ContextManager] = contextlib.nullcontext


@dataclass
class Timing:
    """Per-call times in seconds of one variant: the medians of each round's sample, and their spread."""

    samples: list[float] = field(default_factory=list)
    inner: int = 1  # calls per sample

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def quantile(self, q: float) -> float:
        """Linear-interpolated quantile of the per-call samples (q in [0, 1])."""
        s = sorted(self.samples)
        if len(s) == 1:
            return s[0]
        pos = q * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    def summary(self) -> dict:
        """Milliseconds: median, quartiles, min, max, and the relative interquartile spread."""
        med = self.median
        p25, p75 = self.quantile(0.25), self.quantile(0.75)
        return {
            "median_ms": med * 1e3,
            "p25_ms": p25 * 1e3,
            "p75_ms": p75 * 1e3,
            "min_ms": min(self.samples) * 1e3,
            "max_ms": max(self.samples) * 1e3,
            "iqr_pct": (p75 - p25) / med * 100.0 if med > 0 else 0.0,
            "rounds": len(self.samples),
            "inner": self.inner,
        }


class Clock:
    """Times `n` calls of a function on one device: perf_counter on CPU, CUDA events (after a synchronize) on GPU."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.cuda = torch.device(device).type == "cuda"

    def time(self, fn: Callable[[], object], n: int) -> float:
        """Seconds per call of `fn`, averaged over `n` back-to-back calls."""
        if self.cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / n
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n


def measure(
    variants: Sequence[Variant],
    *,
    rounds: int,
    sample_s: float,
    warmup: int = 2,
    device: str | torch.device = "cpu",
    max_inner: int = 1000,
) -> dict[str, Timing]:
    """Warm every variant up, pick calls-per-sample so one sample lasts ~`sample_s`, then run `rounds` rounds.

    In each round every variant gives one sample; the starting variant rotates from round to round so that no
    variant always runs first (after a cache-cold gap) or last.
    """
    if rounds < 1 or sample_s <= 0 or warmup < 0:
        raise ValueError(f"need rounds >= 1, sample_s > 0, warmup >= 0; got {rounds}, {sample_s}, {warmup}")
    clock = Clock(device)
    timings: dict[str, Timing] = {}
    for v in variants:
        with v.context():
            for _ in range(warmup):
                v.fn()
            one = clock.time(v.fn, 1)
        inner = max(1, min(max_inner, int(sample_s / max(one, 1e-9))))
        timings[v.name] = Timing(inner=inner)
    k = len(variants)
    for r in range(rounds):
        for i in range(k):
            v = variants[(r + i) % k]
            with v.context():
                timings[v.name].samples.append(clock.time(v.fn, timings[v.name].inner))
    return timings
