"""zoo.bench.models on a tiny registered model: rows, zoo.ops layer count, budgets and skips (no timing asserts)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from zoo import ops
from zoo.bench.models import bench_model, trainable_models
from zoo.errors import DataError
from zoo.train import Recipe


class BenchGen(nn.Module):
    """latent -> 1x4x4 image through one zoo.ops layer."""

    def __init__(self, latent_dim: int = 3, fused: bool = True) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.fc = nn.Linear(latent_dim, 16)
        self.act = ops.LeakyReLU(0.2) if fused else nn.LeakyReLU(0.2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.act(self.fc(z))).view(-1, 1, 4, 4)

    def sample(self, n: int, *, seed: int | None = None) -> torch.Tensor:
        return self(torch.randn(n, self.latent_dim))


def build_bench_gen(latent_dim: int = 3, fused: bool = True) -> BenchGen:
    return BenchGen(latent_dim, fused)


class BenchRecipe(Recipe):
    """Fits the generator's output to zero: one optimiser, a data set of latent vectors."""

    def build(self, device):
        self.G = BenchGen().to(device)
        return {"G": self.G}, {"G": torch.optim.SGD(self.G.parameters(), lr=0.1)}

    def dataset(self):
        return torch.utils.data.TensorDataset(torch.randn(8, 3))

    def step(self, batch, it):
        loss = self.G(batch[0]).square().mean()
        self.optimize("G", loss)
        return {"loss": float(loss.detach())}

    def sample_images(self):
        return self.G.sample(4)

    def export_module(self):
        return self.G


class NoDataRecipe(BenchRecipe):
    def dataset(self):
        raise DataError("bench-nodata has no embedded data: pass --data DIR")


@pytest.fixture
def bench_models(register_spec):
    for name, recipe in (("bench-tiny", BenchRecipe), ("bench-nodata", NoDataRecipe)):
        register_spec(zoo.ModelSpec(name=name, task="generation", builder=build_bench_gen, recipe=recipe))
    register_spec(zoo.ModelSpec(name="bench-plain", task="generation", builder=build_bench_gen,
                                config={"fused": False}, recipe=BenchRecipe))
    return ["bench-tiny", "bench-nodata"]


def test_trainable_models_lists_models_with_a_recipe(bench_models, register_spec):
    register_spec(zoo.ModelSpec(name="bench-norecipe", task="generation", builder=build_bench_gen))
    names = trainable_models()
    assert set(bench_models) <= set(names) and "bench-plain" in names and "bench-norecipe" not in names


@pytest.mark.slow  # the cpp backend loads (on a fresh ZOO_HOME: JIT-builds) the C++ ops
@pytest.mark.parametrize("kind", ["inference", "train_step"])
def test_model_row_compares_backends(bench_models, kind):
    row = bench_model("bench-tiny", kind, batch=2, max_rounds=3, budget_s=30.0, fused_reason=None)
    assert row["status"] == "ok", row
    assert row["fused_modules"] == 1 and 1 <= row["rounds"] <= 3
    assert row["reference_ms"] > 0 and row["cpp_ms"] > 0
    assert row["ratio"] == pytest.approx(row["reference_ms"] / row["cpp_ms"])
    assert row["input"] == "2x3"


@pytest.mark.parametrize("kind", ["inference", "train_step"])
def test_model_row_without_cpp_says_why(bench_models, kind):
    row = bench_model("bench-tiny", kind, batch=2, max_rounds=2, budget_s=30.0, fused_reason="no compiler")
    assert row["status"] == "ok" and "cpp_ms" not in row and "ratio" not in row
    assert row["cpp_reason"] == "no compiler"
    assert row["fused_modules"] == 1 and 1 <= row["rounds"] <= 2 and row["reference_ms"] > 0


def test_model_over_budget_is_skipped_with_the_reason(bench_models):
    row = bench_model("bench-tiny", "train_step", batch=2, max_rounds=3, budget_s=1e-9, fused_reason=None)
    assert row["status"] == "skipped" and "budget" in row["reason"]


def test_model_needing_data_is_skipped_not_failed(bench_models):
    row = bench_model("bench-nodata", "train_step", batch=2, max_rounds=3, budget_s=30.0, fused_reason=None)
    assert row["status"] == "skipped" and "--data" in row["reason"]


def test_model_without_zoo_ops_modules_still_times_both_backends(bench_models):
    # a model may call zoo.ops functions without holding a zoo.ops module, so both backends are always timed
    row = bench_model("bench-plain", "inference", batch=2, max_rounds=2, budget_s=30.0, fused_reason=None)
    assert row["status"] == "ok" and row["fused_modules"] == 0
    assert row["reference_ms"] > 0 and row["cpp_ms"] > 0


def test_smallest_per_task_is_the_quick_model_subset(bench_models, register_spec):
    from zoo.bench.models import smallest_per_task

    register_spec(zoo.ModelSpec(name="bench-big", task="generation", builder=build_bench_gen,
                                config={"latent_dim": 64}, recipe=BenchRecipe))
    assert smallest_per_task(["bench-big", "bench-tiny"]) == ["bench-tiny"]
