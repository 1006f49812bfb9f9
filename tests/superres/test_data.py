"""SR training pairs: held-out split, the degradation, aligned crops, augmentation consistency, folder input."""
import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data.sr import (HELD_OUT, SRPairs, crop_to_multiple, default_photo_paths, downsample, load_photo,
                         training_photos)
from zoo.errors import DataError


def test_default_split_keeps_eval_photos_out_of_training():
    train, held = default_photo_paths("train"), default_photo_paths("eval")
    assert [p.name for p in held] == list(HELD_OUT)
    assert not {p.name for p in train} & set(HELD_OUT)
    assert len(train) >= 15 and all(p.is_file() for p in train + held)
    assert load_photo(held[2]).shape[0] == 3  # camera.png is grayscale, repeated to RGB


def test_downsample_is_8bit_bicubic_and_commutes_with_flips():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(3, 24, 32, generator=g)
    lr = downsample(hr, 2)
    assert lr.shape == (3, 12, 16)
    assert torch.equal(lr * 255, (lr * 255).round())
    assert torch.allclose(downsample(torch.full((1, 8, 8), 0.4), 2), torch.full((1, 4, 4), round(0.4 * 255) / 255))
    # flips / 90-degree rotations of the HR crop give the same transform of the LR crop (augmentation is valid)
    assert torch.allclose(downsample(hr.flip(-1), 2), lr.flip(-1), atol=1.01 / 255)
    sq = hr[:, :24, :24]
    assert torch.allclose(downsample(sq.rot90(1, (-2, -1)), 2), downsample(sq, 2).rot90(1, (-2, -1)), atol=1.01 / 255)
    assert crop_to_multiple(torch.zeros(3, 25, 31), 4).shape == (3, 24, 28)


def test_pairs_are_aligned_crops():
    g = torch.Generator().manual_seed(1)
    photo = torch.nn.functional.interpolate(torch.rand(1, 3, 20, 20, generator=g), size=(80, 81), mode="bilinear")[0]
    ds = SRPairs([photo], scale=2, patch=16, length=8, augment=False)
    torch.manual_seed(0)
    lr, hr = ds[3]
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 32, 32)
    # away from the crop border the LR patch is the downsampled HR patch (up to 8-bit rounding)
    assert (downsample(hr, 2)[:, 3:-3, 3:-3] - lr[:, 3:-3, 3:-3]).abs().max() <= 1.01 / 255
    torch.manual_seed(5)
    a = SRPairs([photo], 2, 16, 8)[0]
    torch.manual_seed(5)
    b = SRPairs([photo], 2, 16, 8)[0]
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # randomness only from the (engine-seeded) torch RNG


def test_training_photos_from_folder(tmp_path):
    Image.fromarray(np.zeros((40, 50, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((30, 30), dtype=np.uint8)).save(tmp_path / "b.png")
    photos = training_photos(tmp_path, channels=3)
    assert [p.shape for p in photos] == [(3, 40, 50), (3, 30, 30)]
    with pytest.raises(DataError, match="smaller than the HR patch"):
        SRPairs(photos, scale=2, patch=16)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        training_photos(empty)
