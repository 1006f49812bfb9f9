"""The one image I/O path: files <-> float tensors, alpha kept aside, grids of samples; writes are atomic."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from zoo.errors import DataError
from zoo.io import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass
class ImageInfo:
    """What was read: original mode and bit depth, so writers can keep the format."""

    mode: str
    bits: int


def _to_array(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Channels-last float array in [0, 1], alpha (H, W) or None, bit depth."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        bits = 16
        arr = np.clip(arr / 65535.0, 0.0, 1.0)[..., None]
        return arr.astype(np.float32), None, bits
    if mode == "F":
        raise DataError("floating-point images (PIL mode F) are not supported; expected 8- or 16-bit images")
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB" if mode != "1" else "L")
    elif mode == "LA":
        img = img.convert("LA")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    alpha = None
    if img.mode in ("RGBA", "LA"):
        alpha, arr = arr[..., -1], arr[..., :-1]
    return arr, alpha, 8


def read_image(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor | None, ImageInfo]:
    """Read an image file as a float32 (C, H, W) tensor in [0, 1] (C = 1 or 3) and its alpha (H, W) or None."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr, alpha, bits = _to_array(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    a = torch.from_numpy(np.ascontiguousarray(alpha)) if alpha is not None else None
    return x, a, ImageInfo(mode, bits)


def to_pil(image: torch.Tensor, alpha: torch.Tensor | None = None) -> Image.Image:
    """A (C, H, W) tensor in [0, 1] (C = 1 or 3) plus optional alpha (H, W) as an 8-bit PIL image."""
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise DataError(f"expected an image tensor (C, H, W) with C = 1 or 3, got shape {tuple(image.shape)}")
    x = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    if alpha is not None:
        a = alpha.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
        x = torch.cat([x, a[None]], 0)
    arr = x.permute(1, 2, 0).numpy()
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)


def _format_for(path: Path) -> str:
    ext = path.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise DataError(f"cannot write {path}: unknown image extension {ext!r}; use .png or .jpg")
    return fmt


def write_image(path: str | os.PathLike, image: torch.Tensor, alpha: torch.Tensor | None = None) -> Path:
    """Write a (C, H, W) tensor in [0, 1] (and optional alpha) atomically; the format follows the extension."""
    path = Path(path)
    fmt = _format_for(path)
    pil = to_pil(image, alpha)
    if fmt == "JPEG" and pil.mode in ("RGBA", "LA"):
        pil = pil.convert(pil.mode[:-1])
    with atomic_write(path) as f:
        pil.save(f, format=fmt)
    return path


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Tile (N, C, H, W) images in [-1, 1] into one (C, H', W') image in [0, 1] with `padding` px black borders."""
    if images.dim() != 4:
        raise DataError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = max(1, min(nrow, n))
    rows = math.ceil(n / nrow)
    grid = torch.zeros(c, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    x = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return grid


def save_grid(path: str | os.PathLike, images: torch.Tensor, nrow: int = 8) -> Path:
    """Write images in [-1, 1] as one grid picture."""
    return write_image(path, make_grid(images, nrow))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a directory")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
