"""Community ESRGAN/BasicSR checkpoints load unchanged: wrappers, prefixes, old names, oldest layout, inference."""
import re

import pytest
import torch

import zoo
from zoo.errors import WeightsError
from zoo_superres.adapters import adapt_esrgan, infer_esrgan_config, infer_espcn_config, infer_srresnet_config, unwrap
from zoo_superres.networks import build_espcn, build_rrdbnet, build_srresnet

SMALL = {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}


def _small_net(scale=4, in_channels=3):
    torch.manual_seed(scale)
    return build_rrdbnet(scale=scale, in_channels=in_channels, **SMALL).eval()


def _to_original_names(sd):
    """Rename BasicSR keys to the original ESRGAN release's names (RRDBNet_arch.py)."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", k)
        k = k.replace("conv_body.", "trunk_conv.").replace("conv_up1.", "upconv1.").replace("conv_up2.", "upconv2.")
        out[k.replace("conv_hr.", "HRconv.")] = v
    return out


def _to_oldest_layout(sd, num_block):
    """Rename BasicSR keys to the oldest ESRGAN layout (sequential model.N, ShortcutBlock .sub, conv blocks .0)."""
    top = {"conv_first": "model.0", "conv_up1": "model.3", "conv_up2": "model.6", "conv_hr": "model.8",
           "conv_last": "model.10", "conv_body": f"model.1.sub.{num_block}"}
    out = {}
    for k, v in sd.items():
        if m := re.match(r"^body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)$", k):
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = v
        else:
            name, param = k.rsplit(".", 1)
            out[f"{top[name]}.{param}"] = v
    return out


@pytest.mark.parametrize("layout", ["basicsr", "params", "params_ema", "module", "original", "oldest"])
def test_adapt_esrgan_layouts(layout):
    sd = _small_net().state_dict()
    ckpt = {
        "basicsr": lambda: dict(sd),
        "params": lambda: {"params": dict(sd)},
        "params_ema": lambda: {"params": {k: torch.zeros_like(v) for k, v in sd.items()}, "params_ema": dict(sd)},
        "module": lambda: {f"module.{k}": v for k, v in sd.items()},
        "original": lambda: _to_original_names(sd),
        "oldest": lambda: _to_oldest_layout(sd, SMALL["num_block"]),
    }[layout]()
    adapted = adapt_esrgan(ckpt)
    assert set(adapted) == set(sd)
    assert all(torch.equal(adapted[k], sd[k]) for k in sd)


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_infer_esrgan_config(scale, in_channels):
    sd = _small_net(scale, in_channels).state_dict()
    assert infer_esrgan_config(sd) == {"scale": scale, "in_channels": in_channels, **SMALL}


def test_infer_other_configs():
    espcn = build_espcn(scale=3, in_channels=1, width=16, mid_width=8).state_dict()
    assert infer_espcn_config(espcn) == {"scale": 3, "in_channels": 1, "width": 16, "mid_width": 8}
    srres = build_srresnet(scale=4, num_feat=8, num_block=3).state_dict()
    assert infer_srresnet_config(srres) == {"scale": 4, "in_channels": 3, "num_feat": 8, "num_block": 3}


def test_bad_checkpoints_are_refused_clearly():
    with pytest.raises(WeightsError, match="no tensors"):
        unwrap({"params": {"epoch": 3}, "note": "x"})
    with pytest.raises(WeightsError, match="x4 layout"):
        adapt_esrgan({"model.0.weight": torch.zeros(1), "model.5.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="conv_first"):
        infer_esrgan_config({"body.0.rdb1.conv1.weight": torch.zeros(4, 8, 3, 3)})


@pytest.mark.parametrize("layout", ["params_ema", "oldest"])
def test_zoo_load_foreign_esrgan_checkpoint(tmp_path, layout):
    """A .pth as BasicSR / the original release saves it loads with zoo.load and computes the same function."""
    net = _small_net(scale=2)
    sd = net.state_dict()
    ckpt = {"params_ema": sd} if layout == "params_ema" else _to_oldest_layout(sd, SMALL["num_block"])
    path = tmp_path / "RealESRGAN_x2_small.pth"
    torch.save(ckpt, path)
    loaded = zoo.load("esrgan", weights=path)
    assert loaded.scale == 2 and len(loaded.body) == SMALL["num_block"]
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
