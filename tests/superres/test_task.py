"""Tiled upscaling (== untiled with enough overlap), exact sizes, grayscale/RGBA/16-bit files, CLI, evaluation."""
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.cli.main import main
from zoo.data.sr import default_photo_paths, downsample, load_photo
from zoo.errors import ConfigError, DataError
from zoo.metrics.image import psnr
from zoo.tasks.superres import bicubic, evaluate, upscale, upscale_file
from zoo.weights import save_weights
from zoo_superres.networks import build_espcn, build_rrdbnet


def _espcn(scale=2, residual=False, in_channels=3, seed=0):
    torch.manual_seed(seed)
    m = build_espcn(scale=scale, residual=residual, in_channels=in_channels).eval()
    with torch.no_grad():  # bias the output towards mid-grey so little is clamped away
        m.conv3.bias.fill_(0.0 if residual else 0.5)
    return m


def _bicubic_model():
    m = _espcn(residual=True)
    with torch.no_grad():
        m.conv3.weight.zero_()
    return m


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("tile,overlap", [(16, 4), (16, 8), (10, 16)])
def test_tiled_equals_untiled_espcn(residual, tile, overlap):
    m = _espcn(scale=3, residual=residual)
    assert overlap >= m.receptive_field
    x = torch.rand(3, 37, 53)
    full, _ = upscale(m, x)
    tiled, _ = upscale(m, x, tile=tile, overlap=overlap)
    assert full.shape == tiled.shape == (3, 111, 159)
    assert (full - tiled).abs().max() < 1e-4


def test_tiled_pixel_unshuffle_model_odd_size():
    torch.manual_seed(0)
    m = build_rrdbnet(scale=2, num_feat=4, num_block=1, num_grow_ch=4).eval()
    x = torch.rand(3, 13, 17)
    full, _ = upscale(m, x)
    assert full.shape == (3, 26, 34)  # exact scale x size although 13, 17 are not multiples of 2
    tiled, _ = upscale(m, x, tile=8, overlap=m.receptive_field)
    assert (full - tiled).abs().max() < 1e-4


def test_small_overlap_still_exact_size_and_range():
    m = _espcn(scale=2)
    out, _ = upscale(m, torch.rand(3, 20, 30), tile=7, overlap=0)
    assert out.shape == (3, 40, 60) and out.min() >= 0 and out.max() <= 1


def test_grayscale_and_alpha():
    m = _bicubic_model()
    gray = torch.rand(1, 12, 10)
    out, none = upscale(m, gray)
    assert out.shape == (1, 24, 20) and none is None
    assert torch.allclose(out, bicubic(gray, 2), atol=1e-5)  # replicated to RGB and averaged back
    alpha = torch.zeros(12, 10)
    alpha[:, 5:] = 1
    rgb, a = upscale(m, torch.rand(3, 12, 10), alpha)
    assert rgb.shape == (3, 24, 20) and a.shape == (24, 20)
    assert torch.allclose(a, bicubic(alpha[None], 2)[0], atol=1e-5)
    gray_model = _espcn(in_channels=1)
    out, _ = upscale(gray_model, torch.rand(3, 6, 7))  # colour through a 1-channel model: per channel
    assert out.shape == (3, 12, 14)


def test_bad_arguments():
    m = _espcn()
    with pytest.raises(ConfigError, match="C = 1 or 3"):
        upscale(m, torch.rand(4, 8, 8))
    with pytest.raises(ConfigError, match="alpha"):
        upscale(m, torch.rand(3, 8, 8), torch.rand(4, 4))
    with pytest.raises(ConfigError, match="half"):
        upscale(m, torch.rand(3, 8, 8), device="cpu", half=True)
    with pytest.raises(ConfigError, match="not a super-resolution model"):
        upscale(torch.nn.Conv2d(3, 3, 1), torch.rand(3, 8, 8))


