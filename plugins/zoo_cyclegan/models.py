"""Translation modules (a single reference generator, or the A<->B pair) and the reference-checkpoint adapters."""
from __future__ import annotations

import re

from torch import Tensor, nn

from zoo.errors import ConfigError, WeightsError

from .networks import ResnetGenerator

DIRECTIONS = ("AtoB", "BtoA")
_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


class CycleGANGenerator(ResnetGenerator):
    """One reference generator (e.g. latest_net_G_A.pth) as a translation model that goes one way only.

    Keys are exactly the reference's `model.*`; `direction` records which way it translates (G_A: AtoB, G_B: BtoA).
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", use_dropout: bool = False, direction: str = "AtoB"):
        super().__init__(input_nc, output_nc, ngf, n_blocks, norm, use_dropout)
        _check_direction(direction)
        self.direction = direction
        self.in_channels, self.out_channels = input_nc, output_nc

    def channels(self, direction: str) -> tuple[int, int]:
        """(input, output) channel counts; this generator only goes its own `direction`."""
        self._check(direction)
        return self.in_channels, self.out_channels

    def _check(self, direction: str | None) -> None:
        if direction is not None and direction != self.direction:
            _check_direction(direction)
            raise ConfigError(
                f"this single generator translates {self.direction} only, got direction={direction!r}; load the "
                f"other generator (G_B for BtoA) with direction={direction!r}, or a pair model"
            )

    def forward(self, x: Tensor, direction: str | None = None) -> Tensor:
        self._check(direction)
        return self.model(x)


class CycleGANPair(nn.Module):
    """Both generators of a CycleGAN: G_A maps domain A to B, G_B maps B to A (keys `G_A.model.*`, `G_B.model.*`)."""

    size_multiple = ResnetGenerator.size_multiple
    min_size = ResnetGenerator.min_size

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", use_dropout: bool = False):
        super().__init__()
        self.G_A = ResnetGenerator(input_nc, output_nc, ngf, n_blocks, norm, use_dropout)
        self.G_B = ResnetGenerator(output_nc, input_nc, ngf, n_blocks, norm, use_dropout)
        self.in_channels, self.out_channels = input_nc, output_nc

    def channels(self, direction: str) -> tuple[int, int]:
        """(input, output) channel counts for `direction`."""
        _check_direction(direction)
        pair = (self.in_channels, self.out_channels)
        return pair if direction == "AtoB" else pair[::-1]

    def forward(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        _check_direction(direction)
        return self.G_A(x) if direction == "AtoB" else self.G_B(x)


def build_generator(**config) -> CycleGANGenerator:
    """Builder of the single-generator model (reference checkpoints such as latest_net_G_A.pth)."""
    return CycleGANGenerator(**config)


def build_pair(**config) -> CycleGANPair:
    """Builder of the A<->B pair model (zoo-trained CycleGANs)."""
    return CycleGANPair(**config)


def adapt_state_dict(state_dict: dict) -> dict:
    """Reference checkpoint -> zoo keys: strip DataParallel `module.` prefixes and drop the running statistics that
    old PyTorch stored for affine-free InstanceNorm layers (recognised by having no weight next to them)."""
    if not isinstance(state_dict, dict):
        raise WeightsError(f"a CycleGAN checkpoint must be a state dict (name -> tensor), got {type(state_dict).__name__}")
    stripped = {re.sub(r"(^|\.)module\.", r"\1", k): v for k, v in state_dict.items()}
    out = {}
    for key, value in stripped.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in _RUNNING_STATS and f"{prefix}.weight" not in stripped:
            continue  # InstanceNorm2d(track_running_stats) leftovers; batch norm keeps its (affine) statistics
        out[key] = value
    return out


def _generator_config(state_dict: dict, prefix: str) -> dict:
    """input_nc, output_nc, ngf, n_blocks, norm, use_dropout of the ResnetGenerator under `prefix` ('' or 'G_A.')."""
    first = state_dict.get(f"{prefix}model.1.weight")
    if first is None or first.dim() != 4:
        raise WeightsError(
            f"cannot infer the CycleGAN generator architecture: no 4-d {prefix}model.1.weight "
            f"(the first 7x7 conv of a reference ResnetGenerator); keys start with {sorted(state_dict)[:5]}"
        )
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(rf"{re.escape(prefix)}model\.(\d+)\.conv_block\.", k))}
    n_blocks = len(blocks)
    last = state_dict.get(f"{prefix}model.{17 + n_blocks}.weight")
    if last is None or last.dim() != 4:
        raise WeightsError(
            f"cannot infer the CycleGAN generator architecture: {n_blocks} residual blocks found but no final conv "
            f"{prefix}model.{17 + n_blocks}.weight"
        )
    return {
        "input_nc": int(first.shape[1]),
        "output_nc": int(last.shape[0]),
        "ngf": int(first.shape[0]),
        "n_blocks": n_blocks,
        "norm": "batch" if f"{prefix}model.2.weight" in state_dict else "instance",
        "use_dropout": getattr(state_dict.get(f"{prefix}model.10.conv_block.6.weight"), "ndim", 0) == 4,
    }


def infer_generator_config(state_dict: dict) -> dict:
    """Architecture of a single reference generator from its (adapted) keys and shapes."""
    return _generator_config(state_dict, "")


def infer_pair_config(state_dict: dict) -> dict:
    """Architecture of a pair from its G_A generator (G_B mirrors it; a mismatch shows up as a load error)."""
    return _generator_config(state_dict, "G_A.")
