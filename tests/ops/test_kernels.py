"""The compiled kernels (CPU, and CUDA where available) against the PyTorch reference: values, grads, layouts."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo.ops as ops
from zoo.ops import reference

pytestmark = pytest.mark.usefixtures("cpp")

TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-5),
       torch.float16: dict(rtol=1e-2, atol=1e-2), torch.bfloat16: dict(rtol=4e-2, atol=4e-2)}


def make_input(shape, dtype, device, layout, seed=0, offset=1.0):
    """x (requires grad) in the given layout: contiguous, channels_last, or a strided slice of a larger tensor."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(*shape[:-1], shape[-1] * (2 if layout == "sliced" else 1), generator=g, dtype=torch.float64)
    x = (base * 2 + offset).to(dtype)
    if layout == "sliced":
        x = x[..., ::2]
    x = x.to(device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x.detach().requires_grad_()


def run(backend, fn, x, params, grad_out, **kw):
    """Output and grads of fn(x, *params) under a backend."""
    xs = x.detach().clone().requires_grad_()
    if x.stride() != xs.stride():
        xs = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device).copy_(x.detach()).requires_grad_()
    ps = [None if p is None else p.detach().clone().requires_grad_() for p in params]
    with ops.use_backend(backend):
        out = fn(xs, *ps, **kw)
    out.backward(grad_out)
    return out, xs.grad, [None if p is None else p.grad for p in ps]


def assert_same(a, b, dtype):
    torch.testing.assert_close(a, b, equal_nan=True, **TOL[dtype])


def compare(fn, x, params, dtype, **kw):
    """cpp and reference agree on output (values and layout) and on every gradient."""
    torch.manual_seed(1)
    grad_out = torch.randn(x.shape, dtype=torch.float64).to(dtype=x.dtype, device=x.device)
    out_c, gx_c, gp_c = run("cpp", fn, x, params, grad_out, **kw)
    out_r, gx_r, gp_r = run("reference", fn, x, params, grad_out, **kw)
    assert out_c.dtype == out_r.dtype and out_c.shape == out_r.shape
    assert out_c.stride() == out_r.stride()
    assert_same(out_c, out_r, dtype)
    assert_same(gx_c, gx_r, dtype)
    for a, b in zip(gp_c, gp_r):
        if b is not None:
            # parameter grads are sums over N * H * W terms: compare relative to their size
            scale = max(1.0, b.abs().max().item())
            assert_same(a / scale, b / scale, dtype)


