"""Model-level benchmark: per registered model with a training recipe, one inference batch and one training step,
timed side by side with the ops' cpp backend and the reference backend.

Method: inference runs the registered builder's module (random init, eval mode, no_grad) on a synthetic batch that
follows the task contract; the training step is the recipe's own `build()` + `step()` (set up the way the training
engine does) on the first items of the recipe's default data set, so it includes every loss and optimiser step.
"""
from __future__ import annotations

import itertools
from typing import Callable

import torch
from torch.utils.data import default_collate

from zoo.bench.timing import Variant, measure

BACKENDS = ("cpp", "reference")
KINDS = ("inference", "train_step")
#: Image side of synthetic inference inputs (rounded up to the model's size_multiple).
TRANSLATION_SIDE = 64
SUPERRES_SIDE = 32


def trainable_models() -> list[str]:
    """Registered models that have a training recipe (the ones `zoo train` accepts)."""
    import zoo

    return [name for name in zoo.list_models() if zoo.registry.get_spec(name).recipe is not None]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def inference_call(name: str, batch: int, device: str = "cpu") -> tuple[Callable[[], object], str]:
    """A no_grad forward of the randomly initialised model on a synthetic batch; also a description of the input."""
    import zoo

    spec = zoo.registry.get_spec(name)
    module = zoo.load(name, pretrained=False, device=device)
    gen = torch.Generator().manual_seed(0)
    if spec.task == "generation":
        inp = torch.randn(batch, module.latent_dim, generator=gen)
        args: tuple = (inp,)
    elif spec.task == "translation":
        side = _round_up(TRANSLATION_SIDE, int(getattr(module, "size_multiple", 1)))
        inp = torch.rand(batch, module.in_channels, side, side, generator=gen) * 2 - 1
        args = (inp,)
    elif spec.task == "super-resolution":
        side = _round_up(SUPERRES_SIDE, int(getattr(module, "size_multiple", 1) or 1))
        inp = torch.rand(batch, module.in_channels, side, side, generator=gen)
        args = (inp,)
    else:
        raise ValueError(f"model {name!r} has task {spec.task!r}, which the model benchmark does not know")
    args = tuple(a.to(device) for a in args)

    def call() -> object:
        with torch.no_grad():
            return module(*args)

    return call, "x".join(str(s) for s in inp.shape)


def train_step_call(name: str, batch: int, device: str = "cpu") -> tuple[Callable[[], object], str]:
    """One `recipe.step()` on the first `batch` items of the recipe's default data, set up as the engine does."""
    import zoo
    from zoo.train import make_options

    spec = zoo.registry.get_spec(name)
    torch.manual_seed(0)
    opts = make_options(spec, batch_size=batch, device=device, out="")
    recipe = spec.recipe(spec, opts)
    recipe.device = torch.device(device)
    modules, optimizers = recipe.build(recipe.device)
    recipe._optimizers = optimizers  # what zoo.train.engine.Trainer does before the first step
    for m in modules.values():
        m.train()
    data = recipe.dataset()
    items = default_collate([data[i] for i in range(batch)])
    items = _to_device(items, recipe.device)
    counter = itertools.count()

    def call() -> object:
        return recipe.step(items, next(counter))

    shapes = [t.shape for t in (items if isinstance(items, (list, tuple)) else [items]) if isinstance(t, torch.Tensor)]
    return call, ", ".join("x".join(str(s) for s in sh) for sh in shapes)


def _to_device(batch: object, device: torch.device) -> object:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def bench_model(
    name: str, kind: str, *, batch: int, rounds: int, sample_s: float, fused_reason: str | None, device: str = "cpu"
) -> dict:
    """Time one model in one kind (inference | train_step) under both backends, interleaved; a row dict."""
    from zoo import ops

    row: dict = {"model": name, "kind": kind, "batch": batch, "device": device, "status": "ok"}
    try:
        make = inference_call if kind == "inference" else train_step_call
        call, input_desc = make(name, batch, device)
        row["input"] = input_desc
        variants = [Variant("reference", call, lambda: ops.use_backend("reference"))]
        if fused_reason is None:
            variants.insert(0, Variant("cpp", call, lambda: ops.use_backend("cpp")))
        else:
            row["cpp_reason"] = fused_reason
        timings = measure(variants, rounds=rounds, sample_s=sample_s, warmup=1, device=device)
    except Exception as exc:  # noqa: BLE001 - a broken model is reported in its row; the other rows still run
        row.update(status="error", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return row
    for backend, t in timings.items():
        s = t.summary()
        row[f"{backend}_ms"] = s["median_ms"]
        row[f"{backend}_iqr_pct"] = s["iqr_pct"]
    row["rounds"] = rounds
    if "cpp_ms" in row:
        row["ratio"] = row["reference_ms"] / row["cpp_ms"]
    return row
