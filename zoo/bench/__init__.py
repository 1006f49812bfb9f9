"""Benchmarks of the fused ops and the models: interleaved timing, bandwidth yardsticks, targets, reports.

`zoo bench` (zoo.cli.bench) and `python -m benchmarks` drive `zoo.bench.suite.run`; benchmarks/ reuses the cases.
"""
from zoo.bench.cases import OpCase, op_cases
from zoo.bench.report import read_json, render_markdown, write_chart, write_json, write_markdown
from zoo.bench.suite import Config, run
from zoo.bench.targets import TARGETS, evaluate

__all__ = ["Config", "OpCase", "TARGETS", "evaluate", "op_cases", "read_json", "render_markdown", "run",
           "write_chart", "write_json", "write_markdown"]
