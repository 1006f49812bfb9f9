"""Benchmark report I/O: JSON (atomic, validated on read), the markdown table, and the PNG speedup chart."""
from __future__ import annotations

import json
import os
from pathlib import Path

from zoo.bench.cases import BASELINES, MODES, OPS, speedup_key
from zoo.bench.targets import evaluate
from zoo.errors import DataError
from zoo.io import atomic_write

SCHEMA = "zoo-bench/1"
REQUIRED_KEYS = ("schema", "machine", "bandwidth", "ops", "models")
COLORS = {"fused": "tab:green", "compile": "tab:blue", "eager": "tab:gray", "nn": "tab:orange",
          "nn-compile": "tab:purple"}


def write_json(report: dict, path: str | os.PathLike) -> Path:
    """Write the report as indented JSON, atomically."""
    path = Path(path)
    with atomic_write(path, "w") as f:
        json.dump(report, f, indent=1, sort_keys=False)
        f.write("\n")
    return path


def read_json(path: str | os.PathLike) -> dict:
    """Read a report written by `write_json`; targets are re-evaluated from the rows (the rows are the truth)."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"benchmark JSON {path} does not exist; write one with `zoo bench --json {path}`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"benchmark JSON {path} is unreadable ({exc}); expected a file from `zoo bench --json`") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        found = report.get("schema") if isinstance(report, dict) else type(report).__name__
        raise DataError(f"{path} is not a zoo benchmark report: schema is {found!r}, expected {SCHEMA!r}")
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise DataError(f"benchmark JSON {path} lacks {', '.join(missing)}; expected a file from `zoo bench --json`")
    report["targets"] = evaluate(report["ops"])
    return report


def _f(value: float | None, fmt: str = ".2f", suffix: str = "") -> str:
    return "" if value is None else f"{value:{fmt}}{suffix}"


def _machine_lines(report: dict) -> list[str]:
    m = report["machine"]
    after = report.get("machine_after", {})
    lines = [
        f"- Command: `{report.get('command') or 'zoo bench'}`" + (" (quick subset)" if report.get("config", {}).get(
            "quick") else ""),
        f"- Date: {report.get('created', '?')}, duration {_f(report.get('duration_s'), '.0f', ' s')}",
        f"- Machine: {m.get('cpu_model')}, {m.get('logical_cpus')} logical CPUs, torch {m.get('torch_version')} "
        f"(torch threads: {m.get('torch_threads')}), Python {m.get('python')}",
        f"- Load average before/after: {m.get('load_average')} / {after.get('load_average')}; other running "
        f"processes before/after: {m.get('busy_processes')} / {after.get('busy_processes')}"
        + (" -- the machine was shared, so absolute times are noisy; ratios were measured side by side"
           if _was_busy(report) else ""),
        f"- Allocations held steady (glibc mallopt, no page faults on reused outputs): "
        f"{'yes' if report.get('steady_allocations') else 'no'}",
    ]
    for device, bw in report["bandwidth"].items():
        c = bw["copy"]
        lines.append(f"- {device} copy bandwidth (`copy_` of {c['bytes'] >> 20} MiB, read+write bytes): "
                     f"{c['gbs']:.1f} GB/s (best round {c['gbs_best']:.1f})")
    if not m.get("cuda_available"):
        lines.append("- CUDA: no GPU on this machine (torch.cuda.is_available() is False); the CUDA rows were not run")
    return lines


def _was_busy(report: dict) -> bool:
    """True when other running processes were seen before or after the run. The load average is reported but not
    judged: it counts the benchmark's own threads and those of runs that ended up to minutes before."""
    after = report.get("machine_after", {})
    return any(b for b in (report["machine"].get("busy_processes"), after.get("busy_processes")))


def ops_table(rows: list[dict]) -> list[str]:
    """Markdown table of the op rows: one line per case and variant, the variants of a case together."""
    lines = [
        "| case | variant | median ms (p25-p75) | GB/s | % copy | % same-size copy | "
        + " | ".join(f"vs {b}" for b in BASELINES) + " | fastest rounds: " + " / ".join(f"vs {b}" for b in BASELINES)
        + " | targets |",
        "|---|---|---|---|---|---|" + "---|" * len(BASELINES) + "---|---|",
    ]
    keys = [speedup_key(b) for b in BASELINES]
    blanks = " |" * (len(BASELINES) + 5)
    for r in rows:
        case = f"{r['op']} {r['mode']} {r['shape_str']} {r['layout']}" + ("" if r["device"] == "cpu" else
                                                                          f" ({r['device']})")
        if r["status"] != "ok":
            lines.append(f"| {case} | {r['variant']} | {r['status']}: {r.get('reason', '')} |{blanks}")
            continue
        marks = ", ".join(f"{'met' if ok else 'MISSED'}: {_short(name)}" for name, ok in r.get("targets", {}).items())
        lines.append(
            f"| {case} | {r['variant']} | {r['median_ms']:.3f} ({r['p25_ms']:.3f}-{r['p75_ms']:.3f}) | "
            f"{r['gbs']:.1f} | {r['pct_copy']:.0f}% | {_f(r.get('pct_same_size_copy'), '.0f', '%')} | "
            + " | ".join(_f(r.get(k), ".2f", "x") for k in keys) + " | "
            + " / ".join(_f(r.get(k + "_best"), ".2f", "x") for k in keys) + f" | {marks} |"
        )
    return lines


