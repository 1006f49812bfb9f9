"""Image I/O: exact round trips per mode, alpha aside, palettes, 16-bit, grids, errors, atomic writes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.errors import DataError
from zoo.imageio import list_images, make_grid, read_image, save_grid, write_image


def _levels(c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Random 8-bit representable values k/255, so a PNG round trip must be exact."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (c, h, w), generator=g).float() / 255


def _no_temp_files(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_round_trip_exact(tmp_path, channels, mode):
    x = _levels(channels, 5, 7)
    write_image(tmp_path / "a.png", x)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == mode and im.size == (7, 5)
    y, alpha, info = read_image(tmp_path / "a.png")
    assert alpha is None and (info.mode, info.bits) == (mode, 8)
    assert y.dtype == torch.float32 and y.shape == (channels, 5, 7)
    assert torch.equal(y, x)
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize("channels, mode", [(1, "LA"), (3, "RGBA")])
def test_alpha_is_kept_aside(tmp_path, channels, mode):
    x, a = _levels(channels, 6, 4, seed=1), _levels(1, 6, 4, seed=2)[0]
    write_image(tmp_path / "a.png", x, a)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == mode
    y, alpha, info = read_image(tmp_path / "a.png")
    assert info.mode == mode and y.shape == (channels, 6, 4) and alpha.shape == (6, 4)
    assert torch.equal(y, x) and torch.equal(alpha, a)


def test_palette_images_read_as_rgb_and_transparency_as_alpha(tmp_path):
    idx = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9)
    im = Image.fromarray(idx, "P")
    im.putpalette(palette)
    im.save(tmp_path / "p.png")
    y, alpha, info = read_image(tmp_path / "p.png")
    assert info.mode == "P" and alpha is None and y.shape == (3, 2, 3)
    expected = torch.tensor(np.array(palette[:9], dtype=np.float32).reshape(3, 3))[torch.from_numpy(idx).long()]
    assert torch.equal(y, expected.permute(2, 0, 1) / 255)
    im.save(tmp_path / "pt.png", transparency=1)  # palette index 1 (green) is transparent
    y, alpha, _ = read_image(tmp_path / "pt.png")
    assert torch.equal(y, expected.permute(2, 0, 1) / 255)
    assert torch.equal(alpha, torch.from_numpy((idx != 1).astype(np.float32)))


def test_sixteen_bit_png_keeps_its_precision(tmp_path):
    values = np.array([[0, 1, 257, 1000], [30000, 40001, 65534, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")
    y, alpha, info = read_image(tmp_path / "d.png")
    assert info.bits == 16 and alpha is None and y.shape == (1, 2, 4)
    assert torch.allclose(y[0].double(), torch.from_numpy(values / 65535.0), atol=1e-7, rtol=0)
    assert y[0, 0, 1] != y[0, 0, 0]  # 1/65535 survives: not reduced to 8 bits


def test_jpeg_drops_alpha(tmp_path):
    x, a = _levels(3, 8, 8), torch.ones(8, 8)
    write_image(tmp_path / "a.jpg", x, a)
    with Image.open(tmp_path / "a.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (8, 8)
    y, alpha, _ = read_image(tmp_path / "a.jpg")
    assert alpha is None and y.shape == (3, 8, 8)


def test_errors(tmp_path):
    with pytest.raises(DataError, match=r"unknown image extension '\.xyz'; use \.png or \.jpg"):
        write_image(tmp_path / "a.xyz", _levels(3, 2, 2))
    with pytest.raises(DataError, match="unknown image extension ''"):
        write_image(tmp_path / "noext", _levels(3, 2, 2))
    with pytest.raises(DataError, match=r"C = 1 or 3, got shape \(2, 4, 4\)"):
        write_image(tmp_path / "a.png", torch.zeros(2, 4, 4))
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "fake.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="cannot read image .*fake.png"):
        read_image(tmp_path / "fake.png")
    with pytest.raises(DataError, match=r"expected images \(N, C, H, W\)"):
        make_grid(torch.zeros(3, 4, 4))
    assert list(tmp_path.iterdir()) == [tmp_path / "fake.png"]  # failed writes left nothing behind


def test_make_grid_size_and_placement():
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    grid = make_grid(images, nrow=8)
    assert grid.shape == (1, 242, 242)
    for i in (0, 9, 63):
        r, c = divmod(i, 8)
        top, left = 2 + r * 30, 2 + c * 30
        assert torch.allclose(grid[:, top:top + 28, left:left + 28], (images[i] + 1) / 2)
    assert grid[:, :2].abs().sum() == 0 and grid[:, :, 30:32].abs().sum() == 0  # black borders
    assert make_grid(torch.zeros(3, 3, 4, 5), nrow=8).shape == (3, 8, 3 * 7 + 2)  # fewer images than nrow
    assert make_grid(torch.zeros(10, 1, 4, 4), nrow=4).shape == (1, 3 * 6 + 2, 4 * 6 + 2)


def test_save_grid_writes_the_picture(tmp_path):
    path = save_grid(tmp_path / "g.png", torch.rand(64, 1, 28, 28) * 2 - 1, nrow=8)
    with Image.open(path) as im:
        assert im.size == (242, 242) and im.mode == "L"
    with Image.open(save_grid(tmp_path / "c.png", torch.zeros(4, 3, 8, 8), nrow=2)) as im:
        assert im.size == (22, 22) and im.mode == "RGB"
        assert im.getpixel((5, 5)) == (128, 128, 128)  # 0 in [-1, 1] -> mid grey
    assert _no_temp_files(tmp_path)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = write_image(tmp_path / "a.png", _levels(3, 4, 4))
    before = path.read_bytes()

    def broken_save(self, fp, format=None, **params):  # noqa: A002
        fp.write(b"\x89PNG half a file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(path, _levels(3, 4, 4, seed=9))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_list_images(tmp_path):
    for name in ("b.png", "a.JPG", "c.txt", "d.webp"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "d.webp"]
    with pytest.raises(DataError, match="is not a directory"):
        list_images(tmp_path / "b.png")
