"""Unpaired data: reference folder layout with any PIL image mode, resize + random crop + flip; the embedded
MNIST <-> UCI digits pair; and the digits scores (a do-nothing translator scores exactly the untranslated baseline)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from zoo.data.unpaired import DigitsPair, UnpairedImageFolder, digits_pair, to_mnist_frame, to_uci_frame
from zoo.errors import DataError


def _write(folder, images):
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        img.save(folder / f"{i}.png")


def test_folders_with_mixed_image_modes(tmp_path):
    rng = np.random.default_rng(0)
    _write(tmp_path / "trainA", [Image.fromarray(rng.integers(0, 256, (30, 40), dtype=np.uint8), "L"),
                                 Image.fromarray(rng.integers(0, 256, (25, 25, 4), dtype=np.uint8), "RGBA"),
                                 Image.fromarray(rng.integers(0, 256, (20, 50), dtype=np.uint8)).convert("P")])
    _write(tmp_path / "trainB", [Image.fromarray(rng.integers(0, 256, (33, 31, 3), dtype=np.uint8), "RGB")])
    ds = UnpairedImageFolder(tmp_path, "train", load_size=20, crop_size=16, channels_a=3, channels_b=1)
    assert len(ds) == 3
    for i in range(3):
        a, b = ds[i]
        assert a.shape == (3, 16, 16) and b.shape == (1, 16, 16)
        assert a.min() >= -1 and a.max() <= 1 and b.min() >= -1 and b.max() <= 1
    fixed = UnpairedImageFolder(tmp_path, "train", load_size=20, crop_size=16, augment=False)
    torch.testing.assert_close(fixed[0][0], fixed[0][0])
    assert fixed[0][0].shape == (3, 16, 16)


def test_flip_and_crop_are_random_in_training(tmp_path):
    ramp = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))
    _write(tmp_path / "trainA", [Image.fromarray(ramp, "L")])
    _write(tmp_path / "trainB", [Image.fromarray(ramp, "L")])
    ds = UnpairedImageFolder(tmp_path, "train", load_size=32, crop_size=28, channels_a=1, channels_b=1)
    torch.manual_seed(0)
    seen = {tuple(ds[0][0][0, 0, :3].tolist()) for _ in range(30)}
    assert len(seen) > 2  # different crops and both ramp directions


def test_missing_or_empty_folders_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        UnpairedImageFolder(tmp_path / "nope")
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        UnpairedImageFolder(tmp_path)


def test_embedded_digits_pair():
    train, test = digits_pair("train"), digits_pair("test")
    assert train["A"].shape == (4000, 1, 32, 32) and test["A"].shape == (1000, 1, 32, 32)
    assert train["B"].shape == (1437, 1, 32, 32) and test["B"].shape == (360, 1, 32, 32)
    for split in (train, test):
        for d in "AB":
            assert split[d].min() >= -1 and split[d].max() <= 1
            assert set(split[f"labels_{d}"].tolist()) == set(range(10))
    for d in "AB":  # both domains in the UCI frame: the digit spans (nearly) the full height
        rows_with_ink = (train[d] > 0).any(-1).flatten(1).sum(1).float()
        assert rows_with_ink.median() >= 24, (d, rows_with_ink.median())
    ds = DigitsPair("train")
    assert len(ds) == 4000 and ds[5][0].shape == ds[5][1].shape == (1, 32, 32)


def test_mnist_frame_round_trip():
    """to_uci_frame scales MNIST's centred 20x20 box to fill 32x32; to_mnist_frame puts it back."""
    from zoo.data.mnist import load_embedded

    mnist = load_embedded()[0][::50]
    framed = to_uci_frame(mnist)
    assert framed.shape == (len(mnist), 1, 32, 32) and framed.min() >= -1 and framed.max() <= 1
    back = to_mnist_frame(framed)
    assert back.shape == mnist.shape
    assert (back[..., :4, :] == -1).all() and (back[..., :, 24:] == -1).all()  # background outside the box
    assert (back - mnist).abs().mean() < 0.05  # resampling up and down loses little
    assert (to_uci_frame(to_mnist_frame(framed)) - framed).abs().mean() < 0.08


class _Identity(nn.Module):
    """A translator that changes nothing, with a parameter so its device can be found."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, x, direction="AtoB"):
        return x


@pytest.mark.slow
def test_digit_scores_of_a_do_nothing_translator_equal_the_untranslated_baseline():
    from zoo_cyclegan.evaluate import evaluate_digits

    scores = evaluate_digits(_Identity(), epochs=2)
    assert scores["preservation_AtoB"] == scores["untranslated_AtoB"]
    assert scores["preservation_BtoA"] == scores["untranslated_BtoA"]
    assert scores["reader_A_accuracy"] > 0.95 and scores["reader_B_accuracy"] > 0.8
    assert scores["domain_classifier_accuracy"] > 0.9
    assert scores["fooling_AtoB"] < 0.2 and scores["fooling_BtoA"] < 0.2
