"""CycleGAN networks: reference key layout and parameter counts, outputs equal to a plain-PyTorch build on every
ops backend, reference checkpoints (running stats, module. prefix) loading unchanged, clear mismatch errors."""
from __future__ import annotations

import pytest
import torch

import zoo
import zoo.ops
from zoo.errors import ConfigError, WeightsError
from zoo_cyclegan.models import CycleGANGenerator, CycleGANPair, adapt_state_dict, infer_generator_config
from zoo_cyclegan.networks import NLayerDiscriminator, ResnetGenerator

from .reference_nets import RefNLayerDiscriminator, RefResnetGenerator


def _shapes(module: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _backends() -> list[str]:
    """The ops backends usable here (the reference always; the compiled one where it built)."""
    names = ["reference"]
    try:
        with zoo.ops.use_backend("cpp"):
            zoo.ops.instance_norm_act(torch.zeros(1, 1, 2, 2))
        names.append("cpp")
    except Exception:  # noqa: BLE001 - no compiler/extension on this machine
        pass
    return names


def test_full_size_parameter_counts_and_keys_match_the_reference():
    g, ref_g = ResnetGenerator(3, 3, 64, 9), RefResnetGenerator(3, 3, 64, n_blocks=9)
    d, ref_d = NLayerDiscriminator(3, 64, 3), RefNLayerDiscriminator(3, 64, 3)
    assert sum(p.numel() for p in g.parameters()) == 11_378_179
    assert sum(p.numel() for p in d.parameters()) == 2_764_737
    assert _shapes(g) == _shapes(ref_g)
    assert _shapes(d) == _shapes(ref_d)
    keys = set(g.state_dict())
    assert {"model.1.weight", "model.4.weight", "model.7.weight", "model.10.conv_block.1.weight",
            "model.10.conv_block.5.bias", "model.18.conv_block.5.weight", "model.19.weight", "model.22.weight",
            "model.26.weight", "model.26.bias"} <= keys
    assert {"model.0.weight", "model.2.weight", "model.5.weight", "model.8.weight", "model.11.weight"} <= set(d.state_dict())


@pytest.mark.parametrize("norm,dropout", [("batch", False), ("batch", True), ("instance", True)])
def test_variants_follow_the_reference_key_layout(norm, dropout):
    ours = ResnetGenerator(3, 3, 8, 6, norm=norm, use_dropout=dropout)
    ref = RefResnetGenerator(3, 3, 8, norm=norm, use_dropout=dropout, n_blocks=6)
    assert _shapes(ours) == _shapes(ref)
    assert _shapes(NLayerDiscriminator(3, 8, 3, norm=norm)) == _shapes(RefNLayerDiscriminator(3, 8, 3, norm=norm))
    assert infer_generator_config(ref.state_dict()) == {"input_nc": 3, "output_nc": 3, "ngf": 8, "n_blocks": 6,
                                                          "norm": norm, "use_dropout": dropout}


def test_patchgan_map_size_for_256_input():
    d = NLayerDiscriminator(3, ndf=4)  # the map size depends on strides only, so a thin D keeps this cheap
    with torch.no_grad():
        assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize("backend", _backends())
def test_outputs_match_plain_pytorch_on_every_backend(backend):
    torch.manual_seed(0)
    ref_g, ref_d = RefResnetGenerator(3, 2, 8, n_blocks=2), RefNLayerDiscriminator(3, 8, 3)
    for m in (ref_g, ref_d):
        for p in m.parameters():
            torch.nn.init.normal_(p, 0.0, 0.2)
    g, d = ResnetGenerator(3, 2, 8, 2), NLayerDiscriminator(3, 8, 3)
    g.load_state_dict(ref_g.state_dict())
    d.load_state_dict(ref_d.state_dict())
    x = torch.randn(2, 3, 36, 44)
    with torch.no_grad(), zoo.ops.use_backend(backend):
        torch.testing.assert_close(g(x), ref_g(x), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(d(x), ref_d(x), atol=1e-5, rtol=1e-4)


def _old_reference_checkpoint(ref: torch.nn.Module) -> dict:
    """What old PyTorch saved under DataParallel: `module.` prefixes and InstanceNorm running statistics."""
    state = {}
    for key, value in ref.state_dict().items():
        state["module." + key] = value
    for name, mod in ref.named_modules():
        if isinstance(mod, torch.nn.InstanceNorm2d):
            state[f"module.{name}.running_mean"] = torch.zeros(mod.num_features)
            state[f"module.{name}.running_var"] = torch.ones(mod.num_features)
            state[f"module.{name}.num_batches_tracked"] = torch.tensor(7)
    return state


def test_reference_checkpoint_loads_unchanged_and_gives_the_same_output(tmp_path):
    torch.manual_seed(1)
    ref = RefResnetGenerator(3, 3, 8, n_blocks=6)
    for p in ref.parameters():
        torch.nn.init.normal_(p, 0.0, 0.1)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(_old_reference_checkpoint(ref), path)
    model = zoo.load("cyclegan", weights=path)
    assert isinstance(model, CycleGANGenerator)
    assert (model.ngf, model.n_blocks, model.in_channels, model.out_channels) == (8, 6, 3, 3)
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(x, direction="AtoB"), ref(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(ConfigError, match="translates AtoB only"):
        model(x, direction="BtoA")
    g_b = zoo.load("cyclegan", weights=path, direction="BtoA")
    assert g_b.channels("BtoA") == (3, 3)


def test_adapter_keeps_batch_norm_statistics_and_drops_instance_norm_ones():
    ref_bn = RefResnetGenerator(3, 3, 4, norm="batch", n_blocks=1)
    adapted = adapt_state_dict({"module." + k: v for k, v in ref_bn.state_dict().items()})
    assert adapted.keys() == ref_bn.state_dict().keys()
    ref_in = RefResnetGenerator(3, 3, 4, n_blocks=1, track_running_stats=True)
    assert any(k.endswith("running_mean") for k in ref_in.state_dict())
    assert adapt_state_dict(ref_in.state_dict()).keys() == ResnetGenerator(3, 3, 4, 1).state_dict().keys()


def test_mismatched_checkpoint_is_one_error_listing_the_keys(tmp_path):
    state = ResnetGenerator(3, 3, 4, 2).state_dict()
    del state["model.4.bias"]
    state["model.12.extra"] = torch.zeros(3)
    state["model.7.weight"] = torch.zeros(16, 9, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        zoo.load("cyclegan", weights=path)
    message = str(info.value)
    assert "model.4.bias" in message and "model.12.extra" in message and "model.7.weight" in message
    assert message.count("\n") < 5


def test_not_a_generator_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "d.pth"
    torch.save(RefNLayerDiscriminator(3, 4).state_dict(), path)
    with pytest.raises(WeightsError, match="cannot infer the CycleGAN generator"):
        zoo.load("cyclegan", weights=path)


def test_pair_directions_keys_and_bad_direction():
    torch.manual_seed(0)
    pair = CycleGANPair(1, 3, ngf=4, n_blocks=1).eval()
    assert {k.split(".")[0] for k in pair.state_dict()} == {"G_A", "G_B"}
    a, b = torch.randn(2, 1, 16, 16), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert pair(a).shape == (2, 3, 16, 16)
        torch.testing.assert_close(pair(b, direction="BtoA"), pair.G_B(b))
    assert pair.channels("BtoA") == (3, 1)
    with pytest.raises(ConfigError, match="direction"):
        pair(a, direction="sideways")


def test_bad_configs_are_config_errors():
    with pytest.raises(ConfigError, match="norm"):
        ResnetGenerator(norm="group")
    with pytest.raises(ConfigError, match="ngf"):
        ResnetGenerator(ngf=0)
    with pytest.raises(ConfigError, match="direction"):
        CycleGANGenerator(ngf=4, n_blocks=1, direction="up")
