"""Unit tests of zoo.bench: bandwidth math, interleaved timing, targets, speedups, report I/O (no timing asserts)."""
from __future__ import annotations

import json

import pytest
import torch

from zoo.bench import bandwidth, machine
from zoo.bench.cases import CaseInputs, OpCase, make_variants, op_cases
from zoo.bench.report import read_json, render_markdown, write_chart, write_json, write_markdown
from zoo.bench.suite import _add_speedups
from zoo.bench.targets import TARGETS, evaluate, row_checks
from zoo.bench.timing import Timing, Variant, measure
from zoo.errors import DataError


def test_ideal_bytes_counts_tensor_passes():
    numel = 2 * 3 * 4 * 5
    assert bandwidth.ideal_bytes("instance_norm_act", "fwd", (2, 3, 4, 5)) == 2 * numel * 4
    assert bandwidth.ideal_bytes("instance_norm_act", "fwd+bwd", (2, 3, 4, 5)) == 5 * numel * 4
    assert bandwidth.ideal_bytes("bias_leaky_relu", "fwd", (2, 3, 4, 5), element_size=8) == 2 * numel * 8
    with pytest.raises(ValueError, match="no byte model"):
        bandwidth.ideal_bytes("conv", "fwd", (1, 1, 1, 1))


def test_gb_per_s():
    assert bandwidth.gb_per_s(2e9, 0.5) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        bandwidth.gb_per_s(1.0, 0.0)


def test_copy_bandwidth_reports_read_plus_write_rate():
    r = bandwidth.copy_bandwidth(1 << 16, rounds=3, sample_s=0.001)
    assert r["bytes"] == 1 << 16
    # GB/s is 2 * bytes / median time, by definition
    assert r["gbs"] == pytest.approx(2 * r["bytes"] / (r["median_ms"] / 1e3) / 1e9)
    assert r["gbs_best"] >= r["gbs"]


def test_timing_quantiles_and_summary():
    t = Timing(samples=[0.004, 0.001, 0.003, 0.002], inner=7)
    assert t.median == pytest.approx(0.0025)
    assert t.quantile(0.0) == pytest.approx(0.001)
    assert t.quantile(1.0) == pytest.approx(0.004)
    assert t.quantile(0.25) == pytest.approx(0.00175)
    s = t.summary()
    assert s["median_ms"] == pytest.approx(2.5)
    assert s["min_ms"] == pytest.approx(1.0) and s["max_ms"] == pytest.approx(4.0)
    assert s["iqr_pct"] == pytest.approx((3.25 - 1.75) / 2.5 * 100)
    assert s["rounds"] == 4 and s["inner"] == 7


def test_measure_interleaves_and_rotates_the_start():
    calls: list[str] = []
    entered: list[str] = []

    class Ctx:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            entered.append(self.name)

        def __exit__(self, *exc):
            return False

    variants = [Variant(n, (lambda n=n: calls.append(n)), (lambda n=n: Ctx(n))) for n in "abc"]
    timings = measure(variants, rounds=4, sample_s=1e-12, warmup=1)
    assert set(timings) == {"a", "b", "c"}
    assert all(len(t.samples) == 4 and t.inner == 1 for t in timings.values())
    # after warm-up (2 calls each: warm-up + calibration), round r starts at variant r mod 3
    timed = calls[6:]
    assert timed == list("abc" "bca" "cab" "abc")
    assert entered[3:] == timed  # the variant's context wraps each of its samples
    with pytest.raises(ValueError):
        measure(variants, rounds=0, sample_s=0.01)


def test_measure_calibrates_calls_per_sample():
    timings = measure([Variant("noop", lambda: None)], rounds=2, sample_s=0.001, max_inner=50)
    assert 1 <= timings["noop"].inner <= 50


def _row(variant, median, op="instance_norm_act", mode="fwd", layout="nchw", device="cpu", shape="1x64x32x32"):
    return {"op": op, "mode": mode, "layout": layout, "device": device, "shape_str": shape, "variant": variant,
            "status": "ok", "median_ms": median}


def test_speedups_are_baseline_over_variant():
    rows = [_row("fused", 1.0), _row("eager", 3.0), _row("compile", 1.5), _row("nn", 6.0), _row("nn-compile", 2.0)]
    _add_speedups(rows)
    fused = rows[0]
    assert fused["speedup_eager"] == pytest.approx(3.0)
    assert fused["speedup_compile"] == pytest.approx(1.5)
    assert fused["speedup_nn"] == pytest.approx(6.0)
    assert fused["speedup_nn_compile"] == pytest.approx(2.0)
    assert rows[1]["speedup_eager"] == pytest.approx(1.0)


def test_speedups_skip_unavailable_variants():
    rows = [{**_row("fused", 0), "status": "not available", "reason": "no compiler"}, _row("eager", 2.0)]
    del rows[0]["median_ms"]
    _add_speedups(rows)
    assert "speedup_eager" not in rows[0]
    assert "speedup_compile" not in rows[1]


