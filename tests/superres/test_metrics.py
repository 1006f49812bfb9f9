"""PSNR / SSIM: hand-computed cases and agreement with scikit-image."""
import math

import pytest
import torch

from zoo.errors import ConfigError
from zoo.metrics.image import psnr, rgb_to_y, ssim


def test_psnr_hand_computed():
    x = torch.full((3, 16, 16), 0.5)
    assert psnr(x, x + 0.1) == pytest.approx(20.0)  # MSE 0.01 -> 10 log10(1/0.01)
    assert psnr(x, x) == math.inf
    # the border crop removes exactly `crop_border` pixels per side: errors only there don't count
    y = x.clone()
    y[:, :2] += 0.5
    y[:, :, -2:] += 0.5
    assert psnr(x, y, crop_border=2) == math.inf
    assert psnr(x, y, crop_border=1) < 20


def test_y_channel_bt601():
    white, black = torch.ones(3, 1, 1), torch.zeros(3, 1, 1)
    assert rgb_to_y(white).item() == pytest.approx(235 / 255)
    assert rgb_to_y(black).item() == pytest.approx(16 / 255)
    # a pure-blue error shows up in Y with weight 24.966/255
    x = torch.zeros(3, 12, 12)
    y = x.clone()
    y[2] += 0.5
    expected = 10 * math.log10(1 / (0.5 * 24.966 / 255) ** 2)
    assert psnr(x, y, y_channel=True) == pytest.approx(expected)
    # grayscale images are their own Y
    g = torch.rand(1, 12, 12)
    assert psnr(g, g * 0.9, y_channel=True) == psnr(g, g * 0.9)


def test_ssim_hand_computed_constant_images():
    a, b = 0.2, 0.3
    c1 = 0.01 ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # zero variances: the contrast/structure term is 1
    assert ssim(torch.full((1, 20, 20), a), torch.full((1, 20, 20), b)) == pytest.approx(expected)
    x = torch.rand(3, 20, 20)
    assert ssim(x, x) == pytest.approx(1.0)


def test_batches_average_per_image():
    x = torch.rand(2, 3, 16, 16)
    y = x + torch.tensor([0.01, 0.1]).view(2, 1, 1, 1)
    assert psnr(x, y) == pytest.approx((40 + 20) / 2)
    assert ssim(x, y) == pytest.approx((ssim(x[0], y[0]) + ssim(x[1], y[1])) / 2)


def test_against_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 40, 48, generator=g)
    y = (x + 0.1 * torch.randn(3, 40, 48, generator=g)).clamp(0, 1)
    xn, yn = x.permute(1, 2, 0).double().numpy(), y.permute(1, 2, 0).double().numpy()
    assert psnr(x, y) == pytest.approx(metrics.peak_signal_noise_ratio(xn, yn, data_range=1.0), rel=1e-9)
    ref = metrics.structural_similarity(xn, yn, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False)
    assert ssim(x, y) == pytest.approx(ref, abs=1e-6)
    yx, yy = rgb_to_y(x)[0, 4:-4, 4:-4].double().numpy(), rgb_to_y(y)[0, 4:-4, 4:-4].double().numpy()
    ref_y = metrics.structural_similarity(yx, yy, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)
    assert ssim(x, y, y_channel=True, crop_border=4) == pytest.approx(ref_y, abs=1e-6)


def test_bad_inputs():
    with pytest.raises(ConfigError, match="same shape"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 9))
    with pytest.raises(ConfigError, match="C = 1 or 3"):
        psnr(torch.rand(4, 8, 8), torch.rand(4, 8, 8))
    with pytest.raises(ConfigError, match="11x11"):
        ssim(torch.rand(1, 16, 16), torch.rand(1, 16, 16), crop_border=4)
