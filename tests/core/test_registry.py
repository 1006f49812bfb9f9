"""The registry: listing and filters, unknown names, duplicates, ModelSpec validation, model cards."""
from __future__ import annotations

import pytest
from torch import nn

import zoo
from zoo.errors import ConfigError, DuplicateModelError, UnknownModelError
from zoo.weights import save_weights

from .toy import build_tiny, tiny_spec

SHA = "0" * 64


def _identity() -> nn.Module:
    return nn.Identity()


@pytest.fixture
def some_models(register_spec):
    register_spec(tiny_spec("zz-gen-b"))
    register_spec(tiny_spec("zz-gen-a", weights=zoo.WeightsFile("a.safetensors", SHA, url="http://127.0.0.1:9/a")))
    register_spec(zoo.ModelSpec(name="zz-sr-x2", task="super-resolution", builder=_identity))
    register_spec(zoo.ModelSpec(name="zz-tr", task="translation", builder=_identity))


def test_list_models_fnmatch_sorted_and_filters(some_models):
    assert zoo.list_models("zz-*") == ["zz-gen-a", "zz-gen-b", "zz-sr-x2", "zz-tr"]
    assert zoo.list_models("zz-gen-?") == ["zz-gen-a", "zz-gen-b"]
    assert zoo.list_models("zz-[st]*") == ["zz-sr-x2", "zz-tr"]
    assert zoo.list_models("ZZ-*") == []  # case-sensitive like model names
    assert zoo.list_models("zz-*", task="generation") == ["zz-gen-a", "zz-gen-b"]
    assert zoo.list_models("zz-*", task="super-resolution") == ["zz-sr-x2"]
    assert zoo.list_models("zz-*", pretrained=True) == ["zz-gen-a"]
    assert zoo.list_models("zz-*", pretrained=False) == ["zz-gen-b", "zz-sr-x2", "zz-tr"]
    assert zoo.list_models("zz-*", task="generation", pretrained=False) == ["zz-gen-b"]
    all_names = zoo.list_models()
    assert all_names == sorted(all_names) and set(all_names) >= {"zz-gen-a", "zz-tr"}


def test_list_models_rejects_unknown_task(some_models):
    with pytest.raises(ConfigError, match="task must be one of generation, translation, super-resolution"):
        zoo.list_models(task="segmentation")


def test_unknown_name_lists_closest_names(some_models):
    with pytest.raises(UnknownModelError) as exc:
        zoo.get_spec("zz-gen-c")
    msg = str(exc.value)
    assert msg.startswith("unknown model 'zz-gen-c'; did you mean ")
    assert "zz-gen-a" in msg and "zz-gen-b" in msg
    assert isinstance(exc.value, zoo.ZooError)
    with pytest.raises(UnknownModelError, match="zz-sr-x2"):
        zoo.load("zz-sr-x4")
    with pytest.raises(UnknownModelError, match="`zoo list` shows the available models"):
        zoo.model_card("qqqqqqqqqqqqqqqqqqqq")


def test_duplicate_name_names_both_plugins(register_spec):
    register_spec(tiny_spec("zz-dup"), plugin="first_plugin")
    with pytest.raises(DuplicateModelError) as exc:
        register_spec(tiny_spec("zz-dup"), plugin="second_plugin")
    assert "'zz-dup'" in str(exc.value) and "'first_plugin'" in str(exc.value) and "'second_plugin'" in str(exc.value)
    assert zoo.get_spec("zz-dup").plugin == "first_plugin"


def test_registry_refuses_non_specs(register_spec):
    with pytest.raises(ConfigError, match="registered dict, expected zoo.ModelSpec"):
        register_spec({"name": "x"}, plugin="sloppy")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": ""}, "model name must be a non-empty string"),
    ({"name": "has space"}, "without spaces"),
    ({"name": " padded"}, "without spaces"),
    ({"task": "classification"}, "task must be one of generation, translation, super-resolution; got 'classification'"),
    ({"builder": "not callable"}, "builder must be callable"),
])
def test_model_spec_validation(kwargs, message):
    args = {"name": "ok", "task": "generation", "builder": build_tiny, **kwargs}
    with pytest.raises(ConfigError, match=message):
        zoo.ModelSpec(**args)


@pytest.mark.parametrize("kwargs, message", [
    ({"sha256": "abc"}, "sha256 must be 64 lowercase hex digits"),
    ({"sha256": "A" * 64}, "sha256 must be 64 lowercase hex digits"),
    ({"package": None, "url": None}, "give a package holding it or a url"),
])
def test_weights_file_validation(kwargs, message):
    args = {"filename": "w.safetensors", "sha256": SHA, "package": "pkg", **kwargs}
    with pytest.raises(ConfigError, match=message):
        zoo.WeightsFile(**args)


def test_model_card_fields(register_spec, tmp_path, monkeypatch):
    # weights shipped as package data of an importable package
    pkg = tmp_path / "zz_card_pkg"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    module = build_tiny(latent_dim=3, width=5)
    sha = save_weights(pkg / "weights" / "card.safetensors", module.state_dict())
    monkeypatch.syspath_prepend(str(tmp_path))
    register_spec(tiny_spec("zz-card", config={"latent_dim": 3, "width": 5},
                            weights=zoo.WeightsFile("card.safetensors", sha, package="zz_card_pkg"),
                            paper="Nobody 2024", training_data="noise", contract="z (n, 3) -> (n, 1, 4, 4)",
                            reproduce="zoo train zz-card --epochs 3", scores={"fid": 1.5}, description="a toy"))
    card = zoo.model_card("zz-card")
    assert card["name"] == "zz-card" and card["task"] == "generation" and card["plugin"] == "tests"
    assert card["architecture"] == "tiny MLP" and card["paper"] == "Nobody 2024" and card["training_data"] == "noise"
    assert card["contract"] == "z (n, 3) -> (n, 1, 4, 4)" and card["description"] == "a toy"
    assert card["parameters"] == (3 * 5 + 5) + (5 * 16 + 16)
    assert card["config"] == {"latent_dim": 3, "width": 5}
    assert card["weights"]["filename"] == "card.safetensors" and card["weights"]["sha256"] == sha
    assert card["weights"]["size"] == (pkg / "weights" / "card.safetensors").stat().st_size
    assert card["weights"]["source"] == "package zz_card_pkg"
    assert card["scores"] == {"fid": 1.5}
    assert card["reproduce"] == "zoo train zz-card --epochs 3"
    assert card["trainable"] is True and card["evaluable"] is False
    card["scores"]["fid"] = 99  # the card is a copy: the spec is not changed through it
    assert zoo.model_card("zz-card")["scores"] == {"fid": 1.5}


def test_model_card_without_weights_and_not_downloaded(register_spec):
    register_spec(zoo.ModelSpec(name="zz-bare", task="translation", builder=_identity))
    register_spec(tiny_spec("zz-remote", weights=zoo.WeightsFile("r.safetensors", SHA, url="http://127.0.0.1:9/r",
                                                                 size=1234)))
    register_spec(tiny_spec("zz-remote-nosize", weights=zoo.WeightsFile("r.safetensors", SHA,
                                                                        url="http://127.0.0.1:9/r")))
    bare = zoo.model_card("zz-bare")
    assert bare["weights"] is None and bare["parameters"] == 0 and bare["trainable"] is False
    remote = zoo.model_card("zz-remote")["weights"]
    assert remote == {"filename": "r.safetensors", "sha256": SHA, "size": 1234, "source": "http://127.0.0.1:9/r"}
    assert zoo.model_card("zz-remote-nosize")["weights"]["size"] is None  # nothing downloaded, nothing fetched
