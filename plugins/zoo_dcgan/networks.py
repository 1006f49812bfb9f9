"""DCGAN networks: the 28x28 MNIST design and the Radford et al. design keyed like pytorch/examples' dcgan/main.py."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo import ops
from zoo.errors import ConfigError

MIXTURE_INIT_SIGMA = 0.7


class _Sampler(nn.Module):
    """Shared generator behaviour: `latent_dim`, the latent prior (`draw_latent`) and reproducible
    `sample(n, seed=...)` with a local RNG."""

    latent_dim: int
    categorical: int = 0  # InfoGAN-style: the first `categorical` latent dims are a one-hot code, the rest N(0, 1)
    mixture: int = 0  # DeLiGAN-style: z from a uniform mixture of `mixture` learned diagonal Gaussians

    def _init_mixture(self, components: int) -> None:
        """Learned prior parameters: means ~ N(0, (1 - s^2) I) and scales s = MIXTURE_INIT_SIGMA, so the mixture
        starts as an approximation of N(0, I) (a generator trained on N(0, I) can switch to it and go on)."""
        self.mixture = components
        if components:
            s = MIXTURE_INIT_SIGMA
            self.prior_mean = nn.Parameter(torch.randn(components, self.latent_dim) * math.sqrt(1 - s * s))
            self.prior_log_sigma = nn.Parameter(torch.full((components, self.latent_dim), math.log(s)))

    def draw_latent(self, n: int, *, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> tuple[Tensor, Tensor | None]:
        """`n` latents from the generator's prior and their codes: z ~ N(0, I), with the first `categorical` dims
        replaced by a one-hot code drawn uniformly (codes (n,) int64, or None without a categorical code); with a
        mixture, z = mean_k + sigma_k * eps for a uniformly drawn component k, differentiable in the prior's
        parameters (codes None)."""
        if self.mixture:
            k = torch.randint(0, self.mixture, (n,), generator=generator)
            eps = torch.randn(n, self.latent_dim, generator=generator)
            mean = self.prior_mean
            k, eps = k.to(mean.device), eps.to(mean.device, mean.dtype)
            z = mean[k] + self.prior_log_sigma[k].exp() * eps
            return (z if device is None else z.to(device)), None
        z = torch.randn(n, self.latent_dim, generator=generator)
        codes = None
        if self.categorical:
            codes = torch.randint(0, self.categorical, (n,), generator=generator)
            z[:, :self.categorical] = nn.functional.one_hot(codes, self.categorical).to(z.dtype)
            codes = codes.to(device)
        return z.to(device), codes

    def _latent(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            if not (z.dim() == 4 and z.shape[1] == self.latent_dim and z.shape[2:] == (1, 1)):
                raise ConfigError(f"latent input must have shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return z.reshape(z.shape[0], self.latent_dim)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None) -> Tensor:
        """`n` images in [-1, 1] from latents of the prior (`draw_latent`); the same seed gives the same images."""
        if n < 1:
            raise ConfigError(f"number of samples must be >= 1, got {n}")
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        z, _ = self.draw_latent(n, generator=gen)
        param = next(self.parameters())
        return self(z.to(param.device, param.dtype)).float().clamp_(-1, 1)


class MnistGenerator(_Sampler):
    """z (N,100) -> Linear 7x7x256 -> BN -> LReLU -> ConvT5 128 (s1) -> 64 (s2) -> 1 (s2) -> tanh: (N,1,28,28)."""

    def __init__(self, latent_dim: int = 100, channels: int = 1, width: int = 64, negative_slope: float = 0.2,
                 categorical: int = 0, mixture: int = 0):
        super().__init__()
        if latent_dim < 1 or channels < 1 or width < 1:
            raise ConfigError(f"latent_dim, channels and width must be >= 1, got {latent_dim}, {channels}, {width}")
        if not 0 <= categorical < latent_dim:
            raise ConfigError(f"categorical must be in [0, latent_dim={latent_dim}), got {categorical}")
        if mixture < 0 or (mixture and categorical):
            raise ConfigError(f"mixture must be >= 0 and cannot be combined with a categorical code, got "
                              f"mixture={mixture}, categorical={categorical}")
        self.latent_dim, self.channels, self.categorical = latent_dim, channels, categorical
        self._init_mixture(mixture)
        w4, w2 = 4 * width, 2 * width
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 7 * 7 * w4, bias=False), nn.BatchNorm1d(7 * 7 * w4), nn.LeakyReLU(negative_slope)
        )
        self.main = nn.Sequential(
            nn.ConvTranspose2d(w4, w2, 5, 1, 2, bias=False), nn.BatchNorm2d(w2), nn.LeakyReLU(negative_slope),
            nn.ConvTranspose2d(w2, width, 5, 2, 2, output_padding=1, bias=False), nn.BatchNorm2d(width),
            nn.LeakyReLU(negative_slope),
            nn.ConvTranspose2d(width, channels, 5, 2, 2, output_padding=1, bias=False), nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(self._latent(z))
        return self.main(h.view(h.shape[0], -1, 7, 7))


class MnistDiscriminator(nn.Module):
    """(N,1,28,28) -> Conv5 s2 64 -> LReLU(0.2) -> Dropout(0.3) -> Conv5 s2 128 -> LReLU -> Dropout -> Linear: logits."""

    def __init__(self, channels: int = 1, width: int = 64, dropout: float = 0.3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, width, 5, 2, 2, bias=False), ops.FusedLeakyReLU(width, negative_slope=0.2),
            nn.Dropout(dropout),
            nn.Conv2d(width, 2 * width, 5, 2, 2, bias=False), ops.FusedLeakyReLU(2 * width, negative_slope=0.2),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(2 * width * 7 * 7, 1)

    def features(self, x: Tensor) -> Tensor:
        """The flattened features the logit head reads (shared with auxiliary heads such as InfoGAN's)."""
        return self.main(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)


def _stages(image_size: int) -> int:
    """Number of stride-2 stages between 4x4 and `image_size` (3 for 32, 4 for 64, 5 for 128)."""
    stages = math.log2(image_size) - 2 if image_size > 0 else -1
    if stages < 1 or stages != int(stages):
        raise ConfigError(f"dcgan-64 image_size must be a power of two >= 8 (e.g. 32, 64, 128), got {image_size}")
    return int(stages)


class Dcgan64Generator(_Sampler):
    """Radford et al. generator; `main.<i>` keys/shapes match pytorch/examples' netG (main.0 ... main.12 at 64x64)."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64):
        super().__init__()
        stages = _stages(image_size)
        self.latent_dim, self.nc, self.image_size = nz, nc, image_size
        ch = ngf * 2 ** (stages - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(self._latent(z)[:, :, None, None])


class Dcgan64Discriminator(nn.Module):
    """Radford et al. discriminator keyed like pytorch/examples' netD (main.0 ... main.11); returns logits (N,)."""

    def __init__(self, nc: int = 3, ndf: int = 64, image_size: int = 64):
        super().__init__()
        stages = _stages(image_size)
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), ops.LeakyReLU(0.2)]
        ch = ndf
        for _ in range(stages - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), ops.LeakyReLU(0.2)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x).flatten()


