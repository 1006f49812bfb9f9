"""CycleGAN recipe: reference loss pieces (LSGAN/vanilla, image pool, LR schedule) and a tiny end-to-end run
through the engine (train on folders, sample grid, checkpoint, export, load)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.errors import ConfigError
from zoo.train import export_run, make_options, run_training
from zoo.data.unpaired import digits_pair
from zoo_cyclegan.recipe import CycleGANRecipe, ImagePool, gan_loss


def test_gan_losses():
    logits = torch.tensor([[0.5, -1.0]])
    assert gan_loss(logits, True, "lsgan").item() == pytest.approx(((0.5 - 1) ** 2 + 4) / 2)
    assert gan_loss(logits, False, "lsgan").item() == pytest.approx((0.25 + 1) / 2)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    assert gan_loss(logits, True, "vanilla").item() == pytest.approx(expected.item())


def test_image_pool():
    assert ImagePool(0).query(x := torch.randn(3, 1, 2, 2)) is x
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    torch.testing.assert_close(pool.query(first), first)  # filling: returned as given
    seen = set(range(4))
    for step in range(10):
        new = torch.full((2, 1, 1, 1), 10.0 + step)
        out = pool.query(new)
        assert out.shape == new.shape
        assert all(v in seen or v == 10.0 + step for v in out.flatten().tolist())
        seen.add(10.0 + step)
    restored = ImagePool(4)
    restored.load(pool.state(), torch.device("cpu"))
    torch.testing.assert_close(torch.cat(restored.images), torch.cat(pool.images))


def _folders(root, n=6, size=20):
    rng = np.random.default_rng(0)
    for sub, mode in (("trainA", "RGB"), ("trainB", "L"), ("testA", "RGBA")):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            shape = (size, size + i, 4 if mode == "RGBA" else 3) if mode != "L" else (size + i, size)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / sub / f"{i}.png")
    (root / "testB").mkdir()
    Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), "P").save(root / "testB" / "p.png")


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_linear_decay_schedule_follows_the_reference():
    spec = zoo.get_spec("cyclegan-digits")
    opts = make_options(spec, epochs=4, n_epochs_decay=2, lr=1.0, ngf=2, n_blocks=1, ndf=2)
    recipe = CycleGANRecipe(spec, opts)
    _, optimizers = recipe.build(torch.device("cpu"))
    lrs = []
    for epoch in range(4):
        lrs.append(optimizers["G"].param_groups[0]["lr"])
        recipe.end_epoch(epoch)
    assert lrs == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3])


def test_identity_loss_needs_equal_channels():
    spec = zoo.get_spec("cyclegan-digits")
    recipe = CycleGANRecipe(spec, make_options(spec, ngf=2, n_blocks=1))
    recipe.spec = type(spec)(**{**spec.__dict__, "config": {**spec.config, "output_nc": 3}})
    with pytest.raises(ConfigError, match="lambda-identity 0"):
        recipe.build(torch.device("cpu"))


@pytest.mark.parametrize("gan_mode", ["lsgan", "vanilla"])
def test_tiny_training_run_exports_a_loadable_pair(tmp_path, gan_mode):
    _folders(tmp_path / "data")
    run = run_training("cyclegan-digits", ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                                           "--epochs", "2", "--batch-size", "2", "--ngf", "4", "--n-blocks", "1",
                                           "--ndf", "4", "--n-layers-d", "2", "--load-size", "18", "--crop-size", "16",
                                           "--pool-size", "3", "--gan-mode", gan_mode])
    assert (run / "samples" / "epoch_002.png").is_file()
    grid = Image.open(run / "samples" / "epoch_002.png")
    assert grid.size == (8 * 18 + 2, 6 * 18 + 2)  # rows A, G(A), F(G(A)), B, F(B), G(F(B)) of 8
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and {"G_gan", "cycle", "idt", "D_A", "D_B"} <= set(log[0])
    path, _sha = export_run(run, tmp_path / "pair.safetensors")
    pair = zoo.load("cyclegan-digits", weights=path)
    assert (pair.G_A.ngf, pair.G_A.n_blocks, pair.in_channels) == (4, 1, 1)
    with torch.no_grad():
        assert pair(torch.zeros(1, 1, 16, 16), direction="BtoA").shape == (1, 1, 16, 16)


def _digits_recipe(**overrides) -> CycleGANRecipe:
    spec = zoo.get_spec("cyclegan-digits")
    recipe = CycleGANRecipe(spec, make_options(spec, ngf=2, n_blocks=1, ndf=2, **overrides))
    recipe.build(torch.device("cpu"))
    return recipe


@pytest.mark.parametrize("overrides, message", [
    ({"lambda_semantic": -1.0}, "--lambda-semantic must be >= 0"),
    ({"lambda_semantic": 1.0, "data": "some/folders"}, "needs the built-in digits pair"),
])
def test_semantic_loss_options_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _digits_recipe(**overrides)


def test_semantic_loss_measures_whether_the_reader_keeps_the_digit():
    """Off by default (no reader, zero loss); on, it is small when the translation shows the source's digit (in
    either domain's style) and large when it shows another, it scales with --lambda-semantic, and its gradient
    reaches the translation, not the frozen reader."""
    test = digits_pair("test")
    zeros, ones = (test["A"][test["labels_A"] == c][:8] for c in (0, 1))
    uci_zeros = test["B"][test["labels_B"] == 0][:8]
    off = _digits_recipe()
    assert off.reader is None and off._semantic_loss(zeros, ones).item() == 0.0

    on, doubled = _digits_recipe(lambda_semantic=1.0), _digits_recipe(lambda_semantic=2.0)
    same, other = on._semantic_loss(zeros, zeros.clone()), on._semantic_loss(zeros, ones)
    assert same.item() < 0.1 < 2.0 < other.item()
    assert on._semantic_loss(zeros, uci_zeros).item() < 0.1  # a 0 in the other style keeps the digit
    torch.testing.assert_close(doubled._semantic_loss(zeros, ones), 2 * other)

    fake = ones.clone().requires_grad_(True)
    on._semantic_loss(zeros, fake).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in on.reader.parameters())
