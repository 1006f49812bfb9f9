"""Shared setup of the pytest-benchmark modules.

With --benchmark-disable (how CI runs them) each benchmark runs its function once as a smoke test; torch.compile
variants are then compiled only at the smallest standard shape, since each compilation takes seconds.
"""
from __future__ import annotations

import pytest


@pytest.fixture
def benchmarks_disabled(request: pytest.FixtureRequest) -> bool:
    """True when pytest-benchmark only smoke-runs (--benchmark-disable)."""
    return bool(request.config.getoption("benchmark_disable", default=False))
