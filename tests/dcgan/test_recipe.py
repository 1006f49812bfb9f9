"""Training dcgan-mnist / dcgan-64 through the engine: an epoch on tiny self-written IDX data, exact resume,
export + load, and the torchrun 2-process run."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.data.mnist import write_idx
from zoo.imageio import write_image
from zoo.train import export_run, run_training
from zoo.train.checkpoint import load_checkpoint
from zoo.errors import ConfigError
from zoo_dcgan.recipe import MnistRecipe, augment, parse_augment, recalibrate_batchnorm
from zoo_dcgan.networks import MnistGenerator


@pytest.fixture
def tiny_mnist(tmp_path) -> Path:
    """48 random 'digits' as standard IDX files (gzip images, plain labels)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (48, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", rng.integers(0, 10, 48, dtype=np.uint8))
    return folder


def _flags(data, out, epochs, *extra):
    return ["--data", str(data), "--out", str(out), "--epochs", str(epochs), "--batch-size", "16",
            "--bn-recalibration", "1", "--device", "cpu", *extra]


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_export_load(tiny_mnist, tmp_path):
    run = run_training("dcgan-mnist", _flags(tiny_mnist, tmp_path / "run", 1))
    ckpt = load_checkpoint(run)
    assert ckpt["epoch"] == 1 and set(ckpt["modules"]) == {"G", "D", "G_ema"}
    assert (run / "samples" / "epoch_001.png").is_file()
    record = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= set(record)
    out, sha = export_run(run, tmp_path / "g.safetensors", half=True)
    model = zoo.load("dcgan-mnist", weights=out)
    assert torch.equal(model.sample(3, seed=0), model.sample(3, seed=0))
    assert model.sample(3, seed=0).shape == (3, 1, 28, 28)


@pytest.mark.slow
def test_resume_continues_exactly(tiny_mnist, tmp_path):
    straight = run_training("dcgan-mnist", _flags(tiny_mnist, tmp_path / "a", 2))
    run_training("dcgan-mnist", _flags(tiny_mnist, tmp_path / "b", 1))
    resumed = run_training("dcgan-mnist", _flags(tiny_mnist, tmp_path / "b", 2, "--resume"))
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["epoch"] == b["epoch"] == 2
    for name in ("G", "D", "G_ema"):
        assert _equal_states(a["modules"][name], b["modules"][name]), name
    assert _equal_states(a["export"]["state"], b["export"]["state"])


def test_lr_decay_is_linear_over_the_last_epochs_and_set_before_each_epoch():
    spec = zoo.get_spec("dcgan-mnist")
    recipe = MnistRecipe(spec, MnistRecipe.Options(epochs=10, lr_decay=4, lr_d=4e-4))
    recipe.prepare(torch.device("cpu"))
    assert [recipe.lr_factor(e) for e in range(10)] == pytest.approx([1] * 6 + [0.8, 0.6, 0.4, 0.2])
    recipe.begin_epoch(9)
    assert recipe.optimizers["G"].param_groups[0]["lr"] == pytest.approx(2e-4 * 0.2)
    assert recipe.optimizers["D"].param_groups[0]["lr"] == pytest.approx(4e-4 * 0.2)
    assert MnistRecipe(spec, MnistRecipe.Options(epochs=10)).lr_factor(9) == 1.0
    with pytest.raises(ConfigError, match="--lr-decay must be between 0 and --epochs"):
        MnistRecipe(spec, MnistRecipe.Options(epochs=3, lr_decay=4)).build(torch.device("cpu"))


def test_resume_with_lr_decay_continues_exactly(tiny_mnist, tmp_path, monkeypatch):
    """The decay is a function of the epoch: a run killed before its second epoch resumes on the same schedule."""
    flags = ("--lr-decay", "2")
    straight = load_checkpoint(run_training("dcgan-mnist", _flags(tiny_mnist, tmp_path / "a", 3, *flags)))
    assert straight["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 / 3)

    def killed(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        original(self, epoch)

    original = MnistRecipe.begin_epoch
    with monkeypatch.context() as m:
        m.setattr(MnistRecipe, "begin_epoch", killed)
        with pytest.raises(KeyboardInterrupt):
            run_training("dcgan-mnist", _flags(tiny_mnist, tmp_path / "b", 3, *flags))
    assert load_checkpoint(tmp_path / "b")["epoch"] == 1
    resumed = load_checkpoint(run_training("dcgan-mnist", _flags(tiny_mnist, tmp_path / "b", 3, *flags, "--resume")))
    for name in ("G", "D", "G_ema"):
        assert _equal_states(straight["modules"][name], resumed["modules"][name]), name
    assert straight["optimizers"]["G"]["param_groups"][0]["lr"] == resumed["optimizers"]["G"]["param_groups"][0]["lr"]


def test_ema_tracks_the_generator_and_recalibration_is_exact():
    spec = zoo.get_spec("dcgan-mnist")
    recipe = MnistRecipe(spec, MnistRecipe.Options(ema=0.5, bn_recalibration=2))
    modules = recipe.prepare(torch.device("cpu"))
    before = {k: v.clone() for k, v in modules["G_ema"].state_dict().items()}
    recipe.step((torch.rand(4, 1, 28, 28) * 2 - 1,), 0)
    for k, p in modules["G_ema"].named_parameters():  # ema = 0.5 * old + 0.5 * new generator
        assert torch.allclose(p, 0.5 * before[k] + 0.5 * dict(modules["G"].named_parameters())[k], atol=1e-6)
    g = MnistGenerator()
    cal = recalibrate_batchnorm(g, batches=2, batch_size=8, seed=3)
    z = torch.randn(16, 100, generator=torch.Generator().manual_seed(3))
    h = g.project[0](z)
    assert torch.allclose(cal.project[1].running_mean, h.mean(0), atol=1e-5)  # average of the two batch means
    assert not cal.training and cal.project[1].momentum == pytest.approx(0.1)


def test_augment_translates_and_cuts_out_differentiably():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 16, 16, requires_grad=True)
    moved = augment(x, ("translation",))
    assert moved.shape == x.shape and moved.is_contiguous()
    # every output is the input shifted by (dy, dx) in [-2, 2]^2, the uncovered border filled with -1
    for i in range(x.shape[0]):
        pad = torch.nn.functional.pad(x[i].detach(), (2, 2, 2, 2), value=-1.0)
        assert any(torch.equal(moved[i].detach(), pad[:, dy:dy + 16, dx:dx + 16])
                   for dy in range(5) for dx in range(5)), i
    moved.sum().backward()
    assert ((x.grad == 0) | (x.grad == 1)).all() and x.grad.sum() > 0.5 * x.numel()
    cut = augment(x.detach(), ("cutout",))
    holes = (cut != x.detach()).flatten(1).sum(1)
    assert torch.all(holes <= 64) and torch.all(holes > 0)  # an 8x8 hole set to -1 (x is never -1 here)
    assert augment(x, ()) is x


def test_augment_option_is_validated():
    assert parse_augment(" translation, cutout ") == ("translation", "cutout")
    with pytest.raises(ConfigError, match="unknown augmentation 'flip'.*translation, cutout"):
        parse_augment("translation,flip")


def test_r1_ttur_and_augment_step():
    spec = zoo.get_spec("dcgan-mnist")
    recipe = MnistRecipe(spec, MnistRecipe.Options(r1=5.0, lr_d=4e-4, augment="translation,cutout"))
    modules = recipe.prepare(torch.device("cpu"))
    assert recipe.optimizers["D"].param_groups[0]["lr"] == 4e-4
    assert recipe.optimizers["G"].param_groups[0]["lr"] == 2e-4
    before = [p.clone() for p in modules["D"].parameters()]
    losses = recipe.step((torch.rand(4, 1, 28, 28) * 2 - 1,), 0)
    assert losses["r1"] > 0 and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, modules["D"].parameters()))
    with pytest.raises(ConfigError, match="--r1"):
        MnistRecipe(spec, MnistRecipe.Options(r1=-1.0)).build(torch.device("cpu"))


