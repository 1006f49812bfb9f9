"""Classifier CNN, FID math (scipy sqrtm) and the MNIST generator scores with the shipped evaluation classifier."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.errors import ConfigError
from zoo.metrics.classifier import DigitClassifier, classifier_features, fit_classifier, predict_proba
from zoo.metrics.fid import feature_statistics, fid_from_features, frechet_distance


def test_fid_of_identical_sets_is_zero():
    f = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-6)


def test_fid_closed_form_for_gaussians():
    # diagonal covariances: FID = |mu1-mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2))
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 5.0 + float(np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_fid_matches_a_full_covariance_reference():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = np.sum((mu_a - mu_b) ** 2) + np.trace(ca + cb - 2 * sqrtm(ca @ cb).real)
    assert fid_from_features(torch.from_numpy(a), b) == pytest.approx(ref, rel=1e-8)
    assert fid_from_features(a, b) > fid_from_features(a, a[::-1].copy()) >= 0
    mu, cov = feature_statistics(a)
    assert mu.shape == (6,) and cov.shape == (6, 6)


def test_fid_input_errors():
    with pytest.raises(ConfigError, match=r"\(N, D\)"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ConfigError, match="mismatched"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def _two_blobs(n=256):
    """Two easy classes: a bright left half vs a bright right half (with noise)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.full((n, 1, 28, 28), -1.0) + 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    x[y == 0, :, :, :14] += 1.5
    x[y == 1, :, :, 14:] += 1.5
    return x.clamp(-1, 1), y


def test_classifier_learns_and_reports_probabilities_and_features():
    x, y = _two_blobs()
    torch.manual_seed(0)
    model = fit_classifier(DigitClassifier(num_classes=2), x, y, epochs=2, batch_size=64, seed=0)
    p = predict_proba(model, x, batch_size=100)
    assert p.shape == (256, 2) and torch.allclose(p.sum(1), torch.ones(256), atol=1e-5)
    assert (p.argmax(1) == y).float().mean() > 0.95
    f = classifier_features(model, x)
    assert f.shape == (256, 128) and f.dtype == torch.float64
    model.train()
    predict_proba(model, x[:4])
    assert model.training  # mode restored


def _twin_classifiers() -> tuple[DigitClassifier, DigitClassifier]:
    """Two 2-class classifiers with the same initial weights."""
    torch.manual_seed(5)
    a = DigitClassifier(num_classes=2)
    b = DigitClassifier(num_classes=2)
    b.load_state_dict(a.state_dict())
    return a, b


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_fit_classifier_is_deterministic_and_leaves_global_rng_alone():
    x, y = _two_blobs(64)
    a, b = _twin_classifiers()
    state = torch.get_rng_state()
    fit_classifier(a, x, y, epochs=1, batch_size=32, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    fit_classifier(b, x, y, epochs=1, batch_size=32, seed=7)
    assert _same_weights(a, b)


def test_fit_classifier_trains_the_same_under_a_callers_no_grad():
    """Evaluations that fit a reader (cyclegan-digits) are called under no_grad by the trainer's --eval-every."""
    x, y = _two_blobs(64)
    a, b = _twin_classifiers()
    fit_classifier(a, x, y, epochs=1, batch_size=32, seed=7)
    with torch.no_grad():
        fit_classifier(b, x, y, epochs=1, batch_size=32, seed=7)
    assert _same_weights(a, b)
    with torch.no_grad():  # and the caller's mode is restored
        fit_classifier(b, x, y, epochs=1, batch_size=32, seed=7)
        assert not torch.is_grad_enabled()


def test_classifier_input_errors():
    model = DigitClassifier()
    with pytest.raises(ConfigError, match=r"\(N, 1, 28, 28\)"):
        model(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ConfigError, match="multiple of 4"):
        DigitClassifier(image_size=30)
    with pytest.raises(ConfigError, match="as many labels"):
        fit_classifier(model, torch.zeros(3, 1, 28, 28), torch.zeros(2), epochs=1)
