"""A small digit/image classifier CNN used as the evaluation model: class confidences and FID features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import ConfigError


class DigitClassifier(nn.Module):
    """Two conv blocks + MLP head; input (N, in_channels, image_size, image_size) in [-1, 1], output logits."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, feature_dim: int = 128):
        super().__init__()
        if image_size % 4 != 0 or image_size < 8:
            raise ConfigError(f"DigitClassifier image_size must be a multiple of 4 and >= 8, got {image_size}")
        if in_channels < 1 or num_classes < 2:
            raise ConfigError(f"DigitClassifier needs in_channels >= 1 and num_classes >= 2, got {in_channels}, {num_classes}")
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(64 * (image_size // 4) ** 2, feature_dim), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, num_classes))

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features (N, feature_dim): the representation FID is computed on."""
        self._check_input(x)
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))

    def _check_input(self, x: Tensor) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ConfigError(f"classifier input must have shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")


def _augment(x: Tensor, gen: torch.Generator, max_shift: int = 2) -> Tensor:
    """Random integer translation by up to `max_shift` pixels (background -1 fill): cheap, label-preserving."""
    n = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    h, w = x.shape[-2:]
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (n, w)
    idx_n = torch.arange(n)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def fit_classifier(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    augment: bool = True,
) -> nn.Module:
    """Train `model` in place with Adam + cosine LR + small random shifts; deterministic for a given seed."""
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ConfigError(f"fit_classifier needs as many labels as images (> 0), got {images.shape[0]} and {labels.shape[0]}")
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"fit_classifier needs epochs >= 1 and batch_size >= 1, got {epochs}, {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), torch.enable_grad():  # trains under a caller's no_grad too
        torch.manual_seed(seed)  # dropout masks
        device = next(model.parameters()).device
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        steps_per_epoch = (images.shape[0] + batch_size - 1) // batch_size
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
        labels = labels.long()
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(images.shape[0], generator=gen)
            for i in range(0, images.shape[0], batch_size):
                idx = perm[i:i + batch_size]
                x = images[idx]
                if augment:
                    x = _augment(x, gen)
                loss = F.cross_entropy(model(x.to(device)), labels[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    model.eval()
    return model


@torch.no_grad()
def predict_proba(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """Class probabilities (N, num_classes) in eval mode; the model's mode is restored afterwards."""
    return _batched(model, images, batch_size, lambda m, x: torch.softmax(m(x), dim=1))


@torch.no_grad()
def classifier_features(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """Penultimate-layer features (N, D) of `model` (which must define `embed`), as float64 for FID statistics."""
    return _batched(model, images, batch_size, lambda m, x: m.embed(x)).double()


def _batched(model: nn.Module, images: Tensor, batch_size: int, fn) -> Tensor:
    """Run `fn(model, batch)` over `images` in eval mode and concatenate the CPU results."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        outs = [fn(model, images[i:i + batch_size].to(device, torch.float32)).cpu()
                for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    if not outs:
        raise ConfigError("the classifier needs at least one image")
    return torch.cat(outs)
