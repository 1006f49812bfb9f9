"""The one training loop: options -> recipe -> epochs with progress, sample grids, atomic checkpoints, exact resume,
data parallelism under torchrun; and export of a run to shippable safetensors."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import sys
import time
import typing
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from zoo.errors import ConfigError, DataError
from zoo.imageio import save_grid
from zoo.io import atomic_write
from zoo.loading import check_device, load, load_state
from zoo.registry import ModelSpec, get_spec
from zoo.train.checkpoint import CHECKPOINT, RunLock, load_checkpoint, save_checkpoint
from zoo.train.distributed import Distributed, init_from_env, shutdown
from zoo.train.recipe import Recipe, TrainOptions
from zoo.weights import save_weights


def recipe_class(spec: ModelSpec) -> type[Recipe]:
    """The training recipe of a model, or a clear error if it cannot be trained with zoo."""
    if spec.recipe is None:
        raise ConfigError(f"model {spec.name!r} has no training recipe; `zoo list` marks trainable models")
    return spec.recipe


def options_parser(spec: ModelSpec, prog: str = "zoo train") -> argparse.ArgumentParser:
    """An argparse parser with one flag per field of the recipe's options dataclass (defaults suppressed, so the
    parsed namespace holds only what the user gave)."""
    cls = recipe_class(spec).Options
    parser = argparse.ArgumentParser(prog=f"{prog} {spec.name}", argument_default=argparse.SUPPRESS,
                                     description=f"Train {spec.name} ({spec.architecture or spec.task}).")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_ = f"{f.metadata.get('help', '')} (default: {default!r})"
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=help_)
        elif kind in (int, float, str):
            parser.add_argument(flag, dest=f.name, type=kind, metavar=f.name.upper(), help=help_)
        else:
            raise TypeError(f"option {f.name} of {cls.__name__} has unsupported type {kind}")
    return parser


def parse_options(spec: ModelSpec, argv: Sequence[str]) -> tuple[TrainOptions, dict[str, Any]]:
    """Options from command-line flags; also returns the flags that were given explicitly."""
    given = vars(options_parser(spec).parse_args(list(argv)))
    return make_options(spec, **given), given


def make_options(spec: ModelSpec, **values: Any) -> TrainOptions:
    """Options for `spec`'s recipe from keyword values (unknown names are an error listing the valid ones)."""
    cls = recipe_class(spec).Options
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown training options for {spec.name}: {', '.join(unknown)}; "
                          f"valid: {', '.join(sorted(names))}")
    opts = cls(**values)
    if not opts.out:
        opts.out = str(Path("runs") / spec.name)
    for name in ("epochs", "batch_size"):
        if getattr(opts, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(opts, name)}")
    return opts


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A seed per (run seed, epoch, rank): every epoch starts from a known RNG state, so resume is exact."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


