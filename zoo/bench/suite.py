"""Run the whole benchmark (bandwidth, op cases, models) and return one JSON-ready report."""
from __future__ import annotations

import datetime
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from zoo.bench import bandwidth, machine
from zoo.bench.cases import (BASELINES, VARIANTS, CaseInputs, OpCase, fused_unavailable_reason, make_variants,
                             op_cases, speedup_key)
from zoo.bench.models import KINDS, bench_model, smallest_per_task, trainable_models
from zoo.bench.report import SCHEMA
from zoo.bench.targets import evaluate, row_checks
from zoo.bench.timing import measure


@dataclass
class Config:
    """What to run and how long to sample. `quick` picks a small subset and fewer rounds."""

    quick: bool = False
    rounds: int = 0  # 0: 5 quick, 9 full
    sample_s: float = 0.0  # 0: 0.01 quick, 0.02 full
    shapes: list[tuple[int, ...]] | None = None
    variants: tuple[str, ...] = VARIANTS
    models: bool = True
    model_batch: int = 2  # >= 2: BatchNorm layers refuse single-item training batches
    model_budget_s: float = 0.0  # seconds per (model, kind); 0: 3 quick, 20 full
    models_total_s: float = 0.0  # seconds for all model rows; 0: 20 quick, 150 full
    steady_alloc: bool = True
    threads: int = 0  # 0: leave torch's default
    only: str = ""  # substring filter on case keys / model names
    command: str = ""
    devices: list[str] = field(default_factory=lambda: ["cpu", "cuda"])

    def __post_init__(self) -> None:
        self.rounds = self.rounds or (5 if self.quick else 9)
        self.sample_s = self.sample_s or (0.01 if self.quick else 0.02)
        self.model_budget_s = self.model_budget_s or (3.0 if self.quick else 20.0)
        self.models_total_s = self.models_total_s or (20.0 if self.quick else 150.0)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_op_case(case: OpCase, cfg: Config, copy: dict, same_size_copy: dict | None) -> list[dict]:
    """Measure the variants of one case side by side; one row per variant (unavailable ones carry their reason)."""
    base = {"key": case.key, "op": case.op, "mode": case.mode, "shape": list(case.shape), "shape_str": case.shape_str,
            "layout": case.layout, "device": case.device}
    inputs = CaseInputs(case)
    names = tuple(v for v in cfg.variants if case.has_variant(v))
    variants, unavailable, setup_s = make_variants(case, inputs, include=names)
    timings = measure(variants, rounds=cfg.rounds, sample_s=cfg.sample_s, device=case.device) if variants else {}
    nbytes = bandwidth.ideal_bytes(case.op, case.mode, case.shape)
    rows = []
    for name in names:
        row = {**base, "variant": name}
        if name in unavailable:
            row.update(status="not available", reason=unavailable[name])
        else:
            s = timings[name].summary()
            gbs = bandwidth.gb_per_s(nbytes, s["median_ms"] / 1e3)
            row.update(status="ok", **s, bytes=nbytes, gbs=gbs, pct_copy=100 * gbs / copy["gbs"])
            if same_size_copy is not None:
                row["pct_same_size_copy"] = 100 * gbs / same_size_copy["gbs"]
            if name in setup_s:
                row["compile_s"] = setup_s[name]
        rows.append(row)
    _add_speedups(rows)
    for row in rows:
        checks = row_checks(row)
        if checks:
            row["targets"] = {t.name: met for t, met in checks}
    return rows


def _add_speedups(rows: list[dict]) -> None:
    """speedup_key(baseline) = baseline median / this median for each of BASELINES, within one case (and
    *_best: ratio of the fastest rounds, a cross-check that is less sensitive to other processes on a shared
    machine)."""
    med = {r["variant"]: r["median_ms"] for r in rows if r["status"] == "ok"}
    best = {r["variant"]: r["min_ms"] for r in rows if r["status"] == "ok" and "min_ms" in r}
    for r in rows:
        if r["status"] != "ok":
            continue
        for base in BASELINES:
            key = speedup_key(base)
            if base in med:
                r[key] = med[base] / r["median_ms"]
            if base in best and r["variant"] in best:
                r[key + "_best"] = best[base] / best[r["variant"]]


