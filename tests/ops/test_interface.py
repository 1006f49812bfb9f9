"""zoo.ops public interface: argument checks, modules and state_dicts, backend selection (any backend)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import zoo.ops as ops
from zoo.errors import ConfigError, ZooError
from zoo.ops import reference


def test_reference_matches_torch_layers():
    """The oracle itself agrees with nn.InstanceNorm2d + nn.LeakyReLU and with a manual bias+LeakyReLU*scale."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, 7, 5, dtype=torch.float64)
    w, b = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    want = F.leaky_relu(F.instance_norm(x, weight=w, bias=b, eps=1e-3), 0.1)
    torch.testing.assert_close(reference.instance_norm_act(x, w, b, eps=1e-3, negative_slope=0.1), want,
                               rtol=1e-12, atol=1e-12)
    want = F.leaky_relu(x + b.view(1, 4, 1, 1), 0.2) * 2**0.5
    torch.testing.assert_close(reference.bias_leaky_relu(x, b, scale=2**0.5), want, rtol=0, atol=0)


def test_reference_keeps_channels_last_and_reduced_dtypes():
    x = torch.randn(2, 8, 6, 6).to(memory_format=torch.channels_last)
    assert reference.instance_norm_act(x).is_contiguous(memory_format=torch.channels_last)
    assert reference.bias_leaky_relu(x, torch.zeros(8)).is_contiguous(memory_format=torch.channels_last)
    xh = x.to(torch.bfloat16)
    out = reference.instance_norm_act(xh)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference.instance_norm_act(xh.float()), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: ops.instance_norm_act(torch.randn(2, 3)), ConfigError, "x must have shape"),
        (lambda: ops.instance_norm_act(torch.ones(2, 3, 4, dtype=torch.int64)), TypeError, "x must be float16"),
        (lambda: ops.instance_norm_act("x"), TypeError, "x must be a torch.Tensor"),
        (lambda: ops.instance_norm_act(torch.randn(2, 3, 4), torch.ones(4)), ConfigError, "weight must have shape (3,)"),
        (lambda: ops.instance_norm_act(torch.randn(2, 3, 4), None, torch.ones(3, 1)), ConfigError, "bias must have"),
        (lambda: ops.instance_norm_act(torch.randn(2, 3, 4), torch.ones(3, dtype=torch.int32)), TypeError, "weight"),
        (lambda: ops.instance_norm_act(torch.randn(2, 3, 4), torch.ones(3, device="meta")), ConfigError,
         "weight is on meta"),
        (lambda: ops.instance_norm_act(torch.randn(2, 3, 4), eps=-1.0), ConfigError, "eps must be >= 0"),
        (lambda: ops.instance_norm_act(torch.randn(2, 3, 4), negative_slope=float("nan")), ConfigError,
         "negative_slope must be finite"),
        (lambda: ops.instance_norm_act(torch.randn(2, 3, 4), eps="1"), TypeError, "eps must be a float"),
        (lambda: ops.bias_leaky_relu(torch.randn(2, 3), torch.ones(2)), ConfigError, "bias must have shape (3,)"),
        (lambda: ops.bias_leaky_relu(torch.randn(3), torch.ones(3)), ConfigError, "at least 2 dims"),
        (lambda: ops.bias_leaky_relu(torch.randn(2, 3), scale=0.0), ConfigError, "scale must be > 0"),
        (lambda: ops.bias_leaky_relu(torch.randn(2, 3), negative_slope=-0.1), ConfigError, "negative_slope must be >= 0"),
        (lambda: ops.bias_leaky_relu(torch.ones(2, 3, dtype=torch.bool)), TypeError, "x must be float16"),
        (lambda: ops.InstanceNormAct2d(0), ConfigError, "num_features must be a positive int"),
        (lambda: ops.InstanceNormAct2d(3)(torch.randn(1, 4, 2, 2)), ConfigError, "(N, 3, H, W)"),
        (lambda: ops.FusedLeakyReLU(2.5), ConfigError, "channels must be a positive int"),
    ],
)
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_bad_input_names_the_argument(call, exc, words, backend):
    with ops.use_backend(backend), pytest.raises(exc) as info:
        call()
    assert isinstance(info.value, ZooError)
    assert words in str(info.value)


def test_bad_backend_name():
    with pytest.raises(ConfigError, match="one of auto, cpp, reference"):
        with ops.use_backend("fast"):
            pass


def test_env_backend_name_is_validated(monkeypatch):
    monkeypatch.setenv("ZOO_OPS_BACKEND", "gpu")
    with pytest.raises(ConfigError, match="ZOO_OPS_BACKEND must be one of"):
        ops.backend_info()
    monkeypatch.setenv("ZOO_OPS_BACKEND", "Reference")
    info = ops.backend_info()
    assert info["requested"] == "reference" and info["devices"]["cpu"]["backend"] == "reference"


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_act_state_dict_swaps_with_nn_instance_norm(affine):
    """Weights trained with nn.InstanceNorm2d load into InstanceNormAct2d and back, with the same outputs."""
    torch.manual_seed(1)
    plain = nn.Sequential(nn.Conv2d(3, 6, 3), nn.InstanceNorm2d(6, affine=affine), nn.LeakyReLU(0.2))
    fused = nn.Sequential(nn.Conv2d(3, 6, 3), ops.InstanceNormAct2d(6, affine=affine), nn.Identity())
    if affine:
        with torch.no_grad():
            plain[1].weight.uniform_(0.5, 1.5)
            plain[1].bias.uniform_(-0.5, 0.5)
    assert plain.state_dict().keys() == fused.state_dict().keys()
    fused.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 3, 9, 9)
    with ops.use_backend("reference"):
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-5)
    plain.load_state_dict(fused.state_dict(), strict=True)


def test_fused_leaky_relu_owns_bias_and_leaky_relu_has_none():
    act = ops.FusedLeakyReLU(5, scale=2**0.5)
    assert list(act.state_dict()) == ["bias"] and act.bias.shape == (5,)
    assert list(ops.LeakyReLU(0.1).parameters()) == []
    x = torch.randn(2, 5, 3, 3)
    with ops.use_backend("reference"):
        torch.testing.assert_close(act(x), F.leaky_relu(x, 0.2) * 2**0.5)
        torch.testing.assert_close(ops.LeakyReLU(0.1)(x), F.leaky_relu(x, 0.1))
    assert "scale=1.41" in repr(act)


def test_use_backend_nests_and_restores():
    before = ops.backend_info()["requested"]
    with ops.use_backend("reference"):
        with ops.use_backend("auto"):
            assert ops.backend_info()["requested"] == "auto"
        assert ops.backend_info()["requested"] == "reference"
    assert ops.backend_info()["requested"] == before
