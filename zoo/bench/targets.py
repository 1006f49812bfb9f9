"""The fused-ops speed targets (issues 3 and 4) and their evaluation against measured op rows."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """`metric` (a speedup column) of fused rows matching op/mode/layout must be >= `threshold` (CPU rows only)."""

    name: str
    op: str
    mode: str
    metric: str  # "speedup_eager" | "speedup_compile" | "speedup_nn" | "speedup_nn_compile"
    threshold: float
    layout: str | None = None  # None: every layout

    def applies(self, row: dict) -> bool:
        return (
            row.get("variant") == "fused"
            and row.get("device", "cpu") == "cpu"
            and row.get("op") == self.op
            and row.get("mode") == self.mode
            and (self.layout is None or row.get("layout") == self.layout)
        )


TARGETS: tuple[Target, ...] = (
    Target("instance_norm_act forward >= 2.5x eager", "instance_norm_act", "fwd", "speedup_eager", 2.5),
    Target("instance_norm_act forward >= 1.0x torch.compile", "instance_norm_act", "fwd", "speedup_compile", 1.0),
    Target("instance_norm_act fwd+bwd >= 2.5x eager", "instance_norm_act", "fwd+bwd", "speedup_eager", 2.5),
    Target("instance_norm_act fwd+bwd >= 1.3x torch.compile", "instance_norm_act", "fwd+bwd", "speedup_compile", 1.3),
    Target("instance_norm_act channels_last forward >= 5x eager", "instance_norm_act", "fwd", "speedup_eager", 5.0,
           "channels_last"),
    Target("bias_leaky_relu forward >= 2x eager", "bias_leaky_relu", "fwd", "speedup_eager", 2.0),
    Target("bias_leaky_relu fwd+bwd >= 2x eager", "bias_leaky_relu", "fwd+bwd", "speedup_eager", 2.0),
    # The baselines taken literally: PyTorch's own instance norm + LeakyReLU (`nn`) and torch.compile of it
    # (`nn-compile`). The rows above judge the same ratios against the reference composition and its compilation.
    Target("instance_norm_act forward >= 2.5x nn", "instance_norm_act", "fwd", "speedup_nn", 2.5),
    Target("instance_norm_act forward >= 1.0x torch.compile(nn)", "instance_norm_act", "fwd", "speedup_nn_compile",
           1.0),
    Target("instance_norm_act fwd+bwd >= 2.5x nn", "instance_norm_act", "fwd+bwd", "speedup_nn", 2.5),
    Target("instance_norm_act fwd+bwd >= 1.3x torch.compile(nn)", "instance_norm_act", "fwd+bwd",
           "speedup_nn_compile", 1.3),
    Target("instance_norm_act channels_last forward >= 5x nn", "instance_norm_act", "fwd", "speedup_nn", 5.0,
           "channels_last"),
)


def row_checks(row: dict, targets: tuple[Target, ...] = TARGETS) -> list[tuple[Target, bool]]:
    """The targets that apply to one measured row, each with whether the row meets it."""
    out = []
    for t in targets:
        value = row.get(t.metric)
        if t.applies(row) and row.get("status") == "ok" and value is not None:
            out.append((t, value >= t.threshold))
    return out


def evaluate(rows: list[dict], targets: tuple[Target, ...] = TARGETS) -> list[dict]:
    """One summary per target: status "met" (every applicable row meets it), "missed", or "not measured"."""
    summaries = []
    for t in targets:
        applicable = [r for r in rows if t.applies(r)]
        measured = [r for r in applicable if r.get("status") == "ok" and r.get(t.metric) is not None]
        met = [r for r in measured if r[t.metric] >= t.threshold]
        met_best = [r for r in measured if r.get(t.metric + "_best", 0.0) >= t.threshold]
        if not measured:
            reasons = sorted({r.get("reason", "") for r in applicable if r.get("reason")})
            status, detail = "not measured", "; ".join(reasons) or "no fused rows for this target in the run"
        else:
            status = "met" if len(met) == len(measured) else "missed"
            worst = min(measured, key=lambda r: r[t.metric])
            detail = f"worst {worst[t.metric]:.2f}x at {worst['shape_str']} {worst['layout']}"
        summaries.append({
            "target": t.name,
            "metric": t.metric,
            "threshold": t.threshold,
            "status": status,
            "met": len(met),
            "met_fastest_rounds": len(met_best),
            "measured": len(measured),
            "detail": detail,
        })
    return summaries
