"""Scores of a digits CycleGAN: class preservation in both directions and how often translations pass for the
target domain. Readers: zoo's shipped MNIST classifier (domain A, same 100-per-class held-out split as
zoo.data.unpaired; digits are put back in the MNIST frame first) and small CNNs trained here with fixed seeds
(UCI digits; A-vs-B domain).

The UCI digits are 8x8 data: the primary B reader looks at images the way the domain was made (area-downsample to
8x8, bicubic back to 32x32), so it judges the digit, not high-frequency texture; a reader on the full 32x32 pixels is
reported too (`*_fullres_reader`), and the domain classifier judges the texture.

Also here: the training-only reader of `--lambda-semantic` (`semantic_reader`), built the same way with its own seed."""
from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.data.unpaired import digits_pair, to_mnist_frame
from zoo.metrics.classifier import DigitClassifier, fit_classifier, predict_proba
from zoo.metrics.mnist import load_mnist_classifier

CLASSIFIER_EPOCHS = 6
SEED = 0
SEMANTIC_SEED = 1
UCI_NATIVE = 8


class _Preprocessed(nn.Module):
    """A classifier fed `transform(x)`: a reader that looks at digits the way its training data was made."""

    def __init__(self, classifier: nn.Module, transform: Callable[[Tensor], Tensor]):
        super().__init__()
        self.classifier, self.transform = classifier, transform

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.transform(x))


def native_resolution(x: Tensor) -> Tensor:
    """32x32 digits seen at the UCI data's native 8x8 (area average), bicubic back up as zoo.data.unpaired does."""
    small = F.adaptive_avg_pool2d(x, UCI_NATIVE)
    return F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)


def _fit(images: Tensor, labels: Tensor, classes: int, epochs: int, seed: int = SEED) -> nn.Module:
    """A DigitClassifier trained with a fixed seed; the caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(in_channels=1, num_classes=classes, image_size=images.shape[-1])
    return fit_classifier(model, images, labels, epochs=epochs, seed=seed)


def _both_domains(train: dict[str, Tensor], seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The UCI train split and as many random MNIST train digits (so both domains weigh the same): images, digit
    labels, domain labels (0 = A, 1 = B)."""
    n_b = len(train["B"])
    some_a = torch.randperm(len(train["A"]), generator=torch.Generator().manual_seed(seed))[:n_b]
    images = torch.cat([train["A"][some_a], train["B"]])
    digits = torch.cat([train["labels_A"][some_a], train["labels_B"]])
    return images, digits, torch.cat([torch.zeros(n_b, dtype=torch.long), torch.ones(n_b, dtype=torch.long)])


@functools.lru_cache(maxsize=2)
def classifiers(epochs: int = CLASSIFIER_EPOCHS) -> dict[str, nn.Module]:
    """Digit readers for domain A (MNIST) and B (UCI), and an A-vs-B domain classifier (`_both_domains`)."""
    train = digits_pair("train")
    both, _, domain = _both_domains(train, SEED)
    reader_b = _fit(native_resolution(train["B"]), train["labels_B"], 10, epochs)
    return {"A": _Preprocessed(load_mnist_classifier(), to_mnist_frame).eval(),
            "B": _Preprocessed(reader_b, native_resolution).eval(),
            "B_fullres": _fit(train["B"], train["labels_B"], 10, epochs),
            "domain": _fit(both, domain, 2, epochs)}


@functools.lru_cache(maxsize=1)
def semantic_reader(epochs: int = CLASSIFIER_EPOCHS, seed: int = SEMANTIC_SEED) -> nn.Module:
    """A frozen digit reader fluent in both writing styles, for training (`--lambda-semantic`), never for scoring:
    one CNN on `_both_domains` digits at full 32x32, with its own seed."""
    images, digits, _ = _both_domains(digits_pair("train"), seed)
    reader = _fit(images, digits, 10, epochs, seed)
    reader.zero_grad(set_to_none=True)
    return reader.requires_grad_(False).eval()


def _accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    return (predict_proba(model, images).argmax(1) == labels).float().mean().item()


@torch.no_grad()
def _translate(model: nn.Module, images: Tensor, direction: str, batch: int = 200) -> Tensor:
    param = next(model.parameters())
    return torch.cat([model(images[i:i + batch].to(param.device, param.dtype), direction=direction).float().cpu()
                      for i in range(0, len(images), batch)]).clamp(-1, 1)


def evaluate_digits(model: nn.Module, *, epochs: int = CLASSIFIER_EPOCHS) -> dict[str, float]:
    """On the held-out test splits (1,000 MNIST, 360 UCI digits): preservation = the target domain's reader
    returns the source label; fooling = the domain classifier calls the translation target-domain. Also the
    readers' own test accuracies and the untranslated baseline (the target reader on raw source images)."""
    clf = classifiers(epochs)
    test = digits_pair("test")
    a, b, ya, yb = test["A"], test["B"], test["labels_A"], test["labels_B"]
    ab, ba = _translate(model, a, "AtoB"), _translate(model, b, "BtoA")
    is_a, is_b = torch.zeros(len(a), dtype=torch.long), torch.ones(len(b), dtype=torch.long)
    domain_acc = (_accuracy(clf["domain"], a, is_a) * len(a) + _accuracy(clf["domain"], b, is_b) * len(b))
    scores = {
        "preservation_AtoB": _accuracy(clf["B"], ab, ya),
        "preservation_BtoA": _accuracy(clf["A"], ba, yb),
        "fooling_AtoB": _accuracy(clf["domain"], ab, torch.ones(len(a), dtype=torch.long)),
        "fooling_BtoA": _accuracy(clf["domain"], ba, torch.zeros(len(b), dtype=torch.long)),
        "preservation_AtoB_fullres_reader": _accuracy(clf["B_fullres"], ab, ya),
        "untranslated_AtoB": _accuracy(clf["B"], a, ya),
        "untranslated_BtoA": _accuracy(clf["A"], b, yb),
        "reader_A_accuracy": _accuracy(clf["A"], a, ya),
        "reader_B_accuracy": _accuracy(clf["B"], b, yb),
        "reader_B_fullres_accuracy": _accuracy(clf["B_fullres"], b, yb),
        "domain_classifier_accuracy": domain_acc / (len(a) + len(b)),
    }
    return {k: round(v, 4) for k, v in scores.items()}
