"""What a plugin supplies to train a model: its options, networks, data, one training step and what to export."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from zoo.registry import ModelSpec
    from zoo.train.distributed import Distributed


@dataclass
class TrainOptions:
    """Options every recipe has; subclass (as a dataclass) to add recipe flags. Each field is a `zoo train` flag."""

    out: str = field(default="", metadata={"help": "run directory (checkpoint, samples, log); default runs/NAME"})
    epochs: int = field(default=10, metadata={"help": "total number of epochs to train"})
    batch_size: int = field(default=64, metadata={"help": "batch size per process"})
    lr: float = field(default=2e-4, metadata={"help": "learning rate"})
    seed: int = field(default=0, metadata={"help": "random seed (data order, init, noise)"})
    data: str = field(default="", metadata={"help": "data directory; empty = the embedded default data"})
    resume: bool = field(default=False, metadata={"help": "continue the run in --out from its last checkpoint"})
    num_workers: int = field(default=0, metadata={"help": "data loader worker processes"})
    device: str = field(default="", metadata={"help": "device (cpu, cuda, cuda:1); default: cuda if available"})
    sample_every: int = field(default=1, metadata={"help": "write a sample grid every N epochs"})
    eval_every: int = field(default=0, metadata={"help": "score the exported model with the model's evaluation "
                                                 "(what zoo eval runs) every N epochs and after the last; 0 = never"})


class Recipe(abc.ABC):
    """A model family's training: the engine owns the loop, checkpoints, resume, logging and data parallelism."""

    Options: type[TrainOptions] = TrainOptions

    def __init__(self, spec: "ModelSpec", opts: TrainOptions) -> None:
        self.spec = spec
        self.opts = opts
        self.schedulers: dict[str, Any] = {}
        self.device = torch.device("cpu")
        self._dist: "Distributed | None" = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}  # by name, as build() returned them (see prepare)

    def prepare(self, device: torch.device, dist: "Distributed | None" = None) -> dict[str, nn.Module]:
        """Build the networks and optimisers on `device` and keep the optimisers (what the engine does before the
        first step; call it yourself to drive `step` outside the engine). Returns the networks."""
        self.device, self._dist = device, dist
        modules, self.optimizers = self.build(device)
        return modules

    @property
    def world_size(self) -> int:
        """How many processes train together (1 outside torchrun)."""
        return self._dist.world_size if self._dist is not None else 1

    @abc.abstractmethod
    def build(self, device: torch.device) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        """Create the networks and their optimisers on `device`."""

    @abc.abstractmethod
    def dataset(self) -> torch.utils.data.Dataset:
        """The training data set (items are tensors or tuples of tensors)."""

    @abc.abstractmethod
    def step(self, batch: Any, it: int) -> dict[str, float]:
        """One training iteration on `batch`; returns the losses to log. Call `self.optimize(name, loss)`."""

    @abc.abstractmethod
    def sample_images(self) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] for the per-epoch sample grid (called under no_grad)."""

    @abc.abstractmethod
    def export_module(self) -> nn.Module:
        """The module whose state_dict is shipped (keys as the spec's builder makes them)."""

    def export_config(self) -> dict[str, Any]:
        """The builder configuration of the exported module."""
        return dict(self.spec.config)

    def grid_nrow(self) -> int:
        """Images per row of the sample grid."""
        return 8

    def begin_epoch(self, epoch: int) -> None:
        """Hook before each epoch (0-based), also the first one after a resume: schedules that are a pure function of
        the epoch set themselves here and need no saved state."""

    def end_epoch(self, epoch: int) -> None:
        """Hook after each epoch (learning-rate schedules and the like)."""

    def extra_state(self) -> dict[str, Any]:
        """Recipe state beyond networks/optimisers/schedulers that a resume needs (plain tensors and numbers)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what `extra_state` returned."""

    def upgrade_checkpoint(self, ckpt: dict[str, Any], modules: dict[str, nn.Module]) -> None:
        """Adapt, in place, a checkpoint being resumed with options that add state it lacks (e.g. new parameters,
        taken from the freshly built `modules`); called before anything is loaded. The default changes nothing."""

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Zero the grads of optimiser `name`, backpropagate `loss`, average grads across processes, step."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.world_size > 1:
            self._dist.average_gradients(p for group in opt.param_groups for p in group["params"])
        opt.step()
