"""Plugin discovery and isolation with real installed distributions (tests/fixtures/plugins, pip --target)."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from PIL import Image

import zoo
import zoo.plugins
from zoo.cli.main import main
from zoo.errors import DuplicateModelError, PluginError, UnknownModelError
from zoo.plugins import ZooPluginWarning
from zoo.weights import save_weights

from .conftest import subprocess_env


def _info(name: str) -> zoo.plugins.PluginInfo:
    found = [p for p in zoo.plugins.plugins() if p.name == name]
    assert len(found) == 1, [p.name for p in zoo.plugins.plugins()]
    return found[0]


def _plugin_warnings(record, plugin: str) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, ZooPluginWarning) and plugin in str(w.message)]


def test_installed_distribution_is_discovered_with_name_version_and_models(use_plugins):
    use_plugins("good")
    info = _info("fixture_good")
    assert (info.distribution, info.version, info.error) == ("zoo-fixture-good", "1.2.3", None)
    assert info.models == ["fixture-good-a", "fixture-good-b"]
    assert zoo.list_models("fixture-*") == ["fixture-good-a", "fixture-good-b"]
    assert zoo.get_spec("fixture-good-a").plugin == "fixture_good"


def test_shipped_package_data_weights_load_verified(use_plugins):
    use_plugins("good")
    import zoo_fixture_good

    model = zoo.load("fixture-good-a")
    assert torch.equal(model.fc.weight, torch.arange(8, dtype=torch.float32).view(4, 2) / 8)
    assert not model.training
    card = zoo.model_card("fixture-good-a")
    assert card["weights"]["sha256"] == zoo_fixture_good.WEIGHTS_SHA256
    assert card["weights"]["size"] == 232  # measured from the installed package data
    assert zoo.list_models("fixture-*", pretrained=True) == ["fixture-good-a"]
    assert zoo.list_models("fixture-*", pretrained=False) == ["fixture-good-b"]


def test_plugins_load_lazily_and_once(use_plugins):
    use_plugins("good")
    assert "zoo_fixture_good" not in sys.modules  # discovery alone imports nothing
    zoo.list_models()
    import zoo_fixture_good

    assert zoo_fixture_good.HOOK_CALLS == 1
    for _ in range(3):
        zoo.list_models()
        zoo.get_spec("fixture-good-b")
        zoo.plugins.plugins()
    zoo.load("fixture-good-b", pretrained=False)
    assert zoo_fixture_good.HOOK_CALLS == 1


def test_import_zoo_does_not_import_plugins(plugin_targets):
    code = ("import importlib.metadata as md, sys, zoo, zoo.cli.main\n"
            "mods = [ep.value.split(':')[0] for ep in md.entry_points(group='zoo.plugins')]\n"
            "print('zoo_fixture_good' in mods, [m for m in mods if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(plugin_targets["good"]),
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True []"


def test_broken_plugins_are_skipped_with_one_warning_each(use_plugins):
    use_plugins("good", "broken_import", "broken_hook")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        names = zoo.list_models("fixture-*")
        zoo.list_models()  # a second use must not warn again
        zoo.plugins.plugins()
    assert names == ["fixture-good-a", "fixture-good-b"]  # the good plugin still works
    imp = _plugin_warnings(record, "fixture_broken_import")
    hook = _plugin_warnings(record, "fixture_broken_hook")
    assert len(imp) == 1 and len(hook) == 1, [str(w.message) for w in record]
    assert "failed to import" in imp[0] and "RuntimeError: fixture plugin broken on purpose at import" in imp[0]
    assert "zoo-fixture-broken-import 0.0.1" in imp[0]
    assert "register_models" in hook[0] and "ValueError: fixture hook broken on purpose" in hook[0]
    # a hook that raised half-way registers nothing
    with pytest.raises(UnknownModelError):
        zoo.get_spec("fixture-half-registered")
    # nor does a plugin that registered something that is not a ModelSpec
    bad = _plugin_warnings(record, "fixture_registers_dict")
    assert len(bad) == 1 and "register() takes a zoo.ModelSpec, got dict" in bad[0], bad
    assert _info("fixture_registers_dict").models == []
    with pytest.raises(UnknownModelError):
        zoo.get_spec("fixture-before-dict")
    assert _info("fixture_broken_hook").models == []
    assert "RuntimeError" in _info("fixture_broken_import").error
    assert zoo.load("fixture-good-a").fc.out_features == 4


@pytest.mark.parametrize("target, message", [
    ("broken_import", "fixture_broken_import' from zoo-fixture-broken-import 0.0.1 failed to import"),
    ("broken_hook", "fixture_broken_hook' from zoo-fixture-broken-hook 0.0.1 raised in register_models"),
])
def test_strict_mode_raises(use_plugins, monkeypatch, target, message):
    use_plugins("good", target)
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=message):
        zoo.list_models()
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "0")
    zoo.plugins.reload()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert zoo.list_models("fixture-*") == ["fixture-good-a", "fixture-good-b"]
    assert [w for w in record if w.category is ZooPluginWarning and message in str(w.message)]


def test_duplicate_names_are_an_error_naming_both_plugins(use_plugins):
    use_plugins("good", "dup")
    with pytest.raises(DuplicateModelError) as exc:
        zoo.list_models()
    text = str(exc.value)
    assert "fixture-dup" in text and "fixture_dup_a" in text and "fixture_dup_b" in text


def test_readme_plugin_example_works_when_installed(use_plugins):
    use_plugins("readme")
    info = _info("tiny")
    assert (info.distribution, info.version, info.models) == ("my-zoo-plugin", "0.1.0", ["tiny-gan"])
    assert "tiny-gan" in zoo.list_models(task="generation")
    with pytest.raises(zoo.ZooError, match="pretrained=False"):
        zoo.load("tiny-gan")
    model = zoo.load("tiny-gan", pretrained=False)
    images = model.sample(4, seed=0)
    assert images.shape == (4, 1, 8, 8) and images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, model.sample(4, seed=0))


def test_readme_plugin_commands(use_plugins, tmp_path, capsys, monkeypatch):
    """What the README promises after installing the example: `zoo list` shows it, `zoo generate --weights` works."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    use_plugins("readme")
    assert main(["list", "tiny-*"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["tiny-gan", "generation", "-", "-", "one", "linear",
                                                               "layer"]
    save_weights(tmp_path / "my.safetensors", zoo.load("tiny-gan", pretrained=False).state_dict())
    out = tmp_path / "grid.png"
    weights = str(tmp_path / "my.safetensors")
    assert main(["generate", "tiny-gan", "-n", "16", "-o", str(out), "--weights", weights]) == 0
    with Image.open(out) as im:
        assert im.size == (4 * 10 + 2, 4 * 10 + 2)  # 16 images of 8x8, 4 per row


def test_zoo_plugins_cli_lists_installed_plugins(plugin_targets, tmp_path):
    env = subprocess_env(plugin_targets["readme"], plugin_targets["good"],
                         plugin_targets["broken_import"])
    proc = subprocess.run([sys.executable, "-m", "zoo", "plugins"], env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert "(my-zoo-plugin 0.1.0)" in lines["tiny"] and "tiny-gan" in lines["tiny"]
    assert "(zoo-fixture-good 1.2.3)" in lines["fixture_good"] and "fixture-good-a, fixture-good-b" in lines[
        "fixture_good"]
    assert "SKIPPED" in lines["fixture_broken_import"] and "broken on purpose" in lines["fixture_broken_import"]
    # the skipped plugins are also reported once on stderr as one-line warnings, without a traceback
    assert proc.stderr.count("fixture_broken_import") == 1 and "Traceback" not in proc.stderr
