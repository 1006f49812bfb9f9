"""Generation task: latent -> image. Models expose `latent_dim` and `sample(n, *, seed=None)` in [-1, 1]."""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn

import zoo
from zoo.errors import ConfigError
from zoo.imageio import save_grid

MAX_SAMPLES = 4096


def check_generator(module: nn.Module, name: str = "model") -> None:
    """Raise if `module` does not follow the generation contract."""
    if not isinstance(getattr(module, "latent_dim", None), int) or not callable(getattr(module, "sample", None)):
        raise ConfigError(f"{name} is not a generation model: it needs an int `latent_dim` and a `sample(n, seed=)`")


def sample(module: nn.Module, n: int, *, seed: int | None = None) -> torch.Tensor:
    """`n` images (N, C, H, W) in [-1, 1] from a generation model, reproducible for a given seed."""
    check_generator(module)
    if not 1 <= n <= MAX_SAMPLES:
        raise ConfigError(f"number of images must be between 1 and {MAX_SAMPLES}, got {n}")
    with torch.inference_mode():
        return module.sample(n, seed=seed).clamp(-1, 1)


def generate_grid(name: str, n: int, output: str | os.PathLike, *, seed: int | None = 0, nrow: int | None = None,
                  weights: str | None = None, device: str | None = None) -> Path:
    """Load model `name`, sample `n` images and write them as one grid image; returns the path."""
    spec = zoo.get_spec(name)
    if spec.task != "generation":
        raise ConfigError(f"model {name!r} is a {spec.task} model; `generate` needs a generation model")
    module = zoo.load(name, weights=weights, device=device)
    check_generator(module, f"model {name!r}")
    images = sample(module, n, seed=seed)
    return save_grid(output, images, nrow or math.ceil(math.sqrt(n)))
