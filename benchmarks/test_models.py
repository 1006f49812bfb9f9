"""Models: one inference batch and one training step per trainable registered model, cpp vs reference backend.

Both backends of one (model, kind) share a pytest-benchmark group. Method as in zoo.bench.models: the builder's
module on a synthetic batch (inference), the recipe's own build() + step() on its first data items (training).
"""
from __future__ import annotations

import pytest

from zoo.bench.cases import fused_unavailable_reason
from zoo.bench.models import BACKENDS, KINDS, inference_call, train_step_call, trainable_models

MODELS = trainable_models()
BATCH = 2


@pytest.fixture(scope="session")
def smoke_models() -> set[str]:
    """Under --benchmark-disable only the smallest trainable model of each task runs (the others take seconds to
    minutes per call on CPU)."""
    import zoo

    smallest: dict[str, tuple[int, str]] = {}
    for name in MODELS:
        spec = zoo.registry.get_spec(name)
        size = sum(p.numel() for p in spec.builder(**spec.config).parameters())
        smallest[spec.task] = min(smallest.get(spec.task, (size, name)), (size, name))
    return {name for _, name in smallest.values()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", MODELS)
def test_model(benchmark, benchmarks_disabled, smoke_models, model, kind, backend):
    from zoo import ops
    from zoo.errors import ZooError

    if benchmarks_disabled and model not in smoke_models:
        pytest.skip("with --benchmark-disable only the smallest model of each task is smoke-run")
    if backend == "cpp":
        reason = fused_unavailable_reason("cpu")
        if reason is not None:
            pytest.skip(f"cpp: {reason}")
    benchmark.group = f"{model} {kind}"
    try:
        call, _, _ = (inference_call if kind == "inference" else train_step_call)(model, BATCH)
    except ZooError as exc:  # e.g. a recipe without embedded data needs --data
        pytest.skip(str(exc))
    with ops.use_backend(backend):
        out = benchmark(call)
    assert out is not None
