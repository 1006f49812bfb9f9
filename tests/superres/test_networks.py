"""Super-resolution networks: exact sizes, shapes per scale, fused activations, receptive fields, bad configs."""
import pytest
import torch
import torch.nn.functional as F

from zoo.errors import ConfigError
from zoo_superres.networks import (ESPCN, RRDBNet, SRGANDiscriminator, build_espcn, build_rrdbnet, build_srresnet)


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_rrdbnet_default_size_matches_basicsr():
    net = build_rrdbnet()
    sd = net.state_dict()
    assert _params(net) == 16_697_987
    assert len(sd) == 702
    assert sd["conv_first.weight"].shape == (64, 3, 3, 3)
    assert sd["body.22.rdb3.conv5.weight"].shape == (64, 64 + 4 * 32, 3, 3)
    assert {"conv_body.bias", "conv_up1.weight", "conv_up2.bias", "conv_hr.weight", "conv_last.bias"} <= set(sd)


@pytest.mark.parametrize("scale,unshuffle", [(4, 1), (2, 2), (1, 4)])
def test_rrdbnet_scales(scale, unshuffle):
    net = build_rrdbnet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4).eval()
    assert net.conv_first.in_channels == 3 * unshuffle ** 2
    assert net.size_multiple == unshuffle
    with torch.no_grad():
        y = net(torch.rand(2, 3, 8, 12))
    assert y.shape == (2, 3, 8 * scale, 12 * scale)


def _reference_rdb(rdb, x):
    """ResidualDenseBlock written out with plain torch ops (BasicSR's forward)."""
    act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    c = [rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4]
    feats = [x]
    for conv in c:
        feats.append(act(F.conv2d(torch.cat(feats, 1), conv.weight, conv.bias, padding=1)))
    x5 = F.conv2d(torch.cat(feats, 1), rdb.conv5.weight, rdb.conv5.bias, padding=1)
    return x5 * 0.2 + x


def test_fused_conv_lrelu_matches_plain_torch():
    torch.manual_seed(0)
    net = build_rrdbnet(num_feat=8, num_block=1, num_grow_ch=4).eval()
    for p in net.parameters():  # non-zero biases so the fused bias path is exercised
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        assert torch.allclose(net.body[0].rdb1(x), _reference_rdb(net.body[0].rdb1, x), atol=1e-5)


def test_srresnet_and_espcn_shapes():
    g = build_srresnet(scale=4, num_feat=8, num_block=2).eval()
    assert g(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)
    assert _params(build_srresnet()) == 1_550_659
    for scale in (2, 3, 4):
        for residual in (False, True):
            e = build_espcn(scale=scale, residual=residual, in_channels=1)
            assert e(torch.rand(1, 1, 5, 6)).shape == (1, 1, 5 * scale, 6 * scale)
    # paper sizes: 5x5x3x64 + 3x3x64x32 + 3x3x32x(3*4) (+ biases) for x2
    assert _params(build_espcn(scale=2)) == 5 * 5 * 3 * 64 + 64 + 9 * 64 * 32 + 32 + 9 * 32 * 12 + 12


def test_espcn_residual_starts_near_bicubic():
    e = build_espcn(scale=2, residual=True)
    for p in e.conv3.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 3, 8, 8)
    bicubic = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(e(x), bicubic, atol=1e-6)


def test_srgan_discriminator():
    d = SRGANDiscriminator(num_feat=8, input_size=32)
    keys = set(d.state_dict())
    assert "features.1.bias" in keys  # FusedLeakyReLU owns the first conv's bias
    assert "fc1_act.bias" in keys
    out = d(torch.rand(3, 3, 32, 32))
    assert out.shape == (3,)
    out.sum().backward()
    assert d.features[0].weight.grad is not None
    with pytest.raises(ConfigError, match="32x32"):
        d(torch.rand(1, 3, 16, 16))


@pytest.mark.parametrize("net", [
    ESPCN(scale=3, residual=True),
    ESPCN(scale=2),
    RRDBNet(scale=2, num_feat=4, num_block=1, num_grow_ch=4),
    build_srresnet(scale=2, num_feat=4, num_block=1),
])
def test_receptive_field_bounds_dependence(net):
    """An output pixel's gradient w.r.t. the input is zero beyond `receptive_field` LR pixels."""
    net.eval()
    n = 2 * net.receptive_field + 12
    n += -n % net.size_multiple
    x = torch.rand(1, net.in_channels, n, n, requires_grad=True)
    y = net(x)
    c = n // 2
    y[0, :, c * net.scale, c * net.scale].sum().backward()
    nz = x.grad[0].abs().sum(0).nonzero()
    reach = (nz - c).abs().max().item()
    assert 0 < reach <= net.receptive_field


@pytest.mark.parametrize("kwargs", [{"scale": 5}, {"in_channels": 4}, {"activation": "gelu"}, {"width": 0}])
def test_espcn_bad_config(kwargs):
    with pytest.raises(ConfigError):
        build_espcn(**kwargs)


def test_rrdbnet_bad_config():
    with pytest.raises(ConfigError, match="scale"):
        build_rrdbnet(scale=3)
    with pytest.raises(ConfigError, match="out_channels"):
        build_rrdbnet(out_channels=1)