def test_top_k_generator_loss_uses_the_fakes_d_rates_most_real():
    import copy

    import torch.nn.functional as F

    spec = zoo.get_spec("dcgan-mnist")
    recipe = MnistRecipe(spec, MnistRecipe.Options(top_k=0.5))
    modules = recipe.prepare(torch.device("cpu"))
    for m in modules["D"].modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    G_before = copy.deepcopy(modules["G"])
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    torch.manual_seed(0)  # the step's latents are the first random numbers drawn after this
    losses = recipe.step((real,), 0)
    torch.manual_seed(0)
    with torch.no_grad():
        d = modules["D"](G_before(torch.randn(8, 100)))
    best = d.topk(4).values
    assert losses["loss_g"] == pytest.approx(F.binary_cross_entropy_with_logits(best, torch.ones_like(best)).item(),
                                             rel=1e-5)
    assert losses["loss_g"] != pytest.approx(F.binary_cross_entropy_with_logits(d, torch.ones_like(d)).item(),
                                             rel=1e-3)
    with pytest.raises(ConfigError, match="--top-k must be in"):
        MnistRecipe(spec, MnistRecipe.Options(top_k=0.0)).build(torch.device("cpu"))


def test_infogan_code_loss_head_and_export(tiny_mnist, tmp_path):
    import copy

    import torch.nn.functional as F

    spec = zoo.get_spec("dcgan-mnist")
    recipe = MnistRecipe(spec, MnistRecipe.Options(info_codes=10))
    modules = recipe.prepare(torch.device("cpu"))
    Q = modules["Q"]
    assert modules["G"].categorical == 10 and Q[-1].out_features == 10
    d_params = {id(p) for g in recipe.optimizers["D"].param_groups for p in g["params"]}
    assert all(id(p) in d_params for p in Q.parameters())  # Q learns with D (and G learns through it)
    for m in modules["D"].modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    G0, D0, Q0 = (copy.deepcopy(modules[k]) for k in ("G", "D", "Q"))
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    torch.manual_seed(0)  # the step's latents and codes are the first random numbers drawn after this
    losses = recipe.step((real,), 0)
    torch.manual_seed(0)
    z, codes = G0.draw_latent(8)
    with torch.no_grad():
        fake = G0(z)
        info = F.cross_entropy(Q0(D0.features(fake)), codes)
        d_real, d_fake = D0(real), D0(fake)
    plain = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, 0.9))
             + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    assert losses["info"] == pytest.approx(info.item(), rel=1e-5)
    assert losses["loss_d"] == pytest.approx(plain.item() + info.item(), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(Q0.parameters(), Q.parameters()))

    run = run_training("dcgan-mnist", _flags(tiny_mnist, tmp_path / "run", 1, "--info-codes", "10"))
    assert set(load_checkpoint(run)["modules"]) == {"G", "D", "G_ema", "Q"}
    out, _ = export_run(run, tmp_path / "g.safetensors")
    model = zoo.load("dcgan-mnist", weights=out)
    assert model.categorical == 10 and model.sample(2, seed=0).shape == (2, 1, 28, 28)
    with pytest.raises(ConfigError, match="--info-weight"):
        MnistRecipe(spec, MnistRecipe.Options(info_weight=-1.0)).build(torch.device("cpu"))


