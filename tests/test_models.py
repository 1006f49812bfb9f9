"""The registry is the test matrix: every registered model builds, follows its task contract, round-trips its
weights, has an honest card for shipped weights, and (when trainable) runs one training step."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import zoo
from zoo.tasks.translation import channels_for
from zoo.train import make_options
from zoo.weights import resolve, save_weights, sha256_file

MODELS = zoo.list_models()
BIG = 5_000_000  # parameters above which a model's heavier checks are marked slow


def _params(spec: zoo.ModelSpec) -> int:
    return sum(p.numel() for p in spec.builder(**spec.config).parameters())


def _cases(predicate=lambda spec: True):
    out = []
    for name in MODELS:
        spec = zoo.get_spec(name)
        if not predicate(spec):
            continue
        marks = [pytest.mark.slow] if _params(spec) > BIG else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def test_the_builtin_plugins_register_models():
    for task in ("generation", "translation", "super-resolution"):
        assert zoo.list_models(task=task), f"no {task} model registered"


def _check_contract(spec: zoo.ModelSpec, model: torch.nn.Module) -> None:
    if spec.task == "generation":
        a, b = model.sample(2, seed=0), model.sample(2, seed=0)
        assert a.dim() == 4 and a.shape[0] == 2 and torch.equal(a, b)
        assert a.min() >= -1 and a.max() <= 1
        assert model(torch.zeros(1, model.latent_dim)).shape[1:] == a.shape[1:]
    elif spec.task == "translation":
        own = getattr(model, "direction", None)  # a single generator goes one way only
        for direction in (own,) if own else ("AtoB", "BtoA"):
            c_in, c_out = channels_for(model, direction)
            x = torch.rand(1, c_in, 32, 32) * 2 - 1
            y = model(x, direction=direction)
            assert y.shape == (1, c_out, 32, 32)
    else:
        x = torch.rand(1, model.in_channels, 16, 16)
        y = model(x)
        assert y.shape == (1, model.in_channels, 16 * model.scale, 16 * model.scale)


@pytest.mark.parametrize("name", _cases())
def test_builds_and_follows_task_contract(name):
    spec = zoo.get_spec(name)
    model = zoo.load(name, pretrained=False)
    assert not model.training
    with torch.no_grad():
        _check_contract(spec, model)


@pytest.mark.parametrize("name", _cases())
def test_weights_round_trip(name, tmp_path):
    model = zoo.load(name, pretrained=False)
    path = tmp_path / "w.safetensors"
    save_weights(path, model.state_dict(), {"zoo.model": name})
    again = zoo.load(name, weights=path)
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


@pytest.mark.parametrize("name", _cases(lambda s: s.weights is not None))
def test_shipped_weights_have_an_honest_card(name):
    spec = zoo.get_spec(name)
    path = resolve(spec.weights, download=False)
    assert sha256_file(path) == spec.weights.sha256
    card = zoo.model_card(name)
    assert card["reproduce"].startswith("zoo train") or "zoo train" in card["reproduce"]
    assert "zoo export" in card["reproduce"] and card["scores"], "card must say how to reproduce and what it scores"
    model = zoo.load(name)
    with torch.no_grad():
        _check_contract(spec, model)


@pytest.mark.parametrize("name", _cases(lambda s: s.recipe is not None))
def test_one_training_step(name, tmp_path):
    spec = zoo.get_spec(name)
    torch.manual_seed(0)
    opts = make_options(spec, out=str(tmp_path / "run"), batch_size=2)
    recipe = spec.recipe(spec, opts)
    modules = recipe.prepare(torch.device("cpu"))
    loader = torch.utils.data.DataLoader(recipe.dataset(), batch_size=2, shuffle=False)
    before = {k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in modules.items()}
    for m in modules.values():
        m.train()
    losses = recipe.step(next(iter(loader)), 0)
    assert losses and all(torch.isfinite(torch.tensor(float(v))) for v in losses.values())
    changed = [k for k, m in modules.items()
               if any(not torch.equal(before[k][n], p) for n, p in m.named_parameters())]
    assert changed, "a training step must update some parameters"
    with torch.no_grad():
        images = recipe.sample_images()
    assert images.dim() == 4 and images.min() >= -1 - 1e-6 and images.max() <= 1 + 1e-6
    assert set(recipe.export_module().state_dict()) == set(
        spec.builder(**recipe.export_config()).state_dict())
    assert dataclasses.asdict(opts)["batch_size"] == 2
