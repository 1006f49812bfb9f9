"""The ops as real torch ops: opcheck (schema, fake kernels, autograd registration) and torch.compile fullgraph."""
import math

import pytest
import torch
from torch import nn

import zoo.ops as ops

pytestmark = pytest.mark.usefixtures("cpp")


def _samples(device):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, device=device, requires_grad=True)
    xcl = torch.randn(2, 3, 5, 6, dtype=torch.float64, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.rand(3, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True)
    return x, xcl.requires_grad_(), w, b


def test_opcheck_forward_ops(device):
    x, xcl, w, b = _samples(device)
    for args in [(x, w, b, 1e-5, 0.2), (x, None, None, 1e-3, 0.0), (xcl, None, b.double(), 1e-5, 1.0)]:
        torch.library.opcheck(torch.ops.zoo.instance_norm_act.default, args)
    for args in [(x, b, 0.2, math.sqrt(2)), (x, None, 0.0, 1.0), (xcl, b.double(), 0.2, 1.0)]:
        torch.library.opcheck(torch.ops.zoo.bias_leaky_relu.default, args)


def test_opcheck_backward_ops(device):
    x, xcl, w, b = _samples(device)
    for xi, wi, bi in [(x.detach(), w.detach(), b.detach()), (xcl.detach(), None, None)]:
        _, mean, rstd = torch.ops.zoo.instance_norm_act(xi, wi, bi, 1e-5, 0.2)
        g = torch.randn_like(xi)
        torch.library.opcheck(torch.ops.zoo.instance_norm_act_backward.default, (g, xi, mean, rstd, wi, bi, 0.2))
        out = torch.ops.zoo.bias_leaky_relu(xi, None, 0.2, 1.0)
        for bias_grad in (True, False):
            torch.library.opcheck(torch.ops.zoo.bias_leaky_relu_backward.default, (g, out, 0.2, 1.0, bias_grad))


class _Small(nn.Module):
    """A discriminator-like block using every op module."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = ops.InstanceNormAct2d(8, affine=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.act = ops.FusedLeakyReLU(8, scale=math.sqrt(2))
        self.conv3 = nn.Conv2d(8, 4, 3, padding=1, bias=False)
        self.act2 = ops.LeakyReLU(0.2)

    def forward(self, x):
        return self.act2(self.conv3(self.act(self.conv2(self.norm(self.conv1(x))))))


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_backend_choice_is_marked_constant_like_the_public_api():
    """zoo.ops marks its trace-time backend choice as torch.compiler.assume_constant_result would, without
    importing torch._dynamo at import time; fails loudly if a torch upgrade changes how that function marks."""
    from zoo.ops import _backend

    def probe():
        return None

    marked = torch.compiler.assume_constant_result(probe)
    assert getattr(marked, _backend.DYNAMO_CONSTANT_MARKER) is True
    assert getattr(_backend._resolve_constant, _backend.DYNAMO_CONSTANT_MARKER) is True


def test_import_does_not_import_dynamo():
    """`import zoo.ops` (every `zoo` command) stays free of torch._dynamo's import cost."""
    import subprocess
    import sys

    code = "import sys, zoo, zoo.ops; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_compiled_graph_has_no_break_and_calls_the_ops():
    """Dynamo captures the whole model in one graph (fullgraph) in which the zoo ops appear as ops."""
    torch._dynamo.reset()
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = _Small()
    x = torch.randn(2, 3, 12, 12)
    with ops.use_backend("cpp"):
        torch.compile(model, backend=capture, fullgraph=True)(x)
    assert len(graphs) == 1
    targets = {str(n.target) for n in graphs[0].graph.nodes if n.op == "call_function"}
    assert {"zoo.instance_norm_act", "zoo.bias_leaky_relu"} <= targets, targets


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_inductor_fullgraph_matches_eager(layout):
    """torch.compile(fullgraph=True) with Inductor: same outputs and parameter grads as eager, backward in C++."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _Small()
    x = torch.randn(2, 3, 12, 12).contiguous(memory_format=layout)
    with ops.use_backend("cpp"):
        eager = model(x)
        eager.square().mean().backward()
        want = _grads(model)
        model.zero_grad()
        compiled = torch.compile(model, fullgraph=True)
        out = compiled(x)
        out.square().mean().backward()
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    for a, b in zip(_grads(model), want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_backward_graph_uses_the_fused_backward_ops():
    """Under compile the backward is the C++ backward op, not a decomposition of the reference."""
    torch._dynamo.reset()
    from functorch.compile import make_boxed_func
    from torch._functorch.aot_autograd import aot_module_simplified

    backward_targets = set()

    def fw(gm, _):
        return make_boxed_func(gm.forward)

    def bw(gm, _):
        backward_targets.update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return make_boxed_func(gm.forward)

    def backend(gm, example_inputs):
        return aot_module_simplified(gm, example_inputs, fw_compiler=fw, bw_compiler=bw)

    model = _Small()
    with ops.use_backend("cpp"):
        torch.compile(model, backend=backend, fullgraph=True)(torch.randn(2, 3, 8, 8)).sum().backward()
    assert "zoo.instance_norm_act_backward.default" in backward_targets, backward_targets
    assert "zoo.bias_leaky_relu_backward.default" in backward_targets, backward_targets


def test_model_output_is_the_same_on_every_backend(device):
    """A model built from the op modules gives the same output whichever backend serves it."""
    torch.manual_seed(0)
    model = _Small().double().to(device)
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64, device=device)
    outs = {}
    for backend in ("reference", "cpp", "auto"):
        with ops.use_backend(backend):
            outs[backend] = model(x)
    torch.testing.assert_close(outs["cpp"], outs["reference"], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(outs["auto"], outs["cpp"], rtol=0, atol=0)
