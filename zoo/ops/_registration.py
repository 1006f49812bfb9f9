"""Python-side registrations for the C++ ops zoo::*: fake (meta) kernels for torch.compile, and autograd.

Imported only after the compiled library is loaded. First-order backward calls the fused C++ backward ops; when
a graph of the gradient is requested (double backward, e.g. R1 penalties) it goes through the reference
composition instead, which PyTorch differentiates again.
"""
from __future__ import annotations

import torch

from zoo.ops import reference
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


def _instance_norm_act_setup(ctx, inputs, output):
    x, weight, bias, eps, negative_slope = inputs
    _, mean, rstd = output
    ctx.mark_non_differentiable(mean, rstd)
    ctx.save_for_backward(x, weight, bias, mean, rstd)
    ctx.eps, ctx.negative_slope = eps, negative_slope


def _instance_norm_act_backward(ctx, grad_out, _grad_mean, _grad_rstd):
    x, weight, bias, mean, rstd = ctx.saved_tensors
    need = ctx.needs_input_grad[:3]
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        # create_graph=True: differentiate the reference composition so the gradient is itself differentiable
        wanted = [t for t, n in zip((x, weight, bias), need) if n]
        with torch.enable_grad():
            out = reference.instance_norm_act(x, weight, bias, eps=ctx.eps, negative_slope=ctx.negative_slope)
            found = iter(torch.autograd.grad(out, wanted, grad_out, create_graph=True))
        return tuple(next(found) if n else None for n in need) + (None, None)
    grad_x, grad_w, grad_b = torch.ops.zoo.instance_norm_act_backward(
        grad_out, x, mean, rstd, weight, bias, ctx.negative_slope
    )
    return (grad_x if need[0] else None, grad_w if need[1] else None, grad_b if need[2] else None, None, None)


def _bias_leaky_relu_setup(ctx, inputs, output):
    x, bias, negative_slope, scale = inputs
    ctx.save_for_backward(output)
    ctx.has_bias, ctx.negative_slope, ctx.scale = bias is not None, negative_slope, scale


def _bias_leaky_relu_backward(ctx, grad_out):
    (out,) = ctx.saved_tensors
    need_x, need_b = ctx.needs_input_grad[:2]
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        # differentiable form: the gain is piecewise constant, read from the sign of the (detached) output
        gain = torch.full_like(out, ctx.scale * ctx.negative_slope, dtype=grad_out.dtype)
        gain.masked_fill_(out.detach() > 0, ctx.scale)
        grad_x = grad_out * gain
        dims = [0] + list(range(2, out.dim()))
        grad_b = grad_x.sum(dims) if ctx.has_bias and need_b else None
        return (grad_x if need_x else None, grad_b, None, None)
    grad_x, grad_b = torch.ops.zoo.bias_leaky_relu_backward(
        grad_out, out, ctx.negative_slope, ctx.scale, bool(ctx.has_bias and need_b)
    )
    return (grad_x if need_x else None, grad_b if ctx.has_bias and need_b else None, None, None)


torch.library.register_autograd(
    "zoo::instance_norm_act", _instance_norm_act_backward, setup_context=_instance_norm_act_setup
)
torch.library.register_autograd(
    "zoo::bias_leaky_relu", _bias_leaky_relu_backward, setup_context=_bias_leaky_relu_setup
)