class Trainer:
    """Runs one recipe for a number of epochs in a run directory."""

    def __init__(self, spec: ModelSpec, opts: TrainOptions, *, show_progress: bool = True) -> None:
        self.spec, self.opts = spec, opts
        self.run_dir = Path(opts.out)
        device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dist: Distributed = init_from_env(check_device(device).type)
        if device == "cuda" and self.dist.world_size > 1:
            device = f"cuda:{self.dist.local_rank}"
        self.device = torch.device(device)
        self.show_progress = show_progress and self.dist.is_main

    def _state(self, recipe: Recipe, modules: dict, optimizers: dict, epoch: int) -> dict[str, Any]:
        return {
            "model": self.spec.name,
            "epoch": epoch,
            "options": dataclasses.asdict(self.opts),
            "modules": {k: m.state_dict() for k, m in modules.items()},
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in recipe.schedulers.items()},
            "extra": recipe.extra_state(),
            "export": {"state": recipe.export_module().state_dict(), "config": json.dumps(recipe.export_config())},
        }

    def run(self) -> Path:
        """Train to `opts.epochs`; returns the run directory."""
        opts, spec = self.opts, self.spec
        if opts.eval_every and spec.evaluate is None:
            raise ConfigError(f"--eval-every: model {spec.name!r} has no evaluation (its plugin defines none)")
        lock = RunLock(self.run_dir) if self.dist.is_main else contextlib.nullcontext()
        with lock:
            start_epoch, ckpt = 0, None
            if (self.run_dir / CHECKPOINT).exists():
                if not opts.resume:
                    raise ConfigError(f"{self.run_dir} already holds a run; pass --resume to continue it "
                                      f"or choose another --out")
                ckpt = load_checkpoint(self.run_dir)
                if ckpt["model"] != spec.name:
                    raise ConfigError(f"{self.run_dir} is a run of {ckpt['model']!r}, not {spec.name!r}")
                start_epoch = int(ckpt["epoch"])
            torch.manual_seed(opts.seed)
            recipe = recipe_class(spec)(spec, opts)
            modules = recipe.prepare(self.device, self.dist)
            optimizers = recipe.optimizers
            for m in modules.values():
                self.dist.broadcast_module(m)
            if ckpt is not None:
                recipe.upgrade_checkpoint(ckpt, modules)
                for k, m in modules.items():
                    m.load_state_dict(ckpt["modules"][k])
                for k, o in optimizers.items():
                    o.load_state_dict(ckpt["optimizers"][k])
                for k, s in recipe.schedulers.items():
                    s.load_state_dict(ckpt["schedulers"][k])
                recipe.load_extra_state(ckpt["extra"])
            if start_epoch >= opts.epochs:
                if self.dist.is_main:
                    print(f"{self.run_dir}: already trained for {start_epoch} epochs (--epochs {opts.epochs})",
                          file=sys.stderr)
                return self.run_dir
            dataset = recipe.dataset()
            if len(dataset) < opts.batch_size * self.dist.world_size:
                raise DataError(f"the training data has {len(dataset)} items, fewer than one batch "
                                f"({opts.batch_size} x {self.dist.world_size} processes); lower --batch-size")
            if self.dist.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            for epoch in range(start_epoch, opts.epochs):
                recipe.begin_epoch(epoch)
                self._epoch(recipe, modules, dataset, epoch)
                recipe.end_epoch(epoch)
                if self.dist.is_main:
                    self._after_epoch(recipe, modules, optimizers, epoch)
                self.dist.barrier()
        return self.run_dir

    def _epoch(self, recipe: Recipe, modules: dict, dataset: Any, epoch: int) -> None:
        opts = self.opts
        torch.manual_seed(_epoch_seed(opts.seed, epoch, self.dist.rank))
        if self.dist.world_size > 1:
            sampler: Any = DistributedSampler(dataset, self.dist.world_size, self.dist.rank, shuffle=True,
                                              seed=opts.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            gen = torch.Generator().manual_seed(_epoch_seed(opts.seed, epoch, -1))
            sampler = RandomSampler(dataset, generator=gen)
        loader = DataLoader(dataset, batch_size=opts.batch_size, sampler=sampler, drop_last=True,
                            num_workers=opts.num_workers)
        for m in modules.values():
            m.train()
        totals: dict[str, float] = {}
        start = time.time()
        n = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{opts.epochs}", disable=not self.show_progress,
                   mininterval=1.0, leave=False, file=sys.stderr)
        for it, batch in enumerate(bar):
            losses = recipe.step(_to_device(batch, self.device), epoch * len(loader) + it)
            n += 1
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v)
            bar.set_postfix({k: f"{v / n:.3f}" for k, v in totals.items()}, refresh=False)
        bar.close()
        self._epoch_losses = {k: v / max(n, 1) for k, v in totals.items()}
        self._epoch_time = time.time() - start

    def _write_log(self, record: dict[str, Any]) -> None:
        """Rewrite log.jsonl atomically with `record` after the lines of earlier epochs. The log is written before
        the checkpoint, so a kill between the two never loses a line; lines of epochs that a resume re-runs (a kill
        after the log, before the checkpoint) are replaced instead of repeated."""
        log = self.run_dir / "log.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        kept = [line for line in lines if line.strip() and json.loads(line).get("epoch", 0) < record["epoch"]]
        with atomic_write(log, "w") as f:
            f.write("".join(line + "\n" for line in kept) + json.dumps(record) + "\n")

    def _after_epoch(self, recipe: Recipe, modules: dict, optimizers: dict, epoch: int) -> None:
        done = epoch + 1
        if done % self.opts.sample_every == 0 or done == self.opts.epochs:
            with torch.no_grad():
                images = recipe.sample_images()
            for m in modules.values():
                m.train()
            save_grid(self.run_dir / "samples" / f"epoch_{done:03d}.png", images, recipe.grid_nrow())
        record = {"epoch": done, "seconds": round(self._epoch_time, 2), **self._epoch_losses}
        self._write_log(record)
        save_checkpoint(self.run_dir, self._state(recipe, modules, optimizers, done))
        every = self.opts.eval_every
        if every and (done % every == 0 or done == self.opts.epochs):
            # after the checkpoint, so an evaluation that fails loses no training; the scored line replaces this one
            record["scores"] = self._evaluate(recipe)
            self._write_log(record)
        if self.show_progress:
            losses = " ".join(f"{k}={v:.4f}" for k, v in self._epoch_losses.items())
            print(f"epoch {done}/{self.opts.epochs} ({self._epoch_time:.1f}s) {losses}", file=sys.stderr)
            if "scores" in record:
                print(f"epoch {done} scores: {json.dumps(record['scores'])}", file=sys.stderr)

    def _evaluate(self, recipe: Recipe) -> dict[str, Any]:
        """The model's evaluation on a fresh build holding the exported weights, as `zoo eval` would score an export
        of this epoch (float32; a --half export can differ slightly). The training modules are not touched."""
        model = load(self.spec.name, pretrained=False, device=self.device, **recipe.export_config())
        load_state(model, recipe.export_module().state_dict(), "the run's export of this epoch")
        with torch.no_grad():
            return self.spec.evaluate(model)


def run_training(name: str, opts: TrainOptions | Sequence[str] | None = None, **values: Any) -> Path:
    """Train model `name` with options (a TrainOptions, CLI-style flags, or keyword values); returns the run dir."""
    spec = get_spec(name)
    if not isinstance(opts, TrainOptions):
        # a resumed run keeps its saved options; only what is given explicitly (e.g. more --epochs) changes
        opts, given = (make_options(spec, **values), values) if opts is None else parse_options(spec, opts)
        if opts.resume and (Path(opts.out) / CHECKPOINT).exists():
            saved = load_checkpoint(opts.out)["options"]
            opts = make_options(spec, **{**saved, **given})
    try:
        return Trainer(spec, opts).run()
    finally:
        shutdown()


def export_run(run_dir: str | Path, out: str | Path, *, half: bool = False) -> tuple[Path, str]:
    """Write the exported module of a run's last checkpoint as safetensors (+ .sha256); returns (path, sha256)."""
    if Path(out).suffix.lower() != ".safetensors":
        raise ConfigError(f"export writes safetensors: name the output *.safetensors, got {str(out)!r}")
    ckpt = load_checkpoint(run_dir)
    state = ckpt["export"]["state"]
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {"zoo.model": ckpt["model"], "zoo.config": ckpt["export"]["config"], "zoo.epoch": str(ckpt["epoch"]),
            "zoo.dtype": "float16" if half else "as-trained"}
    out = Path(out)
    return out, save_weights(out, state, meta)
