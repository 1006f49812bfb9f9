"""The public fused ops: validate arguments, then run the compiled kernels or the PyTorch reference."""
from __future__ import annotations

import torch

from zoo.ops import reference
from zoo.ops._backend import use_cpp
from zoo.ops._checks import check_channel_param, check_input, check_number


def instance_norm_act(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    eps: float = 1e-5,
    negative_slope: float = 0.2,
) -> torch.Tensor:
    """LeakyReLU(InstanceNorm(x) * weight + bias) in one pass for x of shape (N, C, *spatial).

    Numerics of F.instance_norm (biased variance, eps inside the sqrt); negative_slope 0 is ReLU, 1 is no
    activation. float16/bfloat16 accumulate in float32; the output keeps x's layout (channels_last stays so).
    """
    op = "instance_norm_act"
    check_input(x, op, 3)
    weight = check_channel_param(weight, "weight", x, op)
    bias = check_channel_param(bias, "bias", x, op)
    eps = check_number(eps, "eps", op, minimum=0.0)
    negative_slope = check_number(negative_slope, "negative_slope", op)
    if use_cpp(x.device):
        return torch.ops.zoo.instance_norm_act(x, weight, bias, eps, negative_slope)[0]
    return reference.instance_norm_act(x, weight, bias, eps=eps, negative_slope=negative_slope)


def bias_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    negative_slope: float = 0.2,
    scale: float = 1.0,
) -> torch.Tensor:
    """LeakyReLU(x + bias broadcast on dim 1) * scale in one pass (StyleGAN's fused bias + activation + gain).

    bias None gives a plain scaled LeakyReLU. negative_slope must be >= 0 and scale > 0 (the backward pass reads
    the sign of the pre-activation from the output, as StyleGAN2's kernel does).
    """
    op = "bias_leaky_relu"
    check_input(x, op, 2 if bias is not None else 0)
    bias = check_channel_param(bias, "bias", x, op)
    negative_slope = check_number(negative_slope, "negative_slope", op, minimum=0.0)
    scale = check_number(scale, "scale", op, minimum=0.0, strict=True)
    if use_cpp(x.device):
        return torch.ops.zoo.bias_leaky_relu(x, bias, negative_slope, scale)
    return reference.bias_leaky_relu(x, bias, negative_slope=negative_slope, scale=scale)
