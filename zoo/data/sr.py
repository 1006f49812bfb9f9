"""Super-resolution data: HR photos -> (LR, HR) pairs made on the fly (bicubic antialiased downsampling, random
aligned crops, flips and 90-degree rotations); the embedded default is the real photos shipped with scikit-image
and scikit-learn, with a fixed held-out subset for evaluation."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from zoo.data import packaged_file
from zoo.errors import ConfigError, DataError
from zoo.imageio import list_images, read_image

# Real photographs in scikit-image's data folder (synthetic images such as chessboard/logo/phantom are left out).
SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png", "coins.png",
                  "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
                  "motorcycle_right.png", "page.png", "retina.jpg", "rocket.jpg", "text.png")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
# Never used for training: the evaluation set of the shipped models (2 colour, 2 grayscale photos).
HELD_OUT = ("chelsea.png", "coffee.png", "camera.png", "coins.png")


def default_photo_paths(split: str = "train") -> list[Path]:
    """Paths of the embedded photos: split "train" (all but HELD_OUT, incl. scikit-learn's) or "eval" (HELD_OUT)."""
    if split not in ("train", "eval"):
        raise ConfigError(f"split must be 'train' or 'eval', got {split!r}")
    names = HELD_OUT if split == "eval" else [n for n in SKIMAGE_PHOTOS if n not in HELD_OUT]
    paths = [packaged_file("scikit-image", f"skimage/data/{n}") for n in names]
    if split == "train":
        paths += [packaged_file("scikit-learn", f"sklearn/datasets/images/{n}") for n in SKLEARN_PHOTOS]
    return paths


def load_photo(path: str | os.PathLike, channels: int = 3) -> torch.Tensor:
    """One image as (channels, H, W) float in [0, 1]: grayscale is repeated to RGB, RGB reduced to luma for 1."""
    x, _alpha, _info = read_image(path)
    if channels == 3 and x.shape[0] == 1:
        x = x.expand(3, -1, -1).contiguous()
    elif channels == 1 and x.shape[0] == 3:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
    elif channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    return x


def downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The degradation: bicubic with antialiasing by 1/scale, quantised to 8 bits (as a saved LR image).

    `hr` (C, H, W) or (N, C, H, W) with H, W multiples of `scale`.
    """
    batched = hr.dim() == 4
    x = hr if batched else hr[None]
    if x.shape[-1] % scale or x.shape[-2] % scale:
        raise ConfigError(f"HR size {tuple(x.shape[-2:])} is not a multiple of scale {scale}")
    lr = F.interpolate(x, size=(x.shape[-2] // scale, x.shape[-1] // scale), mode="bicubic", align_corners=False,
                       antialias=True)
    lr = lr.clamp(0, 1).mul(255).round().div(255)
    return lr if batched else lr[0]


def crop_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Crop the bottom/right so height and width are multiples of `multiple`."""
    h, w = x.shape[-2] - x.shape[-2] % multiple, x.shape[-1] - x.shape[-1] % multiple
    return x[..., :h, :w]


class SRPairs(Dataset):
    """Random aligned (LR patch, HR patch) pairs from HR photos, with random flips / 90-degree rotations.

    Each photo is cropped to a multiple of `scale` and downsampled once; item i takes a random crop from photo
    i mod len(photos), so photos are used equally often regardless of size. Randomness comes from the global torch
    RNG, which the training engine seeds per epoch (exact resume).
    """

    def __init__(self, photos: list[torch.Tensor], scale: int, patch: int = 32, length: int = 4096,
                 augment: bool = True):
        if not photos:
            raise DataError("no training photos were given")
        if patch < 1 or length < 1:
            raise ConfigError(f"patch and length must be >= 1, got {patch}, {length}")
        self.scale, self.patch, self.length, self.augment = scale, patch, length, augment
        self.hr = [crop_to_multiple(p, scale) for p in photos]
        for p in self.hr:
            if min(p.shape[-2:]) < patch * scale:
                raise DataError(f"a training photo of size {tuple(p.shape[-2:])} is smaller than the HR patch "
                                f"{patch * scale}; lower --patch or remove it")
        self.lr = [downsample(p, scale) for p in self.hr]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = index % len(self.hr)
        lr, hr, p, s = self.lr[k], self.hr[k], self.patch, self.scale
        i = int(torch.randint(0, lr.shape[-2] - p + 1, ()))
        j = int(torch.randint(0, lr.shape[-1] - p + 1, ()))
        lr_patch = lr[:, i:i + p, j:j + p]
        hr_patch = hr[:, i * s:(i + p) * s, j * s:(j + p) * s]
        if self.augment:
            flip, rot = torch.randint(0, 2, ()).item(), torch.randint(0, 4, ()).item()
            if flip:
                lr_patch, hr_patch = lr_patch.flip(-1), hr_patch.flip(-1)
            lr_patch, hr_patch = lr_patch.rot90(rot, (-2, -1)), hr_patch.rot90(rot, (-2, -1))
        return lr_patch.contiguous(), hr_patch.contiguous()


def training_photos(data: str | os.PathLike | None, channels: int = 3) -> list[torch.Tensor]:
    """The HR photos of a training run: every image in folder `data`, or the embedded default training split."""
    paths = list_images(data) if data else default_photo_paths("train")
    if not paths:
        raise DataError(f"no images found in {data} (expected .png/.jpg/... files)")
    return [load_photo(p, channels) for p in paths]
