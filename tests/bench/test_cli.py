"""`zoo bench` end to end on one tiny case (a smoke test of the real pipeline; speed is never judged here)."""
from __future__ import annotations

import json

import pytest

from zoo.cli.bench import parse_shape
from zoo.cli.main import main
from zoo.errors import ConfigError

TINY = ["--quick", "--shape", "2x4x8x8", "--only", "instance_norm_act fwd 2x4x8x8 nchw", "--rounds", "2",
        "--no-fused", "--no-compile", "--no-nn", "--no-nn-compile", "--no-models", "--no-steady-alloc"]


def test_quick_cli_on_one_tiny_case(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["bench", *TINY, "--json", str(out), "--markdown", str(tmp_path / "r.md"),
                 "--chart", str(tmp_path / "r.png")]) == 0
    report = json.loads(out.read_text())
    assert report["command"].startswith("zoo bench --quick --rounds 2 --only")
    rows = [r for r in report["ops"] if r["device"] == "cpu"]
    assert {r["key"] for r in rows} == {"instance_norm_act fwd 2x4x8x8 nchw cpu"}
    assert [r["variant"] for r in rows] == ["eager"]
    eager = rows[0]
    assert eager["status"] == "ok" and eager["rounds"] == 2 and eager["speedup_eager"] == pytest.approx(1.0)
    assert eager["bytes"] == 2 * 2 * 4 * 8 * 8 * 4
    assert report["bandwidth"]["cpu"]["copy"]["gbs"] > 0
    assert report["steady_allocations"] is False
    printed = capsys.readouterr().out
    assert "| instance_norm_act fwd 2x4x8x8 nchw | eager |" in printed
    assert (tmp_path / "r.md").read_text() in printed
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_nn_variant_runs_for_instance_norm_only(tmp_path):
    """The nn variant (PyTorch's own instance norm + LeakyReLU) is timed beside eager; bias_leaky_relu has none."""
    out = tmp_path / "r.json"
    args = [a for a in TINY if a != "--no-nn"]
    args[args.index("--only") + 1] = "fwd 2x4x8x8 nchw"
    assert main(["bench", *args, "--json", str(out)]) == 0
    rows = [r for r in json.loads(out.read_text())["ops"] if r["device"] == "cpu"]
    variants = {(r["op"], r["variant"]) for r in rows}
    assert variants == {("instance_norm_act", "eager"), ("instance_norm_act", "nn"), ("bias_leaky_relu", "eager")}
    nn = next(r for r in rows if r["variant"] == "nn")
    assert nn["status"] == "ok" and nn["speedup_nn"] == pytest.approx(1.0) and nn["speedup_eager"] > 0


@pytest.mark.slow  # loads (and, on a fresh machine, JIT-builds) the C++ ops
def test_fused_and_compile_variants_side_by_side(tmp_path):
    out = tmp_path / "r.json"
    args = [a for a in TINY if a not in ("--no-fused", "--no-compile", "--no-nn-compile")]
    assert main(["bench", *args, "--json", str(out)]) == 0
    rows = {r["variant"]: r for r in json.loads(out.read_text())["ops"] if r["device"] == "cpu"}
    assert list(rows) == ["fused", "eager", "compile", "nn-compile"]
    for name in ("compile", "nn-compile"):
        assert rows[name]["status"] == "ok" and rows[name]["compile_s"] > 0
    fused = rows["fused"]
    if fused["status"] == "ok":
        assert fused["speedup_eager"] > 0 and fused["speedup_compile"] > 0 and fused["speedup_nn_compile"] > 0
        assert set(fused["targets"]) == {"instance_norm_act forward >= 2.5x eager",
                                         "instance_norm_act forward >= 1.0x torch.compile",
                                         "instance_norm_act forward >= 1.0x torch.compile(nn)"}
    else:  # no compiler, build failure...: the row says why, in backend_info()'s words
        assert fused["status"] == "not available" and fused["reason"].startswith("cpp backend not available")


def test_from_json_rerenders_without_running(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["bench", *TINY, "--json", str(out)]) == 0
    first = capsys.readouterr().out
    assert main(["bench", "--from-json", str(out), "--markdown", str(tmp_path / "again.md")]) == 0
    assert capsys.readouterr().out == first
    assert (tmp_path / "again.md").read_text() + "\n" == first


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["bench", "--shape", "2x4x8", "--no-models"]) == 2
    assert "--shape must be four positive sizes" in capsys.readouterr().err
    assert main(["bench", "--from-json", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_parse_shape():
    assert parse_shape("1x64X32x32") == (1, 64, 32, 32)
    for bad in ("1x64x32", "0x1x1x1", "axbxcxd", ""):
        with pytest.raises(ConfigError):
            parse_shape(bad)