def test_mixture_prior_starts_near_the_normal_prior_and_learns_through_the_generator():
    torch.manual_seed(0)
    G = MnistGenerator(mixture=20)
    z, codes = G.draw_latent(20000, generator=torch.Generator().manual_seed(1))
    assert codes is None and z.shape == (20000, 100)
    assert z.mean().abs() < 0.05 and z.var().item() == pytest.approx(1.0, abs=0.1)  # ~N(0, I) at the start
    with torch.no_grad():
        G.prior_mean[3] = 50.0  # every latent of component 3 sits near its mean
        G.prior_log_sigma[3] = -20.0
    z, _ = G.draw_latent(400, generator=torch.Generator().manual_seed(2))
    at_mean = (z - 50.0).abs().amax(1) < 1e-6
    assert 10 < at_mean.sum() < 70  # component 3 is drawn ~1/20 of the time
    G.train()
    z, _ = G.draw_latent(8)
    G(z).square().mean().backward()
    assert G.prior_mean.grad.abs().sum() > 0 and G.prior_log_sigma.grad.abs().sum() > 0
    assert torch.equal(G.eval().sample(4, seed=3), G.sample(4, seed=3))
    with pytest.raises(ConfigError, match="mixture"):
        MnistGenerator(mixture=5, categorical=10)
    with pytest.raises(ConfigError, match="mixture"):
        MnistGenerator(mixture=-1)


