"""Op-level benchmark cases and their variants: fused (cpp backend), eager (reference), torch.compile(reference),
and for instance_norm_act also nn (PyTorch's own F.instance_norm + F.leaky_relu, as nn.InstanceNorm2d and
nn.LeakyReLU run them: the eager baseline the fused-ops issue measured its targets from) and nn-compile
(torch.compile of that).

The same definitions feed `zoo bench` and the pytest-benchmark modules in benchmarks/, so both time the same code.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from zoo.bench.timing import Variant

OPS = ("instance_norm_act", "bias_leaky_relu")
MODES = ("fwd", "fwd+bwd")
LAYOUTS = ("nchw", "channels_last")
VARIANTS = ("fused", "eager", "compile", "nn", "nn-compile")
#: Variants that exist for one op only: PyTorch has a layer for instance norm, but none for a fused bias + LeakyReLU
#: (its plain composition is the reference, i.e. `eager`).
OP_VARIANTS = {"nn": ("instance_norm_act",), "nn-compile": ("instance_norm_act",)}
#: The variants that run torch.compile (seconds of compilation each).
COMPILED = ("compile", "nn-compile")
#: The variants every row is compared with, each in its own speedup column (`speedup_key`).
BASELINES = ("eager", "compile", "nn", "nn-compile")


def speedup_key(baseline: str) -> str:
    """The report column of the speedup over `baseline`: speedup_eager, ..., speedup_nn_compile."""
    return "speedup_" + baseline.replace("-", "_")
SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (1, 64, 256, 256),
    (1, 128, 128, 128),
    (1, 256, 64, 64),
    (4, 256, 64, 64),
    (16, 64, 32, 32),
    (64, 128, 8, 8),
)
#: The subset `--quick` runs: one mid-size shape, both modes, NCHW, plus the channels_last forward of instance norm.
QUICK_SHAPES = ((1, 256, 64, 64),)

#: Op options used for every case: LeakyReLU(0.2); bias_leaky_relu with StyleGAN's gain sqrt(2).
NEGATIVE_SLOPE = 0.2
BLR_SCALE = math.sqrt(2.0)


@dataclass(frozen=True)
class OpCase:
    """One op at one shape, layout, mode and device (float32)."""

    op: str
    shape: tuple[int, ...]
    layout: str = "nchw"
    mode: str = "fwd"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; expected one of {OPS}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {MODES}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; expected one of {LAYOUTS}")
        if len(self.shape) != 4 or any(int(s) < 1 for s in self.shape):
            raise ValueError(f"shape must be 4 positive sizes (N, C, H, W), got {self.shape}")

    @property
    def shape_str(self) -> str:
        return "x".join(str(s) for s in self.shape)

    def has_variant(self, name: str) -> bool:
        """Whether variant `name` exists for this case's op."""
        return self.op in OP_VARIANTS.get(name, OPS)

    @property
    def key(self) -> str:
        """Stable text id, also the pytest-benchmark group: the variants of a case share it."""
        return f"{self.op} {self.mode} {self.shape_str} {self.layout} {self.device}"


def op_cases(
    *, quick: bool = False, shapes: tuple[tuple[int, ...], ...] | None = None, device: str = "cpu"
) -> list[OpCase]:
    """The case matrix: ops x modes x shapes x layouts (quick: a small subset; `shapes` overrides the shapes)."""
    if shapes is None:
        shapes = QUICK_SHAPES if quick else SHAPES
    cases = []
    for op in OPS:
        for mode in MODES:
            for shape in shapes:
                for layout in LAYOUTS:
                    if quick and layout == "channels_last" and not (op == "instance_norm_act" and mode == "fwd"):
                        continue
                    cases.append(OpCase(op, tuple(shape), layout, mode, device))
    return cases


def _ops():
    """Import zoo.ops lazily: the bench library must load (and say why) even when the ops package is broken."""
    import zoo.ops

    return zoo.ops


def fused_unavailable_reason(device: str = "cpu") -> str | None:
    """None when the compiled (cpp) backend serves `device`, else the reason, taken from zoo.ops.backend_info()."""
    try:
        ops = _ops()
    except Exception as exc:  # noqa: BLE001 - any import failure is the reason to report
        return f"zoo.ops failed to import: {type(exc).__name__}: {exc}"
    info = ops.backend_info()
    try:
        with ops.use_backend("cpp"):
            served = ops.backend_info()
    except Exception as exc:  # noqa: BLE001 - the backend's own refusal is the reason
        return f"{type(exc).__name__}: {exc} (backend_info: {info})"
    entry = _device_entry(served, device)
    if entry is not None and entry.get("backend") == "cpp":
        return None
    why = entry.get("reason", entry) if entry is not None else served
    return f"cpp backend not available on {device}: {why}"