def _no_gpu_rows(cases: list[OpCase]) -> list[dict]:
    """Placeholder rows for the CUDA half of the matrix on a machine without a GPU (one per op and mode)."""
    seen, rows = set(), []
    for c in cases:
        if (c.op, c.mode) in seen:
            continue
        seen.add((c.op, c.mode))
        rows.append({"key": f"{c.op} {c.mode} all shapes cuda", "op": c.op, "mode": c.mode, "shape": [],
                     "shape_str": "all", "layout": "all", "device": "cuda", "variant": "all", "status": "no GPU",
                     "reason": "torch.cuda.is_available() is False"})
    return rows


def run(cfg: Config, progress: Callable[[str], None] = _log) -> dict:
    """Run the configured benchmark and return the report (see `report.render_markdown` for its table)."""
    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    steady = machine.hold_allocations_steady() if cfg.steady_alloc else False
    report: dict = {
        "schema": SCHEMA,
        "command": cfg.command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": {**asdict(cfg), "shapes": [list(s) for s in cfg.shapes] if cfg.shapes else None},
        "machine": machine.describe(),
        "steady_allocations": steady,
        "bandwidth": {},
        "ops": [],
        "models": [],
    }
    devices = [d for d in cfg.devices if d == "cpu" or torch.cuda.is_available()]
    shapes = tuple(tuple(s) for s in cfg.shapes) if cfg.shapes else None
    for device in devices:
        copy = bandwidth.copy_bandwidth(device=device, rounds=5 if cfg.quick else 9)
        report["bandwidth"][device] = {"copy": copy, "same_size_copy": {}}
        progress(f"[bench] {device} copy bandwidth: {copy['gbs']:.1f} GB/s ({copy['bytes'] >> 20} MiB copy_)")
        cases = [c for c in op_cases(quick=cfg.quick, shapes=shapes, device=device) if cfg.only in c.key]
        for i, case in enumerate(cases):
            numel_bytes = 4 * int(torch.Size(case.shape).numel())
            same = report["bandwidth"][device]["same_size_copy"].get(case.shape_str)
            if same is None:
                same = bandwidth.copy_bandwidth(numel_bytes, device=device, rounds=cfg.rounds, sample_s=cfg.sample_s)
                report["bandwidth"][device]["same_size_copy"][case.shape_str] = same
            rows = run_op_case(case, cfg, copy, same)
            report["ops"].extend(rows)
            progress(f"[bench] {i + 1}/{len(cases)} {case.key}: " + ", ".join(
                f"{r['variant']} {r['median_ms']:.3f} ms" if r["status"] == "ok" else f"{r['variant']} n/a"
                for r in rows))
    if "cuda" in cfg.devices and not torch.cuda.is_available():
        report["ops"].extend(_no_gpu_rows(op_cases(quick=cfg.quick, shapes=shapes)))
    if cfg.models:
        reason = fused_unavailable_reason("cpu")
        t_models = time.perf_counter()
        names = [n for n in trainable_models() if cfg.only in n]
        for name in smallest_per_task(names) if cfg.quick else names:
            for kind in KINDS:
                left = cfg.models_total_s - (time.perf_counter() - t_models)
                if left <= 0:
                    report["models"].append({"model": name, "kind": kind, "batch": cfg.model_batch, "device": "cpu",
                                             "status": "skipped", "reason": f"the {cfg.models_total_s:g} s budget "
                                             "for all model rows is used up"})
                    continue
                row = bench_model(name, kind, batch=cfg.model_batch, max_rounds=max(3, cfg.rounds // 2),
                                  budget_s=min(cfg.model_budget_s, left), fused_reason=reason)
                report["models"].append(row)
                progress(f"[bench] model {name} {kind}: " + (
                    f"reference {row['reference_ms']:.1f} ms" + (f", cpp {row['cpp_ms']:.1f} ms"
                                                                 if "cpp_ms" in row else ", cpp n/a")
                    if row["status"] == "ok" else f"{row['status']}: {row['reason']}"))
    report["targets"] = evaluate(report["ops"])
    report["machine_after"] = {"load_average": machine.load_average(), "busy_processes": machine.busy_processes()}
    report["duration_s"] = time.perf_counter() - t_start
    return report