def test_mixture_options_are_validated_and_the_prior_has_its_own_rate():
    spec = zoo.get_spec("dcgan-mnist")
    for bad in ({"mixture": -1}, {"mixture": 5, "info_codes": 10}, {"mixture": 5, "mixture_lr": 0.0}):
        with pytest.raises(ConfigError, match="--mixture"):
            MnistRecipe(spec, MnistRecipe.Options(**bad)).prepare(torch.device("cpu"))
    recipe = MnistRecipe(spec, MnistRecipe.Options(mixture=5, mixture_lr=0.05, lr=1e-3, epochs=4, lr_decay=2))
    G = recipe.prepare(torch.device("cpu"))["G"]
    net, prior = recipe.optimizers["G"].param_groups
    assert [p is q for p, q in zip(prior["params"], (G.prior_mean, G.prior_log_sigma))] == [True, True]
    assert len(net["params"]) == len(list(G.parameters())) - 2
    recipe.begin_epoch(3)  # last epoch of the decay: a third of each base rate
    assert (net["lr"], prior["lr"]) == (pytest.approx(1e-3 / 3), pytest.approx(0.05 / 3))


def test_resume_switches_a_normal_prior_run_to_a_mixture(tiny_mnist, tmp_path):
    run = run_training("dcgan-mnist", _flags(tiny_mnist, tmp_path / "run", 1))
    run_training("dcgan-mnist", _flags(tiny_mnist, run, 2, "--resume", "--mixture", "4"))
    ckpt = load_checkpoint(run)
    assert ckpt["epoch"] == 2 and ckpt["options"]["mixture"] == 4
    G = ckpt["modules"]["G"]
    assert G["prior_mean"].shape == G["prior_log_sigma"].shape == (4, 100)
    assert len(ckpt["optimizers"]["G"]["param_groups"]) == 2
    out, _ = export_run(run, tmp_path / "g.safetensors")
    model = zoo.load("dcgan-mnist", weights=out)
    assert model.mixture == 4 and model.sample(2, seed=0).shape == (2, 1, 28, 28)
    run_training("dcgan-mnist", _flags(tiny_mnist, run, 3, "--resume"))  # the saved options keep the mixture
    assert load_checkpoint(run)["modules"]["G"]["prior_mean"].shape == (4, 100)
    with pytest.raises(ConfigError, match="--mixture 4"):
        run_training("dcgan-mnist", _flags(tiny_mnist, run, 4, "--resume", "--mixture", "6"))


def test_dcgan64_trains_on_an_image_folder(tmp_path, register_spec):
    folder = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for i in range(8):
        write_image(folder / f"{i}.png", torch.from_numpy(rng.random((3, 40, 50), dtype=np.float32)))
    base = zoo.get_spec("dcgan-64")
    register_spec(dataclasses.replace(base, name="dcgan-test-32", config={"nz": 8, "ngf": 4, "nc": 3, "image_size": 32}))
    run = run_training("dcgan-test-32", ["--data", str(folder), "--out", str(tmp_path / "run"), "--epochs", "1",
                                         "--batch-size", "4", "--ndf", "4", "--device", "cpu"])
    out, _ = export_run(run, tmp_path / "g.safetensors")
    assert zoo.load("dcgan-test-32", weights=out).sample(2, seed=0).shape == (2, 3, 32, 32)
    pth = tmp_path / "netG_epoch_0.pth"  # as a foreign checkpoint, dcgan-64 infers nz/ngf/nc/image_size
    torch.save(load_checkpoint(run)["export"]["state"], pth)
    assert zoo.load("dcgan-64", weights=pth).sample(2, seed=0).shape == (2, 3, 32, 32)


@pytest.mark.slow
def test_torchrun_two_processes(tiny_mnist, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "zoo",
           "train", "dcgan-mnist", *_flags(tiny_mnist, tmp_path / "run", 1)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["epoch"] == 1 and (tmp_path / "run" / "samples" / "epoch_001.png").is_file()
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 1