def build_mnist_generator(latent_dim: int = 100, channels: int = 1, width: int = 64, categorical: int = 0,
                          mixture: int = 0) -> MnistGenerator:
    """Builder of the `dcgan-mnist` generator (registry entry point)."""
    return MnistGenerator(latent_dim=latent_dim, channels=channels, width=width, categorical=categorical,
                          mixture=mixture)


def build_dcgan64_generator(nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64) -> Dcgan64Generator:
    """Builder of the `dcgan-64` generator (registry entry point)."""
    return Dcgan64Generator(nz=nz, ngf=ngf, nc=nc, image_size=image_size)


def strip_module_prefix(state_dict: dict) -> dict:
    """Key adapter for checkpoints saved from DataParallel/DDP wrappers: `module.main.0.weight` -> `main.0.weight`."""
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def infer_mnist_config(state_dict: dict) -> dict:
    """The latent prior of a dcgan-mnist state dict: a learned mixture (its component count) or N(0, I), so files
    saved either way load whatever prior the shipped weights use."""
    prior = state_dict.get("prior_mean")
    return {"mixture": int(prior.shape[0]) if prior is not None else 0}


def infer_dcgan64_config(state_dict: dict) -> dict:
    """nz/ngf/nc/image_size of a pytorch/examples-style netG state dict (from its ConvTranspose weight shapes)."""
    convs = sorted(
        (int(k.split(".")[1]), v) for k, v in state_dict.items()
        if k.startswith("main.") and k.endswith(".weight") and getattr(v, "dim", lambda: 0)() == 4
    )
    if len(convs) < 2:
        raise ConfigError("not a DCGAN generator state dict: expected ConvTranspose weights main.<i>.weight (4-D)")
    first, last = convs[0][1], convs[-1][1]
    return {"nz": int(first.shape[0]), "ngf": int(last.shape[0]), "nc": int(last.shape[1]),
            "image_size": 4 * 2 ** (len(convs) - 1)}
