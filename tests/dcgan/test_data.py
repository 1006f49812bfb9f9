"""MNIST data: IDX files (plain and gzip) written here, their validation errors, the embedded 5k, the split."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from zoo.data.mnist import load_embedded, load_idx_dir, load_mnist, read_idx, stratified_split, write_idx
from zoo.errors import DataError


def _write_pair(folder, n=12, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    images, labels = _write_pair(tmp_path, gz=gz)
    x, y = load_idx_dir(tmp_path)
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    assert torch.allclose((x[:, 0] + 1) * 127.5, torch.from_numpy(images.astype(np.float32)), atol=1e-4)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(load_mnist(tmp_path)[0], x)


def test_idx_header_is_big_endian_standard(tmp_path):
    # a file written byte by byte as the MNIST spec describes: magic 0x00000803, dims as big-endian uint32
    raw = struct.pack(">I", 0x803) + struct.pack(">III", 2, 28, 28) + bytes(range(256)) * 6 + bytes(32)
    (tmp_path / "f").write_bytes(raw)
    arr = read_idx(tmp_path / "f")
    assert arr.shape == (2, 28, 28) and arr[0, 0, 5] == 5


def test_gzip_detected_by_name(tmp_path):
    raw = struct.pack(">I", 0x801) + struct.pack(">I", 3) + bytes([1, 2, 3])
    (tmp_path / "l.gz").write_bytes(gzip.compress(raw))
    assert read_idx(tmp_path / "l.gz").tolist() == [1, 2, 3]


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00", "not an IDX file"),
    (struct.pack(">I", 0x0D03) + struct.pack(">III", 1, 28, 28), "unsigned-byte IDX"),
    (struct.pack(">I", 0x803) + struct.pack(">II", 1, 28), "truncated IDX header"),
    (struct.pack(">I", 0x803) + struct.pack(">III", 2, 28, 28) + bytes(100), "declares shape"),
])
def test_bad_idx_files_are_clear_errors(tmp_path, raw, message):
    (tmp_path / "bad").write_bytes(raw)
    with pytest.raises(DataError, match=message):
        read_idx(tmp_path / "bad")


def test_corrupt_gzip_is_a_data_error(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read IDX"):
        read_idx(tmp_path / "x.gz")


def test_directory_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_idx_dir(tmp_path / "missing")
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_idx_dir(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match=r"expected \(3,\)"):
        load_idx_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(3, 11, np.uint8))
    with pytest.raises(DataError, match="digits 0-9"):
        load_idx_dir(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"expected \(N, 28, 28\)"):
        load_idx_dir(tmp_path)


def test_embedded_digits():
    x, y = load_embedded()
    assert x.shape == (5000, 1, 28, 28) and y.shape == (5000,)
    assert torch.equal(torch.bincount(y), torch.full((10,), 500))
    assert x.min() == -1 and x.max() == 1
    assert (x > 0).float().mean() < 0.25  # white strokes on a black background, like MNIST
    assert torch.equal(load_mnist(None)[1], y)


def test_stratified_split():
    y = torch.arange(10).repeat_interleave(50)
    train, held = stratified_split(y, 5, seed=3)
    assert len(set(train.tolist()) | set(held.tolist())) == 500 and not set(train.tolist()) & set(held.tolist())
    assert torch.equal(torch.bincount(y[held]), torch.full((10,), 5))
    assert torch.equal(stratified_split(y, 5, seed=3)[1], held)
    assert not torch.equal(stratified_split(y, 5, seed=4)[1], held)
    with pytest.raises(DataError, match="class"):
        stratified_split(y, 50)
