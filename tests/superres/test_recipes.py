"""Training recipes end to end on tiny models and data: L1 stage, exact resume, export -> load, SRGAN / ESRGAN
stage 2 with a local perceptual network."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.errors import ConfigError, WeightsError
from zoo.train import export_run, run_training
from zoo.weights import read_state_dict, save_weights
from zoo_superres.networks import build_espcn, build_rrdbnet, build_srresnet
from zoo_superres.recipes import ESPCNRecipe, ESRGANRecipe, SRGANRecipe, vgg19_features


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        small = Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
        small.resize((48, 48), Image.BICUBIC).save(folder / f"p{i}.png")
    return folder


@pytest.fixture
def specs(register_spec):
    small_rrdb = {"scale": 4, "num_feat": 4, "num_block": 1, "num_grow_ch": 4}
    register_spec(zoo.ModelSpec(name="t-espcn", task="super-resolution", builder=build_espcn,
                                config={"scale": 2, "width": 8, "mid_width": 4}, recipe=ESPCNRecipe))
    register_spec(zoo.ModelSpec(name="t-srgan", task="super-resolution", builder=build_srresnet,
                                config={"scale": 4, "num_feat": 4, "num_block": 1}, recipe=SRGANRecipe))
    register_spec(zoo.ModelSpec(name="t-esrgan", task="super-resolution", builder=build_rrdbnet,
                                config=small_rrdb, recipe=ESRGANRecipe))


def _train(name, out, photos, *flags):
    argv = ["--out", str(out), "--batch-size", "4", "--samples-per-epoch", "8", "--data", str(photos), *flags]
    return run_training(name, argv)


class _Interrupt(Exception):
    pass


def test_espcn_l1_training_resume_export_load(tmp_path, photos, specs, monkeypatch):
    flags = ("--epochs", "2", "--patch", "8", "--residual", "yes", "--width", "6")
    straight = _train("t-espcn", tmp_path / "a", photos, *flags)

    def stop_in_second_epoch(self, epoch):
        if epoch == 1:  # the checkpoint of epoch 1 is written, epoch 2's is not
            raise _Interrupt

    with monkeypatch.context() as m:
        m.setattr(ESPCNRecipe, "end_epoch", stop_in_second_epoch)
        with pytest.raises(_Interrupt):
            _train("t-espcn", tmp_path / "b", photos, *flags)
    resumed = _train("t-espcn", tmp_path / "b", photos, "--resume", *flags)
    log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all(r["l1"] > 0 for r in log)
    assert (straight / "samples" / "epoch_002.png").is_file()
    wa, _ = export_run(straight, tmp_path / "a.safetensors")
    wb, _ = export_run(resumed, tmp_path / "b.safetensors")
    sa, sb = read_state_dict(wa), read_state_dict(wb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # resume is exact
    model = zoo.load("t-espcn", weights=wa, width=6, residual=True)
    assert model.conv1.out_channels == 6 and model.residual
    assert model(torch.rand(1, 3, 5, 5)).shape == (1, 3, 10, 10)


def _fake_vgg(path, layer):
    """A random torchvision-layout VGG19 prefix (convs 0 and 2) as a local weights file."""
    torch.manual_seed(0)
    shapes = {0: (64, 3), 2: (64, 64)}
    state = {}
    for i, (o, c) in shapes.items():
        if i <= layer:
            state[f"features.{i}.weight"] = torch.randn(o, c, 3, 3) * 0.05
            state[f"features.{i}.bias"] = torch.zeros(o)
    save_weights(path, state)


def test_srgan_with_perceptual_loss(tmp_path, photos, specs):
    vgg = tmp_path / "vgg19.safetensors"
    _fake_vgg(vgg, 3)
    run = _train("t-srgan", tmp_path / "g", photos, "--epochs", "1", "--patch", "4",
                 "--perceptual-weights", str(vgg), "--perceptual-layer", "3")
    record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert {"g_pixel", "g_adv", "g_percep", "d"} <= set(record)
    with pytest.raises(WeightsError, match="VGG19"):
        vgg19_features(str(vgg), layer=5)  # conv 5 is not in the file
    with pytest.raises(ConfigError, match="multiple of 16"):
        _train("t-srgan", tmp_path / "bad", photos, "--epochs", "1", "--patch", "5")


def test_esrgan_relativistic_from_pretrained(tmp_path, photos, specs):
    start = tmp_path / "stage1.safetensors"
    torch.manual_seed(0)
    g = build_rrdbnet(scale=4, num_feat=4, num_block=1, num_grow_ch=4)
    save_weights(start, g.state_dict())
    run = _train("t-esrgan", tmp_path / "e", photos, "--epochs", "1", "--patch", "4", "--pretrained", str(start))
    record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert {"g_pixel", "g_adv", "d"} <= set(record) and "g_percep" not in record
    out, _ = export_run(run, tmp_path / "e.safetensors")
    trained = read_state_dict(out)
    assert not torch.equal(trained["conv_first.weight"], g.state_dict()["conv_first.weight"])
