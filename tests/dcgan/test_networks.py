"""DCGAN networks: shapes, parameter counts, pytorch/examples key compatibility, checkpoint adapters, sampling."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.errors import ConfigError
from zoo_dcgan.networks import (Dcgan64Discriminator, Dcgan64Generator, MnistDiscriminator, MnistGenerator,
                                infer_dcgan64_config, strip_module_prefix)

from .reference_dcgan import Discriminator as RefD
from .reference_dcgan import Generator as RefG


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_mnist_generator_layout_and_shapes():
    g = MnistGenerator().eval()
    # Linear 100->7*7*256 (no bias) + BN1d; ConvT 256->128, 128->64, 64->1 (5x5, no bias) + 2 BN2d
    expected = 100 * 12544 + 2 * 12544 + 256 * 128 * 25 + 2 * 128 + 128 * 64 * 25 + 2 * 64 + 64 * 25
    assert _params(g) == expected
    out = g(torch.randn(3, 100))
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1
    assert g.latent_dim == 100
    with pytest.raises(ConfigError, match=r"\(N, 100\)"):
        g(torch.randn(3, 99))


def test_mnist_discriminator_layout():
    d = MnistDiscriminator()
    assert d(torch.randn(5, 1, 28, 28)).shape == (5,)
    assert _params(d) == 64 * 25 + 64 + 64 * 128 * 25 + 128 + 128 * 49 + 1
    assert type(d.main[1]).__name__ == "FusedLeakyReLU" and d.main[1].negative_slope == pytest.approx(0.2)
    assert isinstance(d.main[2], torch.nn.Dropout) and d.main[2].p == pytest.approx(0.3)


def test_sample_is_seeded_and_leaves_global_rng_alone():
    g = MnistGenerator().eval()
    state = torch.get_rng_state()
    a, b, c = g.sample(4, seed=1), g.sample(4, seed=1), g.sample(4, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert g.sample(2).shape == (2, 1, 28, 28)
    with pytest.raises(ConfigError):
        g.sample(0)


def test_categorical_latent_prior_is_one_hot_uniform_and_drives_sample():
    g = MnistGenerator(categorical=10).eval()
    z, codes = g.draw_latent(2000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2000, 100) and codes.shape == (2000,)
    assert torch.equal(z[:, :10], torch.nn.functional.one_hot(codes, 10).float())
    assert torch.bincount(codes, minlength=10).min() > 150  # uniform: 200 expected per code
    assert z[:, 10:].std().item() == pytest.approx(1.0, abs=0.02)
    z4, _ = g.draw_latent(4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(g.sample(4, seed=3), g(z4).clamp(-1, 1))
    plain = MnistGenerator()  # without a code the prior is the plain N(0, I) draw, as before
    z0, c0 = plain.draw_latent(4, generator=torch.Generator().manual_seed(1))
    assert c0 is None and torch.equal(z0, torch.randn(4, 100, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ConfigError, match=r"categorical must be in \[0, latent_dim=100\), got 100"):
        MnistGenerator(categorical=100)


@pytest.mark.parametrize("size, n_g, n_d", [(32, 11, 9), (64, 14, 12), (128, 17, 15)])
def test_dcgan64_sizes_add_or_remove_a_stage(size, n_g, n_d):
    g = Dcgan64Generator(nz=8, ngf=4, nc=3, image_size=size).eval()
    d = Dcgan64Discriminator(nc=3, ndf=4, image_size=size)
    assert len(g.main) == n_g and len(d.main) == n_d
    x = g(torch.randn(2, 8))
    assert x.shape == (2, 3, size, size)
    assert d(x).shape == (2,)
    assert infer_dcgan64_config(g.state_dict()) == {"nz": 8, "ngf": 4, "nc": 3, "image_size": size}


def test_dcgan64_bad_size():
    with pytest.raises(ConfigError, match="power of two"):
        Dcgan64Generator(image_size=48)


def test_keys_and_shapes_match_pytorch_examples():
    torch.manual_seed(0)
    ref_g, ref_d = RefG(nz=100, ngf=64, nc=3), RefD(nc=3, ndf=64)
    g, d = Dcgan64Generator(), Dcgan64Discriminator()
    for ours, ref in ((g, ref_g), (d, ref_d)):
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    assert "main.12.weight" in g.state_dict() and "main.11.weight" in d.state_dict()
    d.load_state_dict(ref_d.state_dict())
    ref_d.eval(), d.eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(torch.sigmoid(d(x)), ref_d(x), atol=1e-6)  # ours returns logits


def test_pytorch_examples_checkpoint_loads_unchanged(tmp_path):
    torch.manual_seed(0)
    ref = RefG(nz=100, ngf=16, nc=1)
    for m in ref.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "netG_epoch_24.pth"
    torch.save(ref.state_dict(), path)
    model = zoo.load("dcgan-64", weights=str(path))
    assert (model.latent_dim, model.nc, model.image_size) == (100, 1, 64)
    ref.eval()
    z = torch.randn(3, 100)
    assert torch.allclose(model(z), ref(z[:, :, None, None]), atol=1e-5)
    # a DataParallel-wrapped save (module. prefix) loads as well
    wrapped = tmp_path / "netG_dp.pth"
    torch.save({"module." + k: v for k, v in ref.state_dict().items()}, wrapped)
    assert torch.allclose(zoo.load("dcgan-64", weights=str(wrapped))(z), ref(z[:, :, None, None]), atol=1e-5)


def test_adapters():
    assert strip_module_prefix({"module.main.0.weight": 1, "main.1.bias": 2}) == {"main.0.weight": 1, "main.1.bias": 2}
    with pytest.raises(ConfigError, match="DCGAN generator"):
        infer_dcgan64_config({"foo": torch.zeros(1)})


def test_dcgan_mnist_files_load_with_either_latent_prior(tmp_path):
    from zoo.weights import save_weights

    for k in (0, 3):  # N(0, I) (as exported before --mixture existed) and a 3-component mixture
        torch.manual_seed(k)
        g = MnistGenerator(mixture=k).eval()
        save_weights(tmp_path / f"g{k}.safetensors", g.state_dict())
        torch.save(g.state_dict(), tmp_path / f"g{k}.pth")
        for path in (tmp_path / f"g{k}.safetensors", tmp_path / f"g{k}.pth"):
            model = zoo.load("dcgan-mnist", weights=path)
            assert model.mixture == k, path
            assert torch.equal(model.sample(2, seed=0), g.sample(2, seed=0))
