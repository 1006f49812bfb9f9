"""The shipped dcgan-mnist weights: verified load, deterministic sampling, and the card's scores hold up."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
import zoo_dcgan
from zoo.metrics.mnist import score_digits
from zoo.weights import read_metadata, resolve, sha256_file

CARD = Path(zoo_dcgan.__file__).parent / "weights" / "dcgan-mnist.json"
pytestmark = pytest.mark.skipif(not CARD.is_file(), reason="no shipped dcgan-mnist weights in this checkout")


def test_shipped_weights_load_and_sample_deterministically():
    spec = zoo.get_spec("dcgan-mnist")
    path = resolve(spec.weights, download=False)
    assert sha256_file(path) == spec.weights.sha256 == json.loads(CARD.read_text())["sha256"]
    meta = read_metadata(path)
    assert meta["zoo.model"] == "dcgan-mnist" and meta["zoo.dtype"] == "float16"
    g = zoo.load("dcgan-mnist")
    a, b = g.sample(16, seed=0), g.sample(16, seed=0)
    assert a.shape == (16, 1, 28, 28) and torch.equal(a, b)
    assert not torch.equal(a, g.sample(16, seed=1))
    assert -1 <= a.min() and a.max() <= 1


def test_shipped_configuration_is_the_cards():
    card = json.loads(CARD.read_text())
    spec = zoo.get_spec("dcgan-mnist")
    assert spec.config == card["config"]
    saved = json.loads(read_metadata(resolve(spec.weights, download=False))["zoo.config"])
    assert {k: v for k, v in saved.items() if v or k not in ("categorical", "mixture")} == card["config"]
    assert zoo.load("dcgan-mnist").mixture == card["config"].get("mixture", 0)


def test_card_scores_are_reproducible_from_the_shipped_weights():
    card = json.loads(CARD.read_text())
    scores = card["scores"]
    assert card["reproduce"].startswith("zoo train dcgan-mnist") and "zoo export" in card["reproduce"]
    assert zoo.model_card("dcgan-mnist")["scores"] == scores
    g = zoo.load("dcgan-mnist")
    measured = score_digits(g.sample(1000, seed=0))  # the card's numbers come from these very samples
    assert measured["confident_share"] == pytest.approx(scores["confident_share"], abs=0.01)
    assert measured["class_histogram"] == pytest.approx(scores["class_histogram"], abs=0.01)
