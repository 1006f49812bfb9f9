"""The shipped cyclegan-digits pair: verified load, card contents, and that it really learned the cycle on
held-out digits (reconstructions far closer to the input than an unrelated digit is)."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.data.unpaired import digits_pair


def test_shipped_pair_loads_and_has_a_card():
    card = zoo.model_card("cyclegan-digits")
    assert card["weights"] is not None and card["trainable"]
    for key in ("preservation_AtoB", "preservation_BtoA", "fooling_AtoB", "fooling_BtoA", "reader_B_accuracy"):
        assert 0.0 <= card["scores"][key] <= 1.0
    assert card["reproduce"].startswith("zoo train cyclegan-digits")
    pair = zoo.load("cyclegan-digits")
    assert (pair.G_A.ngf, pair.G_A.n_blocks, pair.in_channels, pair.out_channels) == (16, 6, 1, 1)


def test_shipped_pair_reconstructs_held_out_digits():
    pair = zoo.load("cyclegan-digits")
    test = digits_pair("test")
    a, b = test["A"][::20], test["B"][::8]  # 50 and 45 held-out digits of every class
    with torch.no_grad():
        cycle_a = (pair(pair(a), direction="BtoA") - a).abs().mean().item()
        cycle_b = (pair(pair(b, direction="BtoA")) - b).abs().mean().item()
        other_a = (a.roll(1, 0) - a).abs().mean().item()  # distance to a different digit, for scale
        other_b = (b.roll(1, 0) - b).abs().mean().item()
        ab = pair(a)
    assert ab.shape == a.shape and ab.min() >= -1 and ab.max() <= 1
    assert cycle_a < 0.5 * other_a and cycle_b < 0.5 * other_b


@pytest.mark.slow
def test_shipped_pair_scores_match_its_card():
    """`zoo eval`'s measurement, re-run: the card's preservation and fooling numbers are what the weights do."""
    from zoo_cyclegan.evaluate import evaluate_digits

    scores = zoo.model_card("cyclegan-digits")["scores"]
    measured = evaluate_digits(zoo.load("cyclegan-digits"))
    for key in ("preservation_AtoB", "preservation_BtoA", "fooling_AtoB", "fooling_BtoA", "untranslated_AtoB",
                "untranslated_BtoA"):
        assert measured[key] == pytest.approx(scores[key], abs=0.03), key  # readers retrain: float sums vary
