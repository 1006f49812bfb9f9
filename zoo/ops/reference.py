"""Pure-PyTorch reference of the fused ops: the fallback backend and the test oracle.

Same signatures and numerics as the compiled kernels: float16/bfloat16 are computed in float32 and rounded once at
the end, statistics use the biased variance with eps inside the square root (as F.instance_norm), and the output
keeps the input's memory format (channels_last in, channels_last out).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_REDUCED = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype arithmetic is done in: float32 for float16/bfloat16, else the input dtype."""
    return torch.float32 if dtype in _REDUCED else dtype


def output_format(x: torch.Tensor) -> torch.memory_format:
    """The layout of an op's output: channels_last(_3d) for a dense channels-last input, else contiguous."""
    if x.is_contiguous():
        return torch.contiguous_format
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def _channel_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """A per-channel vector shaped to broadcast over dim 1 of an `ndim`-dimensional tensor."""
    return t.reshape((1, -1) + (1,) * (ndim - 2))


def instance_norm_stats(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(n, c) mean and 1/sqrt(biased var + eps), shape (N, C), in the compute dtype (two-pass)."""
    xc = x.to(compute_dtype(x.dtype))
    dims = tuple(range(2, x.dim()))
    mean = xc.mean(dim=dims, keepdim=True)
    var = (xc - mean).square().mean(dim=dims, keepdim=True)
    return mean.flatten(1), torch.rsqrt(var + eps).flatten(1)


def instance_norm_act(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    eps: float = 1e-5,
    negative_slope: float = 0.2,
) -> torch.Tensor:
    """LeakyReLU(InstanceNorm(x) * weight + bias) for x of shape (N, C, *spatial); differentiable twice."""
    ct = compute_dtype(x.dtype)
    xc = x.to(ct)
    dims = tuple(range(2, x.dim()))
    mean = xc.mean(dim=dims, keepdim=True)
    centered = xc - mean
    var = centered.square().mean(dim=dims, keepdim=True)
    y = centered * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * _channel_view(weight.to(ct), x.dim())
    if bias is not None:
        y = y + _channel_view(bias.to(ct), x.dim())
    out = F.leaky_relu(y, negative_slope)
    return out.to(x.dtype).contiguous(memory_format=output_format(x))


def bias_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    negative_slope: float = 0.2,
    scale: float = 1.0,
) -> torch.Tensor:
    """LeakyReLU(x + bias on dim 1) * scale (StyleGAN's fused activation); bias None is a scaled LeakyReLU."""
    ct = compute_dtype(x.dtype)
    y = x.to(ct)
    if bias is not None:
        y = y + _channel_view(bias.to(ct), x.dim())
    out = F.leaky_relu(y, negative_slope)
    if scale != 1.0:
        out = out * scale
    return out.to(x.dtype).contiguous(memory_format=output_format(x))