def _png16(path, arr):
    """Write a 16-bit PNG (arr uint16 H x W x C, C = 1 or 3) with plain zlib, so no library truncates it."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 3: 2}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_files_gray16_rgba_and_16bit_colour_refused(tmp_path):
    m = _bicubic_model()
    _png16(tmp_path / "g16.png", np.full((8, 9, 1), 0.3 * 65535, dtype=np.uint16))
    out = upscale_file(m, tmp_path / "g16.png", tmp_path / "g16_x2.png")
    arr = np.asarray(Image.open(out))
    assert arr.shape == (16, 18) and np.abs(arr.astype(float) / 255 - 0.3).max() <= 1 / 255
    _png16(tmp_path / "rgb16.png", np.zeros((8, 8, 3), dtype=np.uint16))
    with pytest.raises(DataError, match="16-bit colour PNG"):
        upscale_file(m, tmp_path / "rgb16.png", tmp_path / "x.png")
    rgba = np.zeros((6, 7, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:, :3, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = Image.open(upscale_file(m, tmp_path / "a.png", tmp_path / "a_x2.png"))
    assert out.mode == "RGBA" and out.size == (14, 12)
    alpha = np.asarray(out)[..., 3]
    assert alpha[:, 0].max() == 0 and alpha[:, -1].min() == 255


@pytest.fixture
def espcn_weights(tmp_path):
    path = tmp_path / "espcn.safetensors"
    save_weights(path, _espcn().state_dict(), {"zoo.model": "espcn-x2"})
    return path


def test_cli_file_and_folder(tmp_path, espcn_weights, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(np.zeros((5, 6), dtype=np.uint8)).save(src / "b.png")
    assert main(["upscale", "espcn-x2", str(src / "a.png"), "-o", str(tmp_path / "a2.png"),
                 "--weights", str(espcn_weights), "--tile", "4", "--tile-overlap", "4"]) == 0
    assert Image.open(tmp_path / "a2.png").size == (24, 20)
    assert main(["upscale", "espcn-x2", str(src), "-o", str(tmp_path / "out"), "--weights",
                 str(espcn_weights)]) == 0
    assert Image.open(tmp_path / "out" / "b.png").size == (12, 10)
    assert main(["upscale", "espcn-x2", str(tmp_path / "missing.png"), "-o", str(tmp_path / "m.png"),
                 "--weights", str(espcn_weights)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_evaluate_reports_model_and_bicubic():
    g = torch.Generator().manual_seed(0)
    photos = [torch.rand(3, 40, 44, generator=g), torch.rand(3, 36, 36, generator=g)]
    scores = evaluate(_bicubic_model(), photos)
    assert scores["images"] == 2
    assert scores["psnr_y"] == pytest.approx(scores["bicubic_psnr_y"], abs=1e-3)
    assert scores["psnr_y_gain_db"] == pytest.approx(0, abs=1e-3)
    worse = evaluate(_espcn(), photos)  # an untrained plain ESPCN is far worse than bicubic
    assert worse["psnr_y_gain_db"] < -1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_half_on_gpu_falls_back_on_nan():
    class NaNInHalf(torch.nn.Module):
        scale, in_channels = 2, 3

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            y = torch.nn.functional.interpolate(x, scale_factor=2) + self.p
            return y * float("nan") if y.dtype == torch.float16 else y

    x = torch.rand(3, 8, 8)
    with pytest.warns(RuntimeWarning, match="float32"):
        out, _ = upscale(NaNInHalf(), x, device="cuda")
    assert torch.isfinite(out).all() and out.shape == (3, 16, 16)
    m = _espcn()
    half, _ = upscale(m, x, device="cuda", half=True)
    full, _ = upscale(m, x, device="cpu")
    assert (half - full).abs().max() < 1e-2


def test_shipped_espcn_x2_beats_bicubic_on_held_out_crop():
    """The shipped weights load (sha verified) and beat bicubic on a held-out photo crop (the card: +1.26 dB)."""
    model = zoo.load("espcn-x2")
    hr = load_photo(default_photo_paths("eval")[1])[:, 100:228, 200:328]  # coffee.png, never trained on
    lr = downsample(hr, 2)
    sr, _ = upscale(model, lr, tile=32, overlap=8)
    gain = psnr(sr, hr, crop_border=2, y_channel=True) - psnr(bicubic(lr, 2), hr, crop_border=2, y_channel=True)
    assert gain > 0.5


def test_only_one_bounded_tile_reaches_the_model():
    """Peak device memory depends on the tile: the model never sees more than tile + 2 * overlap pixels a side."""
    m = _espcn()
    seen = []
    m.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape)))
    out, _ = upscale(m, torch.rand(3, 70, 90), tile=16, overlap=4)
    assert out.shape == (3, 140, 180)
    assert len(seen) == 5 * 6 and all(n == 1 and h <= 24 and w <= 24 for n, _, h, w in seen)
