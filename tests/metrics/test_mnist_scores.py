"""The shipped MNIST evaluation classifier and the generator scores built on it."""
from __future__ import annotations

import pytest
import torch

from zoo.errors import ConfigError
from zoo.metrics import mnist
from zoo.weights import sha256_file


def test_shipped_classifier_is_verified_and_accurate():
    assert sha256_file(mnist.CLASSIFIER_FILE) == mnist.CLASSIFIER_SHA256
    sidecar = mnist.CLASSIFIER_FILE.with_name(mnist.CLASSIFIER_FILE.name + ".sha256").read_text().split()[0]
    assert sidecar == mnist.CLASSIFIER_SHA256
    model = mnist.load_mnist_classifier()
    _, _, x, y = mnist.mnist_split()
    assert x.shape[0] == 1000 and torch.equal(torch.bincount(y), torch.full((10,), 100))
    scores = mnist.score_digits(x, model)
    # real held-out digits: confidently and correctly classified, about 10% per class
    assert scores["confident_share"] > 0.9
    assert all(0.08 <= h <= 0.12 for h in scores["class_histogram_all"])
    assert scores["target_met"]


def test_scores_of_noise_miss_the_target():
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scores = mnist.score_digits(noise)
    assert not scores["target_met"]
    assert sum(scores["class_histogram_all"]) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ConfigError, match=r"\(N, 1, 28, 28\)"):
        mnist.score_digits(torch.zeros(2, 28, 28))


class _Replay(torch.nn.Module):
    """A 'generator' that returns real digits, to check evaluate_generator against known answers."""

    latent_dim = 1

    def __init__(self, images):
        super().__init__()
        self.register_buffer("images", images)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def sample(self, n, *, seed=None):
        g = torch.Generator().manual_seed(seed or 0)
        return self.images[torch.randint(0, self.images.shape[0], (n,), generator=g)]


def test_evaluate_generator_on_real_digits_and_on_a_collapsed_generator():
    train_x, train_y, _, _ = mnist.mnist_split()
    real = mnist.evaluate_generator(_Replay(train_x), n=500)
    collapsed = mnist.evaluate_generator(_Replay(train_x[train_y == 3][:20]), n=500)
    assert real["confident_share"] > 0.9 and real["target_met"]
    assert real["classifier_held_out_accuracy"] >= 0.97
    assert real["fid"] < 3 * real["fid_real_train_vs_held_out"] + 1
    assert collapsed["class_histogram"][3] > 0.9 and not collapsed["target_met"]
    assert collapsed["fid"] > 5 * real["fid"]
