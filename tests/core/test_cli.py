"""The `zoo` command line: listing, cards, plugins, generate, eval, train/export, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch
from PIL import Image

import zoo
from zoo.cli.main import main
from zoo.imageio import make_grid, read_image
from zoo.weights import save_weights

from .conftest import subprocess_env
from .toy import build_tiny, tiny_spec


@pytest.fixture(autouse=True)
def _keep_warning_format(monkeypatch):
    """main() installs a one-line warning format; undo it after each test."""
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)


def _mean_pixel(model) -> dict:
    return {"mean": round(float(model.sample(16, seed=0).mean()), 6), "training": model.training}


@pytest.fixture
def toy(register_spec):
    register_spec(tiny_spec("tiny-gen", evaluate=_mean_pixel, paper="Toy 2024", reproduce="zoo train tiny-gen"))
    register_spec(zoo.ModelSpec(name="tiny-sr", task="super-resolution", builder=torch.nn.Identity))
    register_spec(zoo.ModelSpec(name="zz-not-a-gen", task="generation", builder=torch.nn.Identity))


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(3)
    module = build_tiny()
    save_weights(tmp_path / "w.safetensors", module.state_dict())
    return tmp_path / "w.safetensors", module


def test_list(toy, capsys):
    assert main(["list", "tiny-*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "task", "weights", "train", "architecture"]
    assert out[1].split() == ["tiny-gen", "generation", "-", "yes", "tiny", "MLP"]
    assert out[2].split()[:4] == ["tiny-sr", "super-resolution", "-", "-"]
    assert len(out) == 3
    assert main(["list", "tiny-*", "--task", "super-resolution"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["tiny-sr"]
    assert main(["list", "tiny-*", "--pretrained"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == []


def test_info_text_and_json(toy, capsys):
    assert main(["info", "tiny-gen"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# tiny-gen\n")
    assert "paper: Toy 2024" in out and "parameters: 176" in out and "weights: none" in out
    assert "reproduce:\n  zoo train tiny-gen" in out
    assert main(["info", "tiny-gen", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card == json.loads(json.dumps(zoo.model_card("tiny-gen")))
    assert card["parameters"] == 176 and card["evaluable"] is True


def test_plugins_in_process(toy, capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for info in zoo.plugins.plugins():
        assert f"{info.name}  ({info.distribution} {info.version})" in out


def test_unknown_model_is_one_line_exit_2(toy, capsys):
    assert main(["info", "tiny-gan"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("zoo: error: unknown model 'tiny-gan'; did you mean tiny-gen")


def test_user_errors_in_a_subprocess_have_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zoo", "generate", "no-such-model", "-o", "x.png"],
                          capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("zoo: error: unknown model 'no-such-model'") and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_generate_writes_a_grid_from_the_given_weights(toy, weights, tmp_path, capsys):
    path, module = weights
    out = tmp_path / "grid.png"
    assert main(["generate", "tiny-gen", "-n", "9", "--seed", "2", "-o", str(out), "--weights", str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with Image.open(out) as im:
        assert im.size == (3 * 6 + 2, 3 * 6 + 2)  # 9 images of 4x4 -> 3 per row, 2 px borders
    got, _, _ = read_image(out)
    module.eval()
    expected = make_grid(module.sample(9, seed=2).detach(), 3)
    assert torch.equal(got, expected.mul(255).round().div(255))
    assert main(["generate", "tiny-gen", "-n", "10", "--nrow", "5", "-o", str(tmp_path / "wide.png"),
                 "--weights", str(path)]) == 0
    with Image.open(tmp_path / "wide.png") as im:
        assert im.size == (5 * 6 + 2, 2 * 6 + 2)


@pytest.mark.parametrize("argv, message", [
    (["generate", "tiny-gen", "-o", "{tmp}/g.png"], "'tiny-gen' has no pretrained weights"),
    (["generate", "tiny-sr", "-o", "{tmp}/g.png"], "'tiny-sr' is a super-resolution model"),
    (["generate", "tiny-gen", "-n", "0", "-o", "{tmp}/g.png", "--weights", "{w}"], "between 1 and 4096, got 0"),
    (["generate", "tiny-gen", "-o", "{tmp}/g.bmpx", "--weights", "{w}"], "unknown image extension '.bmpx'"),
    (["generate", "tiny-gen", "-o", "{tmp}/g.png", "--weights", "{tmp}/none.safetensors"], "does not exist"),
    (["generate", "tiny-gen", "-o", "{tmp}/g.png", "--weights", "{w}", "--device", "gpu"], "invalid device 'gpu'"),
    (["generate", "tiny-gen", "-o", "{tmp}/g.png", "--weights", "{w}", "--device", "cuda:99"],
     "device 'cuda:99' is not available"),
    (["eval", "tiny-gen", "--weights", "{w}", "--device", "cuda:99"], "device 'cuda:99' is not available"),
    (["train", "tiny-gen", "--out", "{tmp}/run", "--device", "gpu"], "invalid device 'gpu'"),
    (["eval", "tiny-sr"], "'tiny-sr' has no evaluation"),
    (["generate", "zz-not-a-gen", "-o", "{tmp}/g.png", "--weights", "{empty}"],
     "model 'zz-not-a-gen' is not a generation model: it needs an int `latent_dim`"),
    (["train", "tiny-sr"], "'tiny-sr' has no training recipe"),
    (["train", "tiny-gen", "--epochs", "0", "--out", "{tmp}/run"], "--epochs must be >= 1, got 0"),
    (["export", "{tmp}", "-o", "{tmp}/x.safetensors"], "holds no checkpoint.pt"),
    (["export", "{tmp}", "-o", "{tmp}/x.pth"], "name the output *.safetensors, got '{tmp}/x.pth'"),
])
def test_user_mistakes_exit_2_with_one_line(toy, weights, tmp_path, capsys, argv, message):
    save_weights(tmp_path / "empty.safetensors", {})
    argv = [a.format(tmp=tmp_path, w=weights[0], empty=tmp_path / "empty.safetensors") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and err.count("\n") == 1 and message.format(tmp=tmp_path) in err, err
    assert not (tmp_path / "g.png").exists()


def test_eval_writes_json(toy, weights, tmp_path, capsys):
    path, module = weights
    assert main(["eval", "tiny-gen", "--weights", str(path), "--json", str(tmp_path / "s.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    with torch.no_grad():
        expected = round(float(module.eval().sample(16, seed=0).mean()), 6)
    assert printed == {"mean": expected, "training": False}
    assert json.loads((tmp_path / "s.json").read_text()) == printed


def test_train_help_export_and_bad_flags(toy, tmp_path, capsys):
    assert main(["train", "tiny-gen", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--noise-scale NOISE_SCALE" in help_text and "--resume, --no-resume" in help_text
    assert main(["train"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("usage: zoo train NAME")
    run = tmp_path / "run"
    assert main(["train", "tiny-gen", "--out", str(run), "--epochs", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(run)
    assert main(["export", str(run), "-o", str(tmp_path / "g.safetensors"), "--half"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'g.safetensors'}  sha256 ")
    assert zoo.load("tiny-gen", weights=tmp_path / "g.safetensors").net[0].weight.dtype == torch.float32
    with pytest.raises(SystemExit) as exc:
        main(["train", "tiny-gen", "--bogus-flag"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus-flag" in capsys.readouterr().err


def test_no_command_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2 and "required: COMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("list", "info", "plugins", "generate", "train", "export", "eval"):
        assert command in out