def channel_params(C, dtype, device, affine, seed=2):
    if not affine:
        return [None, None]
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(C, generator=g, dtype=torch.float64) + 0.5).to(dtype=dtype, device=device),
            torch.randn(C, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("slope", [0.0, 0.2, 1.0])
def test_instance_norm_act_matches_reference(device, dtype, layout, affine, slope):
    x = make_input((3, 5, 9, 7), dtype, device, layout)
    compare(ops.instance_norm_act, x, channel_params(5, dtype, device, affine), dtype, negative_slope=slope)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_instance_norm_act_reduced_precision(device, dtype, layout):
    x = make_input((2, 70, 11, 13), dtype, device, layout)
    compare(ops.instance_norm_act, x, channel_params(70, dtype, device, True), dtype)


@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (1, 1, 1, 257), (4, 3, 17), (2, 3, 4, 5, 6), (8, 512, 2, 3),
                                   (1, 3, 200, 300), (2, 130, 5, 5)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_instance_norm_act_shapes(device, shape, layout):
    if layout == "channels_last" and len(shape) != 4:
        layout = "contiguous"
    x = make_input(shape, torch.float64, device, layout)
    compare(ops.instance_norm_act, x, channel_params(shape[1], torch.float64, device, True), torch.float64,
            eps=1e-3)


def test_instance_norm_act_large_offset_is_stable(device):
    """Planes with mean >> std (shifted sums keep float32 accurate where naive sum-of-squares would not)."""
    x = make_input((2, 4, 64, 64), torch.float32, device, "contiguous", offset=1000.0)
    x64 = x.detach().double()
    want = reference.instance_norm_act(x64)
    with ops.use_backend("cpp"):
        got = ops.instance_norm_act(x.detach())
    torch.testing.assert_close(got.double(), want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("slope, scale", [(0.0, 1.0), (0.2, math.sqrt(2)), (1.0, 0.5)])
def test_bias_leaky_relu_matches_reference(device, dtype, layout, with_bias, slope, scale):
    x = make_input((3, 6, 5, 7), dtype, device, layout)
    bias = [channel_params(6, dtype, device, True)[1] if with_bias else None]
    compare(ops.bias_leaky_relu, x, bias, dtype, negative_slope=slope, scale=scale)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_bias_leaky_relu_channels_last_many_rows(device, dtype):
    # 12,261 rows of 5 channels: two parallel row blocks, many float-sum flushes, row runs not a multiple of 4
    x = make_input((3, 5, 61, 67), dtype, device, "channels_last")
    compare(ops.bias_leaky_relu, x, [channel_params(5, dtype, device, True)[1]], dtype, scale=math.sqrt(2))


@pytest.mark.parametrize("shape", [(64, 300), (5, 3, 1, 1), (2, 3, 4, 5, 6), (1, 1, 1, 1)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_bias_leaky_relu_shapes(device, shape, dtype):
    x = make_input(shape, dtype, device, "contiguous")
    compare(ops.bias_leaky_relu, x, [channel_params(shape[1], dtype, device, True)[1]], dtype, scale=math.sqrt(2))


def test_leaky_relu_without_bias_any_rank(device):
    for shape in [(7,), (3, 4), (2, 3, 4, 5)]:
        compare(ops.bias_leaky_relu, make_input(shape, torch.float64, device, "contiguous"), [None], torch.float64)


def test_expanded_input(device):
    """A broadcast (stride-0) input is read correctly, and its gradient reaches the unexpanded tensor."""
    base = torch.randn(1, 4, 1, 6, dtype=torch.float64, device=device)
    bias = torch.randn(4, dtype=torch.float64, device=device)
    for fn, extra in [(ops.instance_norm_act, ()), (ops.bias_leaky_relu, (bias,))]:
        results = []
        for backend in ("cpp", "reference"):
            leaf = base.clone().requires_grad_()
            with ops.use_backend(backend):
                out = fn(leaf.expand(2, 4, 5, 6), *extra)
            (grad,) = torch.autograd.grad(out.square().sum(), leaf)
            results.append((out, grad))
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 4)])
def test_empty_tensors(device, shape):
    x = torch.randn(shape, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.ones(shape[1], dtype=torch.float64, device=device, requires_grad=True)
    for fn, params in [(ops.instance_norm_act, [w, w]), (ops.bias_leaky_relu, [w])]:
        results = {}
        for backend in ("cpp", "reference"):
            with ops.use_backend(backend):
                out = fn(x, *params)
            grads = torch.autograd.grad(out.sum(), [x, w])
            results[backend] = (out, grads)
        (oc, gc), (orf, gr) = results["cpp"], results["reference"]
        assert oc.shape == orf.shape == x.shape
        for a, b in zip(gc, gr):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_nan_and_inf_propagate_like_reference(device, bad, layout):
    x = make_input((2, 3, 5, 5), torch.float32, device, layout).detach()
    x[1, 2, 3, 1] = bad
    w, b = channel_params(3, torch.float32, device, True)
    for fn, args in [(ops.instance_norm_act, (w, b)), (ops.bias_leaky_relu, (b,))]:
        for slope in (0.0, 0.2):
            with ops.use_backend("cpp"):
                got = fn(x, *args, negative_slope=slope)
            with ops.use_backend("reference"):
                want = fn(x, *args, negative_slope=slope)
            torch.testing.assert_close(got, want, equal_nan=True, rtol=1e-5, atol=1e-5)
    with ops.use_backend("cpp"):
        out = ops.instance_norm_act(x)
    assert out[1, 2].isnan().all() and out[0].isfinite().all() and out[1, :2].isfinite().all()


def test_gradcheck_and_gradgradcheck(device):
    torch.manual_seed(3)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, device=device, requires_grad=True)
    w = (torch.rand(3, dtype=torch.float64, device=device) + 0.5).requires_grad_()
    b = torch.randn(3, dtype=torch.float64, device=device, requires_grad=True)
    xcl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    with ops.use_backend("cpp"):
        for xi in (x, xcl):
            fn = lambda x_, w_, b_: ops.instance_norm_act(x_, w_, b_, negative_slope=0.1)  # noqa: E731
            assert torch.autograd.gradcheck(fn, (xi, w, b))
            assert torch.autograd.gradgradcheck(fn, (xi, w, b))
            fb = lambda x_, b_: ops.bias_leaky_relu(x_, b_, negative_slope=0.1, scale=1.5)  # noqa: E731
            assert torch.autograd.gradcheck(fb, (xi, b))
            assert torch.autograd.gradgradcheck(fb, (xi, b))


#: (parameters passed, inputs whose grads are asked for): every subset of the passed tensors but the empty one
GRAD_SUBSETS = [("weight+bias", w) for w in ("x", "weight", "bias", "weight+bias", "x+bias", "x+weight+bias")] + [
    ("bias", w) for w in ("x", "bias", "x+bias")] + [("weight", w) for w in ("x", "weight", "x+weight")]


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize(("params", "wanted"), GRAD_SUBSETS)
def test_grads_of_any_subset_of_inputs(device, params, wanted, create_graph):
    """Gradients of just some inputs (absent optional weight/bias included) match the reference, first order and
    with create_graph (the autograd kernel numbers only the tensors actually passed)."""
    torch.manual_seed(5)
    x0 = torch.randn(2, 3, 4, 5, dtype=torch.float64, device=device)
    p0 = {"weight": torch.rand(3, dtype=torch.float64, device=device) + 0.5,
          "bias": torch.randn(3, dtype=torch.float64, device=device)}
    g0 = torch.randn_like(x0)
    grads = {}
    for backend in ("cpp", "reference"):
        args = {"x": x0.clone(), **{k: (p0[k].clone() if k in params.split("+") else None) for k in p0}}
        inputs = [args[k].requires_grad_() for k in wanted.split("+")]
        with ops.use_backend(backend):
            out = ops.instance_norm_act(args["x"], args["weight"], args["bias"], negative_slope=0.1)
            found = torch.autograd.grad(out, inputs, g0, create_graph=create_graph)
        assert all(g.requires_grad == create_graph for g in found)
        grads[backend] = found
    for a, b in zip(grads["cpp"], grads["reference"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_autograd_runs_in_cpp():
    """The ops' autograd nodes are C++ nodes (no Python autograd function per call)."""
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    with ops.use_backend("cpp"):
        nodes = [ops.instance_norm_act(x).grad_fn, ops.bias_leaky_relu(x, torch.zeros(3)).grad_fn]
    for node in nodes:
        assert not isinstance(node, torch.autograd.function.BackwardCFunction), node
        assert "CppNode" in type(node).__name__ or "CppNode" in node.name(), node.name()


def test_r1_penalty_double_backward_matches_reference(device):
    """A gradient penalty (create_graph=True) through the ops gives the reference's parameter gradients."""
    torch.manual_seed(4)
    results = []
    for backend in ("cpp", "reference"):
        torch.manual_seed(4)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), ops.InstanceNormAct2d(4, affine=True),
                                  torch.nn.Conv2d(4, 4, 3), ops.FusedLeakyReLU(4, scale=math.sqrt(2)))
        net = net.double().to(device)
        x = torch.randn(2, 3, 9, 9, dtype=torch.float64, device=device, requires_grad=True)
        with ops.use_backend(backend):
            (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
            g.square().sum().backward()
        results.append([torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 3), c=st.integers(1, 9), h=st.integers(1, 13), w=st.integers(1, 13),
    layout=st.sampled_from(["contiguous", "channels_last", "sliced"]), affine=st.booleans(),
    slope=st.sampled_from([0.0, 0.2, 1.0]), eps=st.sampled_from([1e-5, 1e-3, 0.5]), seed=st.integers(0, 2**16),
)
def test_property_instance_norm_act(device, n, c, h, w, layout, affine, slope, eps, seed):
    x = make_input((n, c, h, w), torch.float64, device, layout, seed=seed)
    compare(ops.instance_norm_act, x, channel_params(c, torch.float64, device, affine, seed), torch.float64,
            eps=eps, negative_slope=slope)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.integers(1, 9), min_size=2, max_size=5), layout=st.sampled_from(["contiguous", "sliced"]),
    with_bias=st.booleans(), slope=st.sampled_from([0.0, 0.2, 1.0]), scale=st.sampled_from([1.0, math.sqrt(2)]),
    seed=st.integers(0, 2**16),
)
def test_property_bias_leaky_relu(device, shape, layout, with_bias, slope, scale, seed):
    x = make_input(tuple(shape), torch.float64, device, layout, seed=seed)
    bias = [channel_params(shape[1], torch.float64, device, True, seed)[1] if with_bias else None]
    compare(ops.bias_leaky_relu, x, bias, torch.float64, negative_slope=slope, scale=scale)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_plane_over_a_million_elements(device, layout):
    x = make_input((1, 2, 1024, 1040), torch.float32, device, layout)
    compare(ops.instance_norm_act, x, channel_params(2, torch.float32, device, True), torch.float32)


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_channels_last_split_samples(device, n, dtype):
    """Channels-last samples of a small batch are split by rows across tasks: the parts' partial sums combine into
    the reference's statistics and gradients, and the results are bitwise the same for any thread count."""
    x = make_input((n, 37, 131, 67), dtype, device, "channels_last")
    params = channel_params(37, dtype, device, True)
    compare(ops.instance_norm_act, x, params, dtype)
    grad_out = torch.randn(x.shape, dtype=torch.float64).to(dtype=dtype, device=device)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(run("cpp", ops.instance_norm_act, x, params, grad_out))
    finally:
        torch.set_num_threads(before)
    for out, gx, gp in results[1:]:
        assert torch.equal(out, results[0][0]) and torch.equal(gx, results[0][1])
        assert all(torch.equal(a, b) for a, b in zip(gp, results[0][2]))


def test_kernel_checks_name_the_argument():
    """The C++ ops check their inputs too (they are public as torch.ops.zoo.*)."""
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(RuntimeError, match="weight must have shape"):
        torch.ops.zoo.instance_norm_act(x, torch.ones(4), None, 1e-5, 0.2)
    with pytest.raises(RuntimeError, match="x must be float16"):
        torch.ops.zoo.instance_norm_act(x.long(), None, None, 1e-5, 0.2)
    with pytest.raises(RuntimeError, match="at least 3 dims"):
        torch.ops.zoo.instance_norm_act(torch.randn(2, 3), None, None, 1e-5, 0.2)
    with pytest.raises(RuntimeError, match="mean must have shape"):
        torch.ops.zoo.instance_norm_act_backward(x, x, torch.zeros(2, 2), torch.zeros(2, 3), None, None, 0.2)
    with pytest.raises(RuntimeError, match="scale must be"):
        torch.ops.zoo.bias_leaky_relu(x, None, 0.2, -1.0)
    with pytest.raises(RuntimeError, match="grad_out must have shape"):
        torch.ops.zoo.bias_leaky_relu_backward(x[:1], x, 0.2, 1.0, True)
