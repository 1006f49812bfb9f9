"""Models: one inference batch and one training step per trainable registered model, cpp vs reference backend.

Both backends of one (model, kind) share a pytest-benchmark group. Method as in zoo.bench.models: the builder's
module on a synthetic batch (inference), the recipe's own build() + step() on its first data items (training).
"""
from __future__ import annotations

import pytest

from zoo.bench.cases import fused_unavailable_reason
from zoo.bench.models import BACKENDS, KINDS, inference_call, train_step_call, trainable_models

MODELS = trainable_models()
BATCH = 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", MODELS)
def test_model(benchmark, model, kind, backend):
    from zoo import ops

    if backend == "cpp":
        reason = fused_unavailable_reason("cpu")
        if reason is not None:
            pytest.skip(f"cpp: {reason}")
    benchmark.group = f"{model} {kind}"
    call, _, _ = (inference_call if kind == "inference" else train_step_call)(model, BATCH)
    with ops.use_backend(backend):
        out = benchmark(call)
    assert out is not None
