"""Python-side registrations for the C++ ops zoo::*: the fake (meta) kernels torch.compile traces with.

Imported only after the compiled library is loaded. Autograd is registered in C++ (csrc/autograd.cpp).
"""
from __future__ import annotations

import torch

from zoo.ops.reference import compute_dtype, output_format


@torch.library.register_fake("zoo::instance_norm_act")
def _instance_norm_act_fake(x, weight, bias, eps, negative_slope):
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=output_format(x))
    stats = x.new_empty((x.shape[0], x.shape[1]), dtype=compute_dtype(x.dtype))
    return out, stats, torch.empty_like(stats)


@torch.library.register_fake("zoo::instance_norm_act_backward")
def _instance_norm_act_backward_fake(grad_out, x, mean, rstd, weight, bias, negative_slope):
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=output_format(x))
    grad_w = x.new_empty((x.shape[1],) if weight is not None else (0,))
    grad_b = x.new_empty((x.shape[1],) if bias is not None else (0,))
    return grad_x, grad_w, grad_b


@torch.library.register_fake("zoo::bias_leaky_relu")
def _bias_leaky_relu_fake(x, bias, negative_slope, scale):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=output_format(x))


@torch.library.register_fake("zoo::bias_leaky_relu_backward")
def _bias_leaky_relu_backward_fake(grad_out, out, negative_slope, scale, bias_grad):
    grad_x = torch.empty(out.shape, dtype=out.dtype, device=out.device, memory_format=output_format(out))
    return grad_x, out.new_empty((out.shape[1],) if bias_grad else (0,))