def _case_rows(fused, eager, compile_, **kw):
    rows = [_row("fused", fused, **kw), _row("eager", eager, **kw), _row("compile", compile_, **kw)]
    _add_speedups(rows)
    return rows


def _summary(rows, name):
    return next(s for s in evaluate(rows) if s["target"] == name)


def test_targets_met_missed_and_not_measured():
    rows = _case_rows(1.0, 3.0, 1.1) + _case_rows(1.0, 2.0, 1.2, shape="4x256x64x64")
    fwd_eager = _summary(rows, "instance_norm_act forward >= 2.5x eager")
    assert fwd_eager["status"] == "missed" and (fwd_eager["met"], fwd_eager["measured"]) == (1, 2)
    assert "2.00x at 4x256x64x64" in fwd_eager["detail"]
    assert _summary(rows, "instance_norm_act forward >= 1.0x torch.compile")["status"] == "met"
    assert fwd_eager["met_fastest_rounds"] == 0  # these rows carry no min_ms, hence no fastest-round ratios
    # no channels_last rows and no fused bias_leaky_relu rows: not measured, never "met"
    assert _summary(rows, "instance_norm_act channels_last forward >= 5x eager")["status"] == "not measured"
    assert _summary(rows, "bias_leaky_relu forward >= 2x eager")["status"] == "not measured"


def test_fastest_round_ratios_are_counted_separately():
    rows = _case_rows(1.0, 2.0, 1.0)
    for r, best in zip(rows, (0.5, 2.0, 1.0)):
        r["min_ms"] = best
    _add_speedups(rows)
    s = _summary(rows, "instance_norm_act forward >= 2.5x eager")
    assert (s["status"], s["met"], s["met_fastest_rounds"]) == ("missed", 0, 1)  # 2.0x by medians, 4.0x by best


def test_channels_last_target_applies_only_to_channels_last():
    (fused_cl, *_) = _case_rows(1.0, 6.0, 1.0, layout="channels_last")
    names = {t.name for t, _ in row_checks(fused_cl)}
    assert "instance_norm_act channels_last forward >= 5x eager" in names
    (fused_nchw, *_) = _case_rows(1.0, 6.0, 1.0)
    assert "instance_norm_act channels_last forward >= 5x eager" not in {t.name for t, _ in row_checks(fused_nchw)}


def test_targets_ignore_non_fused_and_cuda_rows():
    rows = _case_rows(1.0, 3.0, 1.0, device="cuda")
    assert all(s["status"] == "not measured" for s in evaluate(rows))
    assert row_checks(_case_rows(1.0, 3.0, 1.0)[1]) == []  # the eager row itself carries no target


def test_unavailable_fused_reason_is_reported_by_targets():
    rows = [{**_row("fused", 0), "status": "not available", "reason": "no C++ compiler"}, _row("eager", 2.0)]
    s = _summary(rows, "instance_norm_act forward >= 2.5x eager")
    assert s["status"] == "not measured" and "no C++ compiler" in s["detail"]


def test_every_target_has_a_known_metric():
    assert {t.metric for t in TARGETS} <= {"speedup_eager", "speedup_compile", "speedup_nn", "speedup_nn_compile"}


def test_nn_targets_are_judged_on_the_nn_ratio():
    rows = [_row("fused", 1.0, layout="channels_last"), _row("eager", 3.0, layout="channels_last"),
            _row("nn", 12.0, layout="channels_last")]
    _add_speedups(rows)
    assert _summary(rows, "instance_norm_act channels_last forward >= 5x nn")["status"] == "met"
    assert _summary(rows, "instance_norm_act channels_last forward >= 5x eager")["status"] == "missed"
    assert _summary(rows, "instance_norm_act fwd+bwd >= 2.5x nn")["status"] == "not measured"


def test_make_variants_refuses_unknown_and_missing_variants():
    case = OpCase("bias_leaky_relu", (1, 2, 3, 3))
    inputs = CaseInputs(case)
    with pytest.raises(ValueError, match="'nn' does not exist for bias_leaky_relu"):
        make_variants(case, inputs, include=("nn",))
    with pytest.raises(ValueError, match="unknown variant 'numba'"):
        make_variants(case, inputs, include=("numba",))
    assert [v.name for v in make_variants(case, inputs, include=("eager",))[0]] == ["eager"]


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_nn_variant_is_pytorch_instance_norm_with_the_reference_values(layout):
    """The nn baseline computes what the fused op computes (values; PyTorch returns NCHW for channels_last)."""
    from zoo.bench.cases import _torch_instance_norm_act
    from zoo.ops import reference

    x = torch.randn(2, 3, 5, 7)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(_torch_instance_norm_act(x, negative_slope=0.2),
                               reference.instance_norm_act(x, negative_slope=0.2))


def test_case_matrix():
    full = op_cases()
    assert len(full) == 2 * 2 * 6 * 2
    assert len({c.key for c in full}) == len(full)
    quick = op_cases(quick=True)
    assert 0 < len(quick) < len(full)
    assert any(c.layout == "channels_last" for c in quick)
    with pytest.raises(ValueError, match="unknown op"):
        OpCase("conv", (1, 1, 1, 1))
    with pytest.raises(ValueError, match="4 positive sizes"):
        OpCase("bias_leaky_relu", (1, 2, 3))


