"""A tiny generation model and recipe used to test the core without any real plugin."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

import zoo
from zoo.train import Recipe, TrainOptions


class TinyGenerator(nn.Module):
    """latent -> 1x4x4 image in [-1, 1]."""

    def __init__(self, latent_dim: int = 3, width: int = 8) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, 16), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 4, 4)

    def sample(self, n: int, *, seed: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.latent_dim, generator=gen).to(next(self.parameters()).device)
        return self(z)


def build_tiny(latent_dim: int = 3, width: int = 8) -> TinyGenerator:
    return TinyGenerator(latent_dim, width)


@dataclass
class TinyOptions(TrainOptions):
    batch_size: int = 4
    noise_scale: float = field(default=1.0, metadata={"help": "scale of the latent noise"})


class TinyRecipe(Recipe):
    """Regress generated images towards a fixed random data set (a stand-in for a GAN step)."""

    Options = TinyOptions

    def build(self, device):
        self.G = build_tiny(**self.spec.config).to(device)
        return {"G": self.G}, {"G": torch.optim.Adam(self.G.parameters(), lr=self.opts.lr)}

    def dataset(self):
        data = torch.randn(32, 1, 4, 4, generator=torch.Generator().manual_seed(123)).tanh()
        return torch.utils.data.TensorDataset(data)

    def step(self, batch, it):
        (real,) = batch
        z = torch.randn(real.shape[0], self.G.latent_dim, device=real.device) * self.opts.noise_scale
        loss = (self.G(z) - real).pow(2).mean()
        self.optimize("G", loss)
        return {"loss": loss.item()}

    def sample_images(self):
        return self.G.sample(4, seed=0)

    def export_module(self):
        return self.G


def tiny_spec(name: str = "tiny-gen", **kw) -> zoo.ModelSpec:
    return zoo.ModelSpec(name=name, task="generation", builder=build_tiny, recipe=TinyRecipe,
                         architecture="tiny MLP", **kw)