def _short(target_name: str) -> str:
    """'instance_norm_act forward >= 2.5x eager' -> '>= 2.5x eager' (the row already names op and mode)."""
    return target_name[target_name.index(">="):] if ">=" in target_name else target_name


def targets_table(summaries: list[dict]) -> list[str]:
    lines = ["| target | status (medians) | rows met | rows met by fastest rounds | detail |", "|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s['target']} | {s['status']} | {s['met']}/{s['measured']} | "
                     f"{s.get('met_fastest_rounds', '')}/{s['measured']} | {s['detail']} |")
    return lines


def models_table(rows: list[dict]) -> list[str]:
    lines = ["| model | kind | batch | input | zoo.ops modules | rounds | reference ms | cpp ms | "
             "speedup (reference/cpp) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['model']} | {r['kind']} | {r['batch']} | {r.get('input', '')} | {r.get('fused_modules', '')} |"
        if r["status"] != "ok":
            lines.append(f"{head} | {r['status']}: {r.get('reason', '')} | | |")
            continue
        if "cpp_ms" in r:
            cpp = _f(r["cpp_ms"], ".1f")
        else:
            cpp = f"not available: {r.get('cpp_reason', '')}"
        lines.append(f"{head} {r.get('rounds', '')} | {r['reference_ms']:.1f} | {cpp} | {_f(r.get('ratio'), '.2f', 'x')} |")
    return lines


def render_markdown(report: dict) -> str:
    """The whole report as markdown: machine, targets, op table, model table."""
    parts = ["## Benchmark results", "", *_machine_lines(report), "",
             "Speedups are ratios of medians of interleaved rounds measured in the same process (targets are judged "
             "on these); the fastest-rounds ratios compare each variant's best round, a cross-check that other "
             "processes disturb less. GB/s counts the bytes an "
             "ideal kernel must move (forward: read x + write y; forward+backward: 5 tensor passes); % copy is that "
             "rate over the large `copy_` bandwidth, % same-size copy over a `copy_` of a tensor of the case's size.",
             "eager is the reference composition (`use_backend(\"reference\")`) and compile its torch.compile; nn is "
             "PyTorch's own F.instance_norm + F.leaky_relu (what nn.InstanceNorm2d + nn.LeakyReLU run) and "
             "nn-compile its torch.compile (instance_norm_act only).",
             "", "### Targets (CPU, fused vs eager / torch.compile / nn / torch.compile(nn))", "",
             *targets_table(report["targets"]), "",
             "### Ops", "", *ops_table(report["ops"]), ""]
    if report["models"]:
        parts += ["### Models (one inference batch / one training step)", "",
                  "Inference: the builder's module (random init, eval, no_grad) on a synthetic batch; training step: "
                  "the recipe's own build() + step() (all losses and optimiser steps) on the first items of its "
                  "default data. Medians of interleaved rounds; slow models get fewer rounds.", "",
                  *models_table(report["models"]), ""]
    return "\n".join(parts)


def write_markdown(report: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_write(path, "w") as f:
        f.write(render_markdown(report))
    return path


def _label(row: dict) -> str:
    return f"{row['shape_str']}\n{'channels_last' if row['layout'] == 'channels_last' else 'NCHW'}"


def write_chart(report: dict, path: str | os.PathLike) -> Path:
    """PNG bar chart: speedup over eager of fused and torch.compile per shape, one panel per (op, mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["ops"] if r["status"] == "ok" and r.get("speedup_eager") is not None]
    order = {name: i for i, name in enumerate(OPS + MODES)}
    panels = sorted({(r["op"], r["mode"], r["device"]) for r in rows},
                    key=lambda p: (p[2], order.get(p[0], 99), order.get(p[1], 99)))
    if not panels:
        raise DataError("the report has no measured op rows to chart")
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 3.2 * len(panels)), squeeze=False)
    thresholds = {("instance_norm_act", "fwd"): 2.5, ("instance_norm_act", "fwd+bwd"): 2.5,
                  ("bias_leaky_relu", "fwd"): 2.0, ("bias_leaky_relu", "fwd+bwd"): 2.0}
    for ax, (op, mode, device) in zip(axes[:, 0], panels):
        sel = [r for r in rows if (r["op"], r["mode"], r["device"]) == (op, mode, device)]
        cases = list(dict.fromkeys(_label(r) for r in sel))
        variants = [v for v in ("fused", "compile", "eager", "nn", "nn-compile") if any(r["variant"] == v for r in sel)]
        width = 0.8 / max(1, len(variants))
        for j, v in enumerate(variants):
            vals = {_label(r): r["speedup_eager"] for r in sel if r["variant"] == v}
            xs = [i + (j - (len(variants) - 1) / 2) * width for i in range(len(cases))]
            ax.bar(xs, [vals.get(c, 0.0) for c in cases], width, label=v, color=COLORS[v])
        if (op, mode) in thresholds and device == "cpu":
            ax.axhline(thresholds[(op, mode)], color="red", linestyle="--", linewidth=1, label="target vs eager")
        ax.set_xticks(range(len(cases)), cases, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("speedup vs eager (log)")
        ax.set_title(f"{op} {mode} ({device}, float32)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    m = report["machine"]
    fig.suptitle(f"zoo fused ops: {m.get('cpu_model')}, torch threads: {m.get('torch_threads')}, "
                 f"{report.get('created', '')}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=90)
    plt.close(fig)
    return path
