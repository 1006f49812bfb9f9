"""Models: one inference batch and one training step per trainable registered model, cpp vs reference backend.

Both backends of one (model, kind) share a pytest-benchmark group. Method as in zoo.bench.models: the builder's
module on a synthetic batch (inference), the recipe's own build() + step() on its first data items (training).
"""
from __future__ import annotations

import pytest

from zoo.bench.cases import fused_unavailable_reason
from zoo.bench.models import BACKENDS, KINDS, inference_call, smallest_per_task, train_step_call, trainable_models

MODELS = trainable_models()
BATCH = 2


@pytest.fixture(scope="session")
def smoke_items() -> set[tuple[str, str]]:
    """Under --benchmark-disable only cheap items run (the others take seconds to minutes per call on CPU): the
    inference of the smallest trainable model of each task, and the training step of the smallest one overall."""
    import zoo

    smallest = smallest_per_task(MODELS)
    items = {(name, "inference") for name in smallest}
    if smallest:
        size = {n: sum(p.numel() for p in zoo.load(n, pretrained=False).parameters()) for n in smallest}
        items.add((min(smallest, key=size.__getitem__), "train_step"))
    return items


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", MODELS)
def test_model(benchmark, benchmarks_disabled, smoke_items, model, kind, backend):
    from zoo import ops
    from zoo.errors import ZooError

    if benchmarks_disabled and (model, kind) not in smoke_items:
        pytest.skip("with --benchmark-disable only the cheapest models are smoke-run")
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
