"""Memory-bandwidth yardsticks: a measured `copy_` rate, and the bytes an ideal kernel of each op must move."""
from __future__ import annotations

from typing import Sequence

import torch

from zoo.bench.timing import Variant, measure

#: Size of the "large copy" (well beyond the last-level cache) that defines the machine's copy bandwidth.
LARGE_COPY_BYTES = 256 * 2**20

#: Full-tensor passes an ideal fused kernel makes, per (op, mode). Forward: read x, write y. Backward of
#: instance_norm_act: read x and grad_y, write grad_x (plane statistics are small and saved); backward of
#: bias_leaky_relu: read grad_y and x (for the sign), write grad_x (the bias gradient is reduced on the way).
PASSES = {
    ("instance_norm_act", "fwd"): 2,
    ("instance_norm_act", "fwd+bwd"): 5,
    ("bias_leaky_relu", "fwd"): 2,
    ("bias_leaky_relu", "fwd+bwd"): 5,
}


def ideal_bytes(op: str, mode: str, shape: Sequence[int], element_size: int = 4) -> int:
    """Bytes an ideal kernel must move for one call of `op` in `mode` on a tensor of `shape`."""
    try:
        passes = PASSES[(op, mode)]
    except KeyError:
        raise ValueError(f"no byte model for op {op!r} in mode {mode!r}; known: {sorted(PASSES)}") from None
    numel = 1
    for s in shape:
        numel *= int(s)
    return passes * numel * element_size


def gb_per_s(nbytes: float, seconds: float) -> float:
    """Effective bandwidth in GB/s (1e9 bytes per second)."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    return nbytes / seconds / 1e9


def copy_bandwidth(
    nbytes: int = LARGE_COPY_BYTES, *, device: str | torch.device = "cpu", rounds: int = 7, sample_s: float = 0.05
) -> dict:
    """Measure `dst.copy_(src)` of `nbytes` float32 bytes: read + write bytes per second (GB/s), median of rounds."""
    n = max(1, nbytes // 4)
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    t = measure([Variant("copy", lambda: dst.copy_(src))], rounds=rounds, sample_s=sample_s, device=device)["copy"]
    moved = 2 * n * 4
    return {
        "bytes": n * 4,
        "median_ms": t.median * 1e3,
        "gbs": gb_per_s(moved, t.median),
        "gbs_best": gb_per_s(moved, min(t.samples)),
        "iqr_pct": t.summary()["iqr_pct"],
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
