"""Full-reference image quality: PSNR and SSIM on RGB or on the Y channel of YCbCr, with the usual SR border crop.

Conventions follow the super-resolution literature (and BasicSR): Y is ITU-R BT.601 "studio swing" luma
(16..235 for 8-bit, as MATLAB's rgb2ycbcr), `crop_border` = scale pixels are dropped on each side, SSIM uses the
11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, evaluated on the valid region (Wang et al. 2004).
Images are float tensors in [0, data_range], (C, H, W) or (N, C, H, W); batches give the mean over images.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zoo.errors import ConfigError

_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma Y in [16/255, 235/255] of RGB images in [0, 1] (BT.601, as MATLAB rgb2ycbcr); keeps the channel dim."""
    if x.shape[-3] != 3:
        raise ConfigError(f"rgb_to_y needs 3 channels, got shape {tuple(x.shape)}")
    r, g, b = x.unbind(-3)
    return (16.0 / 255.0 + _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b).unsqueeze(-3)


def _prepare(x: torch.Tensor, y: torch.Tensor, crop_border: int, y_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate, batch, convert to Y if asked (grayscale stays as is) and crop the border, in float64."""
    if x.shape != y.shape:
        raise ConfigError(f"images to compare must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() not in (3, 4) or x.shape[-3] not in (1, 3):
        raise ConfigError(f"expected images (C, H, W) or (N, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    if crop_border < 0:
        raise ConfigError(f"crop_border must be >= 0, got {crop_border}")
    x, y = x.detach().double(), y.detach().double()
    if x.dim() == 3:
        x, y = x[None], y[None]
    if y_channel and x.shape[1] == 3:
        x, y = rgb_to_y(x), rgb_to_y(y)
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
        y = y[..., crop_border:-crop_border, crop_border:-crop_border]
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ConfigError(f"images are too small for crop_border={crop_border}")
    return x, y


def psnr(x: torch.Tensor, y: torch.Tensor, *, crop_border: int = 0, y_channel: bool = False,
         data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images); mean over a batch."""
    a, b = _prepare(x, y, crop_border, y_channel)
    mse = (a - b).pow(2).flatten(1).mean(1)
    values = [math.inf if m == 0 else 10.0 * math.log10(data_range ** 2 / m) for m in mse.tolist()]
    return sum(values) / len(values)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 2-D Gaussian window (size x size)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(x: torch.Tensor, y: torch.Tensor, *, crop_border: int = 0, y_channel: bool = False,
         data_range: float = 1.0) -> float:
    """Structural similarity (11x11 Gaussian, sigma 1.5) averaged over channels and valid pixels; batch mean."""
    a, b = _prepare(x, y, crop_border, y_channel)
    if min(a.shape[-2:]) < 11:
        raise ConfigError(f"SSIM needs images of at least 11x11 after cropping, got {tuple(a.shape[-2:])}")
    c = a.shape[1]
    window = _gaussian_window().to(a.device).expand(c, 1, 11, 11)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    blur = lambda t: F.conv2d(t, window, groups=c)  # noqa: E731  (valid region only)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1).mean().item()
