"""Shared setup of the pytest-benchmark modules.

With --benchmark-disable (how CI runs them) each benchmark runs its function once as a smoke test; torch.compile
variants are then compiled only at the smallest standard shape, since each compilation takes seconds.
"""
from __future__ import annotations

import pytest


@pytest.fixture
def benchmarks_disabled(request: pytest.FixtureRequest) -> bool:
    """True when pytest-benchmark only smoke-runs (--benchmark-disable, which pyproject's addopts sets, unless
    --benchmark-enable overrides it)."""
    opt = request.config.getoption
    return bool(opt("benchmark_disable", default=False)) and not opt("benchmark_enable", default=False)
