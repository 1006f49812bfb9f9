"""Model-level benchmark: per registered model with a training recipe, one inference batch and one training step,
timed side by side with the ops' cpp backend and the reference backend.

Method: inference runs the registered builder's module (random init, eval mode, no_grad) on a synthetic batch that
follows the task contract; the training step is the recipe's own `build()` + `step()` (set up the way the training
engine does) on the first items of the recipe's default data set, so it includes every loss and optimiser step.
Each (model, kind) gets a time budget: slow models get fewer interleaved rounds (at least one per backend).
"""
from __future__ import annotations

import itertools
from typing import Callable

import torch
from torch.utils.data import default_collate

from zoo.bench.timing import Clock, Variant, measure

BACKENDS = ("cpp", "reference")
KINDS = ("inference", "train_step")
#: Image side of synthetic inference inputs (rounded up to the model's size_multiple).
TRANSLATION_SIDE = 32
SUPERRES_SIDE = 24


def trainable_models() -> list[str]:
    """Registered models that have a training recipe (the ones `zoo train` accepts)."""
    import zoo

    return [name for name in zoo.list_models() if zoo.registry.get_spec(name).recipe is not None]


def smallest_per_task(names: list[str]) -> list[str]:
    """The model with the fewest parameters of each task among `names` (the `--quick` subset), in name order."""
    import zoo

    smallest: dict[str, tuple[int, str]] = {}
    for name in names:
        spec = zoo.registry.get_spec(name)
        size = sum(p.numel() for p in spec.builder(**spec.config).parameters())
        smallest[spec.task] = min(smallest.get(spec.task, (size, name)), (size, name))
    return sorted(name for _, name in smallest.values())


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def fused_module_count(modules: list[torch.nn.Module]) -> int:
    """How many zoo.ops modules (the layers the backend switch affects) the networks contain."""
    from zoo import ops

    kinds = (ops.InstanceNormAct2d, ops.FusedLeakyReLU, ops.LeakyReLU)
    return sum(isinstance(m, kinds) for net in modules for m in net.modules())


def inference_call(name: str, batch: int, device: str = "cpu") -> tuple[Callable[[], object], str, int]:
    """A no_grad forward of the randomly initialised model on a synthetic batch; also a description of the input
    and the number of zoo.ops modules in the model."""
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

    return call, "x".join(str(s) for s in inp.shape), fused_module_count([module])


def train_step_call(name: str, batch: int, device: str = "cpu") -> tuple[Callable[[], object], str, int]:
    """One `recipe.step()` on the first `batch` items of the recipe's default data, set up as the engine does; also
    a description of the batch and the number of zoo.ops modules in the recipe's networks."""
    import zoo
    from zoo.train import make_options

    spec = zoo.registry.get_spec(name)
    torch.manual_seed(0)
    opts = make_options(spec, batch_size=batch, device=device, out="")
    recipe = spec.recipe(spec, opts)
    modules = recipe.prepare(torch.device(device))
    for m in modules.values():
        m.train()
    data = recipe.dataset()
    items = default_collate([data[i] for i in range(batch)])
    items = _to_device(items, recipe.device)
    counter = itertools.count()

    def call() -> object:
        return recipe.step(items, next(counter))

    shapes = [t.shape for t in (items if isinstance(items, (list, tuple)) else [items]) if isinstance(t, torch.Tensor)]
    return call, ", ".join("x".join(str(s) for s in sh) for sh in shapes), fused_module_count(list(modules.values()))


def _to_device(batch: object, device: torch.device) -> object:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def bench_model(
    name: str, kind: str, *, batch: int, max_rounds: int, budget_s: float, fused_reason: str | None,
    device: str = "cpu",
) -> dict:
    """Time one model in one kind (inference | train_step) under both backends, interleaved; a row dict.

    Timed reference calls first estimate the cost t (the first call, with its one-off costs, and a second one only
    if half the first would fit); the whole item then costs about (2 + 2 * (1 + rounds)) * t (estimate, one calibration call
    per backend, the rounds), so the rounds are as many as fit in `budget_s` (1..max_rounds). A model that does not
    fit even one round is skipped, and says so.
    Both backends are always timed: a model can call the zoo.ops functions directly (ESRGAN's conv + LeakyReLU pairs)
    without holding any zoo.ops module, so the module count alone cannot say the backend changes nothing.
    """
    from zoo import ops
    from zoo.errors import ZooError

    row: dict = {"model": name, "kind": kind, "batch": batch, "device": device, "status": "ok"}
    try:
        make = inference_call if kind == "inference" else train_step_call
        call, row["input"], row["fused_modules"] = make(name, batch, device)
        n_backends = 2 if fused_reason is None else 1

        def fitting_rounds(t: float) -> int:
            return min(max_rounds, int((budget_s / max(t, 1e-9) - 2 - n_backends) / n_backends))

        clock = Clock(device)
        with ops.use_backend("reference"):
            one = clock.time(call, 1)  # the first call (with one-off costs) is an upper bound of the cost
            if fitting_rounds(one / 2) >= 1:  # one-off costs can double a first call: look again
                one = clock.time(call, 1)
        rounds = fitting_rounds(one)
        if rounds < 1:
            row.update(status="skipped", reason=f"one call takes {one:.2f} s: even one round exceeds the "
                                                f"{budget_s:.1f} s budget left for it (raise --model-budget)")
            return row
        variants = [Variant("reference", call, lambda: ops.use_backend("reference"))]
        if fused_reason is None:
            variants.insert(0, Variant("cpp", call, lambda: ops.use_backend("cpp")))
        else:
            row["cpp_reason"] = fused_reason
        timings = measure(variants, rounds=rounds, sample_s=1e-9, warmup=0, device=device)
    except ZooError as exc:  # e.g. a recipe that needs a data directory: a skip, not a failure
        row.update(status="skipped", reason=str(exc))
        return row
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
