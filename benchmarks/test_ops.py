"""Fused ops: fused (cpp backend) vs eager (reference backend) vs torch.compile(reference) vs nn (PyTorch's own
instance norm + LeakyReLU) vs torch.compile(nn) (the last two for instance_norm_act only), per case.

Each case's variants share one pytest-benchmark group, so `pytest benchmarks --benchmark-enable` prints them
side by side. (`zoo bench` times the same cases interleaved and adds bandwidth and target columns.)
"""
from __future__ import annotations

import pytest

from zoo.bench.cases import COMPILED, SHAPES, VARIANTS, CaseInputs, make_variants, op_cases

CASES = op_cases()
#: (case, variant) pairs that exist (nn only for instance_norm_act).
PAIRS = [(c, v) for c in CASES for v in VARIANTS if c.has_variant(v)]
#: Where torch.compile is still smoke-tested under --benchmark-disable (each compilation takes seconds).
SMOKE_COMPILE_SHAPE = min(SHAPES, key=lambda s: s[0] * s[1] * s[2] * s[3])


@pytest.mark.parametrize(("case", "variant"), PAIRS, ids=[f"{c.key.replace(' ', '-')}-{v}" for c, v in PAIRS])
def test_op(benchmark, benchmarks_disabled, case, variant):
    if variant in COMPILED and benchmarks_disabled and (case.shape, case.layout) != (SMOKE_COMPILE_SHAPE, "nchw"):
        pytest.skip("torch.compile is smoke-tested at the smallest shape only when benchmarks are disabled")
    benchmark.group = case.key
    inputs = CaseInputs(case)
    variants, unavailable, _ = make_variants(case, inputs, include=(variant,))
    if variant in unavailable:
        pytest.skip(f"{variant}: {unavailable[variant]}")
    (v,) = variants
    with v.context():
        out = benchmark(v.fn)
    first = out[0] if isinstance(out, tuple) else out
    assert first.shape == case.shape