def _report(tmp_path):
    rows = _case_rows(1.0, 3.0, 1.2) + _case_rows(2.0, 4.0, 3.0, layout="channels_last")
    for r in rows:
        r.update(key=f"{r['op']} {r['mode']} {r['shape_str']} {r['layout']} cpu", shape=[1, 64, 32, 32],
                 p25_ms=r["median_ms"], p75_ms=r["median_ms"], gbs=1.0, pct_copy=5.0, pct_same_size_copy=2.0)
    return {
        "schema": "zoo-bench/1",
        "command": "zoo bench --quick",
        "created": "2026-01-01T00:00:00+00:00",
        "machine": machine.describe(),
        "machine_after": {"load_average": [0.1, 0.1, 0.1], "busy_processes": 0},
        "steady_allocations": True,
        "bandwidth": {"cpu": {"copy": {"bytes": 1 << 28, "gbs": 20.0, "gbs_best": 21.0}, "same_size_copy": {}}},
        "ops": rows,
        "models": [{"model": "m", "kind": "inference", "batch": 4, "status": "ok", "input": "4x100",
                    "fused_modules": 3, "rounds": 5, "reference_ms": 10.0, "cpp_ms": 5.0, "ratio": 2.0},
                   {"model": "d", "kind": "train_step", "batch": 4, "status": "skipped", "reason": "needs --data"}],
        "targets": [],
    }


def test_json_round_trip_recomputes_targets(tmp_path):
    report = _report(tmp_path)
    path = write_json(report, tmp_path / "r.json")
    back = read_json(path)
    assert back["ops"] == report["ops"] and back["models"] == report["models"]
    assert back["targets"] == evaluate(report["ops"])
    assert json.loads(path.read_text())["targets"] == []  # what was stored is left as it was


def test_read_json_rejects_bad_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(DataError, match="not a zoo benchmark report"):
        read_json(tmp_path / "other.json")
    (tmp_path / "partial.json").write_text(json.dumps({"schema": "zoo-bench/1", "ops": []}))
    with pytest.raises(DataError, match="lacks"):
        read_json(tmp_path / "partial.json")


def test_markdown_has_rows_targets_and_models(tmp_path):
    report = read_json(write_json(_report(tmp_path), tmp_path / "r.json"))
    md = render_markdown(report)
    assert "| instance_norm_act fwd 1x64x32x32 nchw | fused | 1.000 (1.000-1.000) |" in md
    assert "| instance_norm_act forward >= 2.5x eager | missed | 1/2 |" in md  # 3.0x and 2.0x: one misses
    assert "| m | inference | 4 | 4x100 | 3 | 5 | 10.0 | 5.0 | 2.00x |" in md
    assert "| d | train_step | 4 |  |  | | skipped: needs --data | | |" in md
    assert "zoo bench --quick" in md
    out = write_markdown(report, tmp_path / "r.md")
    assert out.read_text() == md


def test_chart_is_a_png(tmp_path):
    out = write_chart(read_json(write_json(_report(tmp_path), tmp_path / "r.json")), tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_without_measured_rows_is_an_error(tmp_path):
    report = _report(tmp_path)
    report["ops"] = []
    with pytest.raises(DataError, match="no measured op rows"):
        write_chart(report, tmp_path / "c.png")


def test_machine_description():
    d = machine.describe()
    assert d["torch_threads"] == torch.get_num_threads()
    assert d["torch_version"] == torch.__version__
    assert isinstance(d["cpu_model"], str) and d["cpu_model"]
    assert d["cuda_available"] == torch.cuda.is_available()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_case_is_timed_with_events_against_the_device_copy_bandwidth():
    from zoo.bench.suite import Config, run_op_case

    case = OpCase("instance_norm_act", (2, 4, 8, 8), "nchw", "fwd", "cuda")
    copy = bandwidth.copy_bandwidth(1 << 24, device="cuda", rounds=2, sample_s=0.001)
    assert copy["device"] == "cuda"
    rows = run_op_case(case, Config(quick=True, rounds=2, variants=("eager",)), copy, None)
    assert rows[0]["status"] == "ok" and rows[0]["device"] == "cuda"
    assert rows[0]["pct_copy"] == pytest.approx(100 * rows[0]["gbs"] / copy["gbs"])


def test_shared_machine_note_follows_other_processes_not_the_load_average(tmp_path):
    report = _report(tmp_path)
    report["machine"].update(load_average=[1.9, 2.0, 2.1], busy_processes=0)
    report["machine_after"] = {"load_average": [2.0, 2.0, 2.0], "busy_processes": 0}  # the benchmark's own load
    assert "the machine was shared" not in render_markdown(report)
    report["machine_after"]["busy_processes"] = 2
    assert "the machine was shared" in render_markdown(report)
