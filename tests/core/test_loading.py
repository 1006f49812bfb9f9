"""zoo.load: pretrained rules, user weights, key/shape mismatches, overrides, metadata config, eval mode."""
from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo.errors import ConfigError, WeightsError
from zoo.weights import save_weights

from .toy import TinyGenerator, build_tiny, tiny_spec


def _equal_params(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def tiny(register_spec):
    return register_spec(tiny_spec("zz-tiny"))


def test_pretrained_without_weights_is_an_error(tiny):
    with pytest.raises(WeightsError, match="'zz-tiny' has no pretrained weights; pass pretrained=False"):
        zoo.load("zz-tiny")
    model = zoo.load("zz-tiny", pretrained=False)
    assert isinstance(model, TinyGenerator) and not model.training


def test_weights_path_loads_exactly_in_eval_mode(tiny, tmp_path):
    torch.manual_seed(1)
    trained = build_tiny()
    save_weights(tmp_path / "w.safetensors", trained.state_dict())
    model = zoo.load("zz-tiny", weights=tmp_path / "w.safetensors")
    assert _equal_params(model, trained)
    assert not any(m.training for m in model.modules())
    assert torch.equal(model.sample(3, seed=4), trained.sample(3, seed=4))
    # a .pth state dict works the same (read with weights_only=True)
    torch.save(trained.state_dict(), tmp_path / "w.pth")
    assert _equal_params(zoo.load("zz-tiny", weights=str(tmp_path / "w.pth"), device="cpu"), trained)


def test_a_sha256_sidecar_next_to_user_weights_is_checked(tiny, tmp_path):
    path = tmp_path / "w.safetensors"
    digest = save_weights(path, build_tiny().state_dict())  # writes w.safetensors.sha256 as well
    zoo.load("zz-tiny", weights=path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit of a weight: still a readable file, but not the one recorded
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=f"sha256 is [0-9a-f]{{64}}, expected {digest}"):
        zoo.load("zz-tiny", weights=path)
    (tmp_path / "w.safetensors.sha256").write_text("not-a-hash  w.safetensors\n")
    with pytest.raises(WeightsError, match="w.safetensors.sha256 does not start with a sha256"):
        zoo.load("zz-tiny", weights=path)
    (tmp_path / "w.safetensors.sha256").unlink()
    zoo.load("zz-tiny", weights=path)  # no sidecar: nothing to check against


def test_half_weights_are_converted_to_the_model_dtype(tiny, tmp_path):
    trained = build_tiny()
    save_weights(tmp_path / "h.safetensors", {k: v.half() for k, v in trained.state_dict().items()})
    model = zoo.load("zz-tiny", weights=tmp_path / "h.safetensors")
    assert model.net[0].weight.dtype == torch.float32
    assert torch.equal(model.net[0].weight, trained.net[0].weight.half().float())


def test_key_and_shape_mismatch_lists_the_keys(tiny, tmp_path):
    state = build_tiny().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["net.2.bias"]
    state["net.0.weight"] = torch.zeros(7, 3)
    save_weights(tmp_path / "bad.safetensors", state)
    with pytest.raises(WeightsError) as exc:
        zoo.load("zz-tiny", weights=tmp_path / "bad.safetensors")
    msg = str(exc.value)
    assert "bad.safetensors" in msg and "TinyGenerator" in msg
    assert "missing keys: net.2.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "net.0.weight: checkpoint (7, 3) vs model (8, 3)" in msg


def test_overrides_change_the_builder_config(tiny, tmp_path):
    model = zoo.load("zz-tiny", pretrained=False, width=5, latent_dim=2)
    assert (model.net[0].in_features, model.net[0].out_features, model.latent_dim) == (2, 5, 2)
    with pytest.raises(ConfigError, match="invalid configuration for 'zz-tiny'.*depth"):
        zoo.load("zz-tiny", pretrained=False, depth=3)
    # overrides also apply with a weights file: shapes then must fit
    wide = build_tiny(width=6)
    save_weights(tmp_path / "wide.safetensors", wide.state_dict())
    assert _equal_params(zoo.load("zz-tiny", weights=tmp_path / "wide.safetensors", width=6), wide)
    with pytest.raises(WeightsError, match="net.0.weight: checkpoint"):
        zoo.load("zz-tiny", weights=tmp_path / "wide.safetensors")


def test_metadata_config_is_applied_and_explicit_overrides_win(tiny, tmp_path):
    wide = build_tiny(width=6)
    meta = {"zoo.model": "zz-tiny", "zoo.config": json.dumps({"latent_dim": 3, "width": 6})}
    save_weights(tmp_path / "wide.safetensors", wide.state_dict(), meta)
    model = zoo.load("zz-tiny", weights=tmp_path / "wide.safetensors")
    assert model.net[0].out_features == 6 and _equal_params(model, wide)
    with pytest.raises(WeightsError, match="checkpoint .* vs model"):
        zoo.load("zz-tiny", weights=tmp_path / "wide.safetensors", width=4)


def test_weights_of_another_model_are_refused(tiny, register_spec, tmp_path):
    register_spec(tiny_spec("zz-other"))
    save_weights(tmp_path / "o.safetensors", build_tiny().state_dict(), {"zoo.model": "zz-other"})
    with pytest.raises(WeightsError, match="holds weights for model 'zz-other', not 'zz-tiny'"):
        zoo.load("zz-tiny", weights=tmp_path / "o.safetensors")
    assert zoo.load("zz-other", weights=tmp_path / "o.safetensors") is not None


def test_key_adapter_and_infer_config_for_foreign_checkpoints(register_spec, tmp_path):
    def strip_module(state):
        return {k.removeprefix("module."): v for k, v in state.items()}

    def infer(state):
        return {"latent_dim": state["net.0.weight"].shape[1], "width": state["net.0.weight"].shape[0]}

    register_spec(tiny_spec("zz-foreign", key_adapter=strip_module, infer_config=infer))
    foreign = build_tiny(latent_dim=5, width=9)
    torch.save({f"module.{k}": v for k, v in foreign.state_dict().items()}, tmp_path / "foreign.pth")
    model = zoo.load("zz-foreign", weights=tmp_path / "foreign.pth")
    assert model.latent_dim == 5 and _equal_params(model, foreign)


def test_shipped_weights_are_verified_on_load(register_spec, tmp_path, monkeypatch):
    pkg = tmp_path / "zz_load_pkg"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    trained = build_tiny()
    sha = save_weights(pkg / "weights" / "t.safetensors", trained.state_dict())
    monkeypatch.syspath_prepend(str(tmp_path))
    register_spec(tiny_spec("zz-shipped", weights=zoo.WeightsFile("t.safetensors", sha, package="zz_load_pkg")))
    assert _equal_params(zoo.load("zz-shipped"), trained)
    # a corrupted shipped file is caught by the sha check on every load
    save_weights(pkg / "weights" / "t.safetensors", build_tiny(width=8).state_dict() | {
        "net.0.bias": torch.ones(8)})
    with pytest.raises(WeightsError, match=f"expected {sha}"):
        zoo.load("zz-shipped")
