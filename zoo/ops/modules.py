"""nn.Module wrappers of the fused ops, with state_dicts that swap with the plain PyTorch layers."""
from __future__ import annotations

import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.ops.functional import bias_leaky_relu, instance_norm_act


def _positive_int(value: object, name: str, owner: str) -> int:
    """A channel count: a positive int."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


class InstanceNormAct2d(nn.Module):
    """InstanceNorm2d (no running stats) followed by LeakyReLU, fused; state_dict keys as nn.InstanceNorm2d.

    With affine=True it owns `weight` (ones) and `bias` (zeros) of shape (num_features,), exactly like
    nn.InstanceNorm2d(num_features, affine=True), so checkpoints of either module load into the other.
    """

    def __init__(self, num_features: int, affine: bool = False, eps: float = 1e-5, negative_slope: float = 0.2):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features", "InstanceNormAct2d")
        self.affine, self.eps, self.negative_slope = bool(affine), float(eps), float(negative_slope)
        if self.affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each (n, c) plane of x (N, C, H, W), then apply the affine map and LeakyReLU."""
        if isinstance(x, torch.Tensor) and (x.dim() != 4 or x.shape[1] != self.num_features):
            raise ConfigError(
                f"InstanceNormAct2d: x must have shape (N, {self.num_features}, H, W), got {tuple(x.shape)}"
            )
        return instance_norm_act(x, self.weight, self.bias, eps=self.eps, negative_slope=self.negative_slope)

    def extra_repr(self) -> str:
        return f"{self.num_features}, affine={self.affine}, eps={self.eps}, negative_slope={self.negative_slope}"


class FusedLeakyReLU(nn.Module):
    """Per-channel bias + LeakyReLU + gain in one pass (StyleGAN2's FusedLeakyReLU); owns `bias` (channels,)."""

    def __init__(self, channels: int, negative_slope: float = 0.2, scale: float = 1.0):
        super().__init__()
        self.channels = _positive_int(channels, "channels", "FusedLeakyReLU")
        self.negative_slope, self.scale = float(negative_slope), float(scale)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the bias on dim 1 of x (N, C, ...), apply LeakyReLU, multiply by scale."""
        return bias_leaky_relu(x, self.bias, negative_slope=self.negative_slope, scale=self.scale)

    def extra_repr(self) -> str:
        return f"{self.channels}, negative_slope={self.negative_slope}, scale={self.scale}"


class LeakyReLU(nn.Module):
    """LeakyReLU with no parameters served by the zoo.ops backend (for conv(bias=False) + activation)."""

    def __init__(self, negative_slope: float = 0.2):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """max(x, 0) + negative_slope * min(x, 0)."""
        return bias_leaky_relu(x, None, negative_slope=self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"
