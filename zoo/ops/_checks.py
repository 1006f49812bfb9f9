"""Argument validation shared by both backends: every bad input raises a zoo error naming the argument."""
from __future__ import annotations

import math

import torch

from zoo.errors import ConfigError, ZooError

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class OpsTypeError(ZooError, TypeError):
    """An argument of a fused op has the wrong type or dtype."""


def check_input(x: object, op: str, min_dim: int) -> torch.Tensor:
    """`x` must be a floating tensor with at least `min_dim` dims (N, C, *spatial)."""
    if not isinstance(x, torch.Tensor):
        raise OpsTypeError(f"{op}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise OpsTypeError(f"{op}: x must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.dim() < min_dim:
        what = "(N, C, *spatial)" if min_dim >= 3 else "(N, C, ...)"
        raise ConfigError(f"{op}: x must have shape {what} with at least {min_dim} dims, got shape {tuple(x.shape)}")
    return x


def check_channel_param(t: object, name: str, x: torch.Tensor, op: str) -> torch.Tensor | None:
    """A per-channel vector (weight or bias): None, or shape (C,) on x's device; cast to x's dtype."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        raise OpsTypeError(f"{op}: {name} must be a torch.Tensor or None, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise OpsTypeError(f"{op}: {name} must be a floating tensor, got {t.dtype}")
    if x.dim() < 2:
        raise ConfigError(f"{op}: {name} needs x with a channel dim 1, got x of shape {tuple(x.shape)}")
    channels = x.shape[1]
    if t.dim() != 1 or t.shape[0] != channels:
        raise ConfigError(
            f"{op}: {name} must have shape ({channels},) (one value per channel of x), got {tuple(t.shape)}"
        )
    if t.device != x.device:
        raise ConfigError(f"{op}: {name} is on {t.device} but x is on {x.device}; put them on the same device")
    return t if t.dtype == x.dtype else t.to(x.dtype)


def check_number(value: object, name: str, op: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number, optionally >= minimum (> minimum when strict)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OpsTypeError(f"{op}: {name} must be a float, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{op}: {name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ConfigError(f"{op}: {name} must be {'>' if strict else '>='} {minimum}, got {value}")
    return value
