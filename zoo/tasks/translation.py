"""Translation task: image -> image of exactly the same size. Models are pairs with `forward(x, direction)` on
images in [-1,1], ints `in_channels`, `out_channels`, `size_multiple` and optionally `min_size` (smallest H, W the
network accepts); here live padding and cropping back, channel conversion, alpha, device."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import zoo
from zoo.errors import ConfigError, DataError
from zoo.imageio import list_images, read_image, write_image

DIRECTIONS = ("AtoB", "BtoA")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when available, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_translator(module: nn.Module, name: str = "model") -> None:
    """Raise if `module` does not follow the translation contract."""
    for attr in ("in_channels", "out_channels", "size_multiple"):
        if not isinstance(getattr(module, attr, None), int):
            raise ConfigError(f"{name} is not a translation model: it needs an int `{attr}` and forward(x, direction)")


def channels_for(module: nn.Module, direction: str) -> tuple[int, int]:
    """(input, output) channels of `module` when translating in `direction`."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if callable(getattr(module, "channels", None)):
        return tuple(module.channels(direction))
    pair = (module.in_channels, module.out_channels)
    return pair if direction == "AtoB" else pair[::-1]


def _pad(x: Tensor, multiple: int, minimum: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad H, W up to multiples of `multiple` and at least `minimum` (reflection where the image is large enough,
    else edge replication); returns the padded batch and the (top, left) offset of the original inside it."""
    h, w = x.shape[-2:]
    th, tw = (max(-(-n // multiple) * multiple, minimum) for n in (h, w))
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x, (0, 0)
    top, left = ph // 2, pw // 2
    pads = (left, pw - left, top, ph - top)
    mode = "reflect" if max(pads[:2]) < w and max(pads[2:]) < h else "replicate"
    return F.pad(x, pads, mode=mode), (top, left)


@torch.inference_mode()
def translate_tensor(module: nn.Module, x: Tensor, direction: str = "AtoB") -> Tensor:
    """Translate images (N,C,H,W) in [-1,1] of any size; the result has exactly the input's H and W (float32)."""
    check_translator(module)
    c_in, _ = channels_for(module, direction)
    if x.dim() != 4 or x.shape[1] != c_in or min(x.shape[-2:]) < 1:
        raise DataError(f"{direction} input must have shape (N, {c_in}, H, W), got {tuple(x.shape)}")
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    h, w = x.shape[-2:]
    multiple = module.size_multiple
    padded, (top, left) = _pad(x.to(device, torch.float32), multiple, getattr(module, "min_size", multiple))
    y = module(padded, direction=direction)
    return y[..., top:top + h, left:left + w].float().clamp(-1, 1)


def to_channels(image: Tensor, channels: int) -> Tensor:
    """A (C,H,W) image in [0,1] with 1 or 3 channels as `channels` channels (luma for grey, repeat for colour)."""
    if image.shape[0] == channels:
        return image
    if image.shape[0] == 1 and channels == 3:
        return image.expand(3, -1, -1).clone()
    if image.shape[0] == 3 and channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(3, 1, 1)
        return (image * luma).sum(0, keepdim=True)
    raise ConfigError(f"cannot convert a {image.shape[0]}-channel image to {channels} channels (1 or 3 supported)")


def translate_image(module: nn.Module, image: Tensor, direction: str = "AtoB") -> Tensor:
    """One (C,H,W) image in [0,1] (C = 1 or 3, converted to what the model takes) -> (C_out,H,W) in [0,1]."""
    c_in, _ = channels_for(module, direction)
    x = to_channels(image, c_in).unsqueeze(0) * 2 - 1
    return (translate_tensor(module, x, direction)[0] + 1) / 2


def prepare(module: nn.Module, device: str | torch.device | None = None) -> nn.Module:
    """Eval mode, float32, on `device` (auto when None)."""
    check_translator(module)
    return module.to(pick_device(device), torch.float32).eval()


def translate_file(module: nn.Module, src: str | os.PathLike, dst: str | os.PathLike,
                   direction: str = "AtoB") -> Path:
    """Translate one image file into `dst` (same size; an alpha channel is carried over unchanged)."""
    image, alpha, _info = read_image(src)
    return write_image(dst, translate_image(module, image, direction), alpha)


def translate_path(name: str, src: str | os.PathLike, dst: str | os.PathLike, *, direction: str = "AtoB",
                   weights: str | None = None, device: str | None = None) -> list[Path]:
    """Load model `name` and translate a file, or every image of a folder into folder `dst` (as .png)."""
    spec = zoo.get_spec(name)
    if spec.task != "translation":
        raise ConfigError(f"model {name!r} is a {spec.task} model; `translate` needs a translation model")
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    overrides = {"direction": direction} if "direction" in spec.config else {}  # one-way reference generators
    module = prepare(zoo.load(name, weights=weights, **overrides), device)
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        files = list_images(src)
        if not files:
            raise DataError(f"folder {src} holds no images")
        if dst.exists() and not dst.is_dir():
            raise ConfigError(f"input {src} is a folder, so the output must be a folder; {dst} is a file")
        return [translate_file(module, f, dst / (f.stem + ".png"), direction) for f in files]
    return [translate_file(module, src, dst, direction)]