def _device_entry(info: dict, device: str) -> dict | None:
    """The part of backend_info() about one device type, whatever the nesting."""
    kind = torch.device(device).type
    devices = info.get("devices", info)
    entry = devices.get(kind) if isinstance(devices, dict) else None
    return entry if isinstance(entry, dict) else None


class CaseInputs:
    """Deterministic inputs of one case, created once and reused by all variants."""

    def __init__(self, case: OpCase, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(case.shape, generator=gen)
        if case.layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        self.x = x.to(case.device)
        self.bias = torch.randn(case.shape[1], generator=gen).to(case.device) if case.op == "bias_leaky_relu" else None
        if case.mode == "fwd+bwd":
            self.x.requires_grad_(True)
            if self.bias is not None:
                self.bias.requires_grad_(True)
        # grad_out in the output's layout (the ops return the input's layout)
        self.grad_out = torch.randn(case.shape, generator=gen).to(case.device).contiguous(
            memory_format=torch.channels_last if case.layout == "channels_last" else torch.contiguous_format
        )

    @property
    def grad_inputs(self) -> tuple[torch.Tensor, ...]:
        return (self.x,) if self.bias is None else (self.x, self.bias)


def _apply(case: OpCase, fn: Callable, inputs: CaseInputs) -> Callable[[], object]:
    """A zero-argument call of `fn` on the case's inputs: forward only, or forward + autograd.grad of all inputs."""
    if case.op == "instance_norm_act":

        def forward() -> torch.Tensor:
            return fn(inputs.x, negative_slope=NEGATIVE_SLOPE)

    else:

        def forward() -> torch.Tensor:
            return fn(inputs.x, inputs.bias, negative_slope=NEGATIVE_SLOPE, scale=BLR_SCALE)

    if case.mode == "fwd":
        return forward

    def forward_backward() -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad(forward(), inputs.grad_inputs, inputs.grad_out)

    return forward_backward


def _torch_instance_norm_act(x: torch.Tensor, *, negative_slope: float) -> torch.Tensor:
    """nn.InstanceNorm2d(affine=False) + nn.LeakyReLU as PyTorch computes them (NCHW output for any input layout)."""
    return torch.nn.functional.leaky_relu(torch.nn.functional.instance_norm(x, eps=1e-5), negative_slope)


def make_variants(case: OpCase, inputs: CaseInputs, *, include: tuple[str, ...] | None = None) -> tuple[
    list[Variant], dict[str, str], dict[str, float]
]:
    """Build the runnable variants of `case` (`include`, default: all that exist for its op); also returns
    {variant: reason} for those that cannot run, and the seconds each compiled variant's first call took
    (compilation)."""
    if include is None:
        include = tuple(v for v in VARIANTS if case.has_variant(v))
    unknown = [n for n in include if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; expected one of {VARIANTS}")
    missing = [n for n in include if not case.has_variant(n)]
    if missing:
        raise ValueError(f"variant {missing[0]!r} does not exist for {case.op}")
    ops = _ops()
    from zoo.ops import reference

    public = getattr(ops, case.op)
    variants: list[Variant] = []
    unavailable: dict[str, str] = {}
    setup_s: dict[str, float] = {}
    if any(n in COMPILED for n in include):
        torch._dynamo.reset()  # one case's graphs at a time: no recompile limit, no automatic dynamic shapes
    for name in include:
        if name == "fused":
            reason = fused_unavailable_reason(case.device)
            if reason is not None:
                unavailable[name] = reason
                continue
            variants.append(Variant(name, _apply(case, public, inputs), lambda: ops.use_backend("cpp")))
        elif name == "eager":
            variants.append(Variant(name, _apply(case, public, inputs), lambda: ops.use_backend("reference")))
        elif name == "nn":
            variants.append(Variant(name, _apply(case, _torch_instance_norm_act, inputs)))
        else:  # compiled: the reference composition, or PyTorch's own layers
            fn = getattr(reference, case.op) if name == "compile" else _torch_instance_norm_act
            call = _apply(case, torch.compile(fn, dynamic=False, fullgraph=True), inputs)
            t0 = time.perf_counter()
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - a compiler failure is reported in the row, not fatal
                unavailable[name] = f"torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                continue
            setup_s[name] = time.perf_counter() - t0
            variants.append(Variant(name, call))
    return variants, unavailable, setup_s
