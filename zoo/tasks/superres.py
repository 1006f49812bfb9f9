"""Super-resolution task: upscale images of any size in bounded device memory (tiles with overlap and blending),
grayscale / RGBA handling, exact scale x size output, half precision on GPU with float32 fallback, evaluation.

The full input and output live in host memory; only one tile (input + output) is on the device at a time. Each
tile is the tile's core plus `overlap` LR pixels of context per side; outputs are blended with linear ramps that
stay inside the exact zone when the model's `receptive_field` is known, so with overlap >= receptive field the
tiled result equals the untiled one (up to float rounding).
"""
from __future__ import annotations

import copy
import math
import os
import struct
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ConfigError, DataError
from zoo.imageio import list_images, read_image, write_image

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 16


def check_sr_model(module: nn.Module, name: str = "model") -> None:
    """Raise if `module` does not follow the super-resolution contract."""
    if not isinstance(getattr(module, "scale", None), int) or getattr(module, "in_channels", None) not in (1, 3):
        raise ConfigError(f"{name} is not a super-resolution model: it needs an int `scale` and `in_channels` 1 or 3")


def _axis_plan(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Per tile along one axis: (core start, core end, region start, region end) in LR pixels."""
    plan = []
    for c0 in range(0, length, tile):
        c1 = min(length, c0 + tile)
        plan.append((c0, c1, max(0, c0 - overlap), min(length, c1 + overlap)))
    return plan


def _ramp(region: tuple[int, int], core: tuple[int, int], length: int, scale: int, blend: int) -> torch.Tensor:
    """Blend weights of one tile along one axis at HR resolution for the tile's region (sums to 1 across tiles)."""
    (r0, r1), (c0, c1) = region, core
    pos = (torch.arange(r0 * scale, r1 * scale, dtype=torch.float64) + 0.5) / scale  # HR pixel centres, LR units
    if blend == 0:
        return ((pos >= c0) & (pos < c1)).float()
    w = torch.ones_like(pos)
    if c0 > 0:
        w = w * ((pos - (c0 - blend)) / (2 * blend)).clamp(0, 1)
    if c1 < length:
        w = w * (((c1 + blend) - pos) / (2 * blend)).clamp(0, 1)
    return w.float()


class _Runner:
    """Runs tiles through the model on its device: float32, or half where supported with a float32 fallback."""

    def __init__(self, model: nn.Module, device: torch.device, half: bool | None):
        self.model = model.to(device).eval()
        self.device = device
        if half is None:
            half = device.type == "cuda" and torch.cuda.is_available()
        if half and device.type == "cpu":
            raise ConfigError("half precision is only used on GPUs; on CPU upscaling runs in float32")
        self.half_model = copy.deepcopy(self.model).half() if half else None
        self.fell_back = False

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        if self.half_model is not None and not self.fell_back:
            y = self.half_model(x.half()).float()
            if torch.isfinite(y).all():
                return y.clamp_(0, 1).cpu()
            warnings.warn("half-precision output had NaN/inf; continuing in float32", RuntimeWarning, stacklevel=3)
            self.fell_back = True
        return self.model(x.float()).clamp_(0, 1).cpu()


def _upscale_planes(run: _Runner, x: torch.Tensor, scale: int, multiple: int, tile: int, overlap: int,
                    rf: int | None) -> torch.Tensor:
    """Upscale (N, C, H, W) on the host tile by tile; returns (N, C, H*scale, W*scale) on the host."""
    n, c, h, w = x.shape
    hp, wp = math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
    if (hp, wp) != (h, w):
        x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
    tile = max(multiple, tile // multiple * multiple)
    overlap = math.ceil(overlap / multiple) * multiple
    blend = max(0, overlap - rf) if rf is not None and rf <= overlap else overlap // 2
    blend = min(blend, tile // 2)
    out = torch.zeros(n, c, hp * scale, wp * scale)
    weight = torch.zeros(1, 1, hp * scale, wp * scale)
    for cy0, cy1, ry0, ry1 in _axis_plan(hp, tile, overlap):
        wy = _ramp((ry0, ry1), (cy0, cy1), hp, scale, blend)
        for cx0, cx1, rx0, rx1 in _axis_plan(wp, tile, overlap):
            wx = _ramp((rx0, rx1), (cx0, cx1), wp, scale, blend)
            y = run(x[..., ry0:ry1, rx0:rx1])
            if y.shape[-2:] != ((ry1 - ry0) * scale, (rx1 - rx0) * scale):
                raise ConfigError(f"model output {tuple(y.shape[-2:])} is not scale {scale} x its input "
                                  f"{(ry1 - ry0, rx1 - rx0)}")
            wt = wy[:, None] * wx[None, :]
            out[..., ry0 * scale:ry1 * scale, rx0 * scale:rx1 * scale] += y * wt
            weight[..., ry0 * scale:ry1 * scale, rx0 * scale:rx1 * scale] += wt
    return (out / weight)[..., :h * scale, :w * scale]


def upscale(model: nn.Module, image: torch.Tensor, alpha: torch.Tensor | None = None, *, tile: int | None = None,
            overlap: int = DEFAULT_OVERLAP, device: str | torch.device | None = None,
            half: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Upscale one image (C, H, W) in [0, 1] (C = 1 or 3) and its optional alpha (H, W) by `model.scale`.

    `tile` (LR pixels; None = whole image) bounds device memory; `overlap` LR pixels of context per tile side.
    A grayscale image through an RGB model is replicated and averaged back; an RGB image through a 1-channel model
    is upscaled channel by channel. Alpha is upscaled separately with the same model. Output in [0, 1].
    """
    check_sr_model(model)
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ConfigError(f"expected an image (C, H, W) with C = 1 or 3, got shape {tuple(image.shape)}")
    if alpha is not None and alpha.shape != image.shape[1:]:
        raise ConfigError(f"alpha {tuple(alpha.shape)} does not match the image size {tuple(image.shape[1:])}")
    if tile is not None and tile < 1:
        raise ConfigError(f"tile must be >= 1 LR pixel, got {tile}")
    if overlap < 0:
        raise ConfigError(f"tile overlap must be >= 0, got {overlap}")
    dev = torch.device(device) if device else next(model.parameters()).device
    run = _Runner(model, dev, half)
    scale, cin = model.scale, model.in_channels
    multiple = int(getattr(model, "size_multiple", 1) or 1)
    rf = getattr(model, "receptive_field", None)
    size = tile or max(image.shape[1:])

    def planes(x: torch.Tensor) -> torch.Tensor:
        """(C, H, W) -> upscaled (C, sH, sW), matching the image's channels to the model's."""
        c = x.shape[0]
        if cin == c:
            batch = x[None]
        elif cin == 3:  # gray through an RGB model
            batch = x.expand(3, -1, -1)[None]
        else:  # colour through a gray model: channel by channel
            batch = x[:, None]
        y = _upscale_planes(run, batch.float(), scale, multiple, size, overlap, rf)
        if cin == c:
            return y[0]
        return y[0].mean(0, keepdim=True) if cin == 3 else y[:, 0]

    out = planes(image).clamp(0, 1)
    out_alpha = planes(alpha[None])[0].clamp(0, 1) if alpha is not None else None
    return out, out_alpha


def _refuse_truncated_16bit(path: Path) -> None:
    """Pillow silently reduces 16-bit colour PNGs to 8 bits; refuse them instead of upscaling wrong values."""
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        depth, color_type = struct.unpack(">BB", head[24:26])
        if depth == 16 and color_type in (2, 4, 6):
            raise DataError(f"{path} is a 16-bit colour PNG, which cannot be read without losing precision; "
                            f"convert it to 8-bit (16-bit grayscale PNGs are supported)")


def upscale_file(model: nn.Module, src: str | os.PathLike, dst: str | os.PathLike, **kwargs: Any) -> Path:
    """Read `src`, upscale it (see `upscale` for the options), write `dst` atomically; returns `dst`."""
    src = Path(src)
    if src.is_file():
        _refuse_truncated_16bit(src)
    image, alpha, _info = read_image(src)
    out, out_alpha = upscale(model, image, alpha, **kwargs)
    return write_image(dst, out, out_alpha)


def upscale_folder(model: nn.Module, src: str | os.PathLike, dst: str | os.PathLike,
                   **kwargs: Any) -> list[Path]:
    """Upscale every image directly inside folder `src` into folder `dst` (same file names)."""
    paths = list_images(src)
    if not paths:
        raise DataError(f"no images found in {src}")
    dst = Path(dst)
    if dst.resolve() == Path(src).resolve():
        raise ConfigError("the output folder must differ from the input folder (files would be overwritten)")
    return [upscale_file(model, p, dst / p.name, **kwargs) for p in paths]


def bicubic(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling baseline (C, H, W) -> (C, sH, sW) in [0, 1]."""
    return F.interpolate(image[None], scale_factor=scale, mode="bicubic", align_corners=False)[0].clamp(0, 1)


def _quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8 bits, as a saved output image is."""
    return x.mul(255).round().div(255)


def evaluate(model: nn.Module, photos: Iterable[torch.Tensor] | None = None) -> dict[str, Any]:
    """Y-channel PSNR/SSIM (border crop = scale) of the model and of bicubic on HR photos downsampled by the
    training degradation; default photos: the embedded held-out set (never used in training)."""
    from zoo.data.sr import crop_to_multiple, default_photo_paths, downsample, load_photo
    from zoo.metrics.image import psnr, ssim

    check_sr_model(model)
    s = model.scale
    if photos is None:
        photos = [load_photo(p, model.in_channels) for p in default_photo_paths("eval")]
    rows = {"psnr_y": [], "ssim_y": [], "bicubic_psnr_y": [], "bicubic_ssim_y": []}
    for hr in photos:
        hr = crop_to_multiple(hr, s * int(getattr(model, "size_multiple", 1) or 1))
        lr = downsample(hr, s)
        sr, _ = upscale(model, lr, tile=DEFAULT_TILE, overlap=DEFAULT_OVERLAP)
        for prefix, out in (("", _quantize(sr)), ("bicubic_", _quantize(bicubic(lr, s)))):
            rows[prefix + "psnr_y"].append(psnr(out, hr, crop_border=s, y_channel=True))
            rows[prefix + "ssim_y"].append(ssim(out, hr, crop_border=s, y_channel=True))
    scores: dict[str, Any] = {k: round(sum(v) / len(v), 4) for k, v in rows.items()}
    scores["psnr_y_gain_db"] = round(scores["psnr_y"] - scores["bicubic_psnr_y"], 4)
    scores["images"] = len(rows["psnr_y"])
    return scores


def preview_triplets(model: nn.Module, photos: list[torch.Tensor], size: int = 96) -> torch.Tensor:
    """(3 * n, C, size, size) in [0, 1]: bicubic, model and HR central crops for each photo (sample grids)."""
    check_sr_model(model)
    from zoo.data.sr import downsample

    s = model.scale
    size -= size % (s * int(getattr(model, "size_multiple", 1) or 1))
    out = []
    for hr in photos:
        top, left = (hr.shape[1] - size) // 2, (hr.shape[2] - size) // 2
        hr = hr[:, top:top + size, left:left + size]
        lr = downsample(hr, s)
        sr, _ = upscale(model, lr)
        out += [bicubic(lr, s), sr, hr]
    return torch.stack(out)
