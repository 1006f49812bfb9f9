"""Scores of a digits CycleGAN: class preservation in both directions and how often translations pass for the
target domain, read by small CNNs trained here on the held-in splits of each domain (deterministic seeds)."""
from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from zoo.data.unpaired import digits_pair
from zoo.metrics.classifier import DigitClassifier, fit_classifier, predict_proba

CLASSIFIER_EPOCHS = 6
SEED = 0


def _fit(images: Tensor, labels: Tensor, classes: int, epochs: int) -> nn.Module:
    torch.manual_seed(SEED)
    model = DigitClassifier(in_channels=1, num_classes=classes, image_size=images.shape[-1])
    return fit_classifier(model, images, labels, epochs=epochs, seed=SEED)


@functools.lru_cache(maxsize=2)
def classifiers(epochs: int = CLASSIFIER_EPOCHS) -> dict[str, nn.Module]:
    """Digit classifiers for domain A (MNIST) and B (UCI), and an A-vs-B domain classifier, on the train splits."""
    train = digits_pair("train")
    both = torch.cat([train["A"], train["B"]])
    domain = torch.cat([torch.zeros(len(train["A"]), dtype=torch.long), torch.ones(len(train["B"]), dtype=torch.long)])
    return {"A": _fit(train["A"], train["labels_A"], 10, epochs), "B": _fit(train["B"], train["labels_B"], 10, epochs),
            "domain": _fit(both, domain, 2, epochs)}


def _accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    return (predict_proba(model, images).argmax(1) == labels).float().mean().item()


@torch.no_grad()
def _translate(model: nn.Module, images: Tensor, direction: str, batch: int = 200) -> Tensor:
    param = next(model.parameters())
    return torch.cat([model(images[i:i + batch].to(param.device, param.dtype), direction=direction).float().cpu()
                      for i in range(0, len(images), batch)]).clamp(-1, 1)


def evaluate_digits(model: nn.Module, *, epochs: int = CLASSIFIER_EPOCHS) -> dict[str, float]:
    """Held-out test splits (1,000 MNIST, 360 UCI digits): preservation = the target domain's classifier reads
    the source label; fooling = the domain classifier calls the translation target-domain. Also the
    classifiers' own test accuracies and the untranslated baseline (the target classifier on raw source images)."""
    clf = classifiers(epochs)
    test = digits_pair("test")
    a, b, ya, yb = test["A"], test["B"], test["labels_A"], test["labels_B"]
    ab, ba = _translate(model, a, "AtoB"), _translate(model, b, "BtoA")
    ones, zeros = torch.ones(len(a), dtype=torch.long), torch.zeros(len(b), dtype=torch.long)
    scores = {
        "preservation_AtoB": _accuracy(clf["B"], ab, ya),
        "preservation_BtoA": _accuracy(clf["A"], ba, yb),
        "fooling_AtoB": _accuracy(clf["domain"], ab, ones),
        "fooling_BtoA": _accuracy(clf["domain"], ba, zeros),
        "untranslated_AtoB": _accuracy(clf["B"], a, ya),
        "untranslated_BtoA": _accuracy(clf["A"], b, yb),
        "classifier_A_accuracy": _accuracy(clf["A"], a, ya),
        "classifier_B_accuracy": _accuracy(clf["B"], b, yb),
        "domain_classifier_accuracy": (_accuracy(clf["domain"], a, torch.zeros(len(a), dtype=torch.long)) * len(a)
                                       + _accuracy(clf["domain"], b, torch.ones(len(b), dtype=torch.long)) * len(b))
                                      / (len(a) + len(b)),
    }
    return {k: round(v, 4) for k, v in scores.items()}
