"""MNIST quality of a digit generator: confident-classification share, class histogram and classifier-feature FID.

The evaluation model is a small CNN trained on a stratified split of the embedded 5,000 real digits
(`train_mnist_classifier`); its weights ship in zoo/metrics/weights/ and are sha256-verified on load.
"""
from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from zoo.data.mnist import load_embedded, stratified_split
from zoo.errors import ConfigError
from zoo.metrics.classifier import DigitClassifier, classifier_features, fit_classifier, predict_proba
from zoo.metrics.fid import fid_from_features

CLASSIFIER_FILE = Path(__file__).parent / "weights" / "mnist-classifier.safetensors"
CLASSIFIER_SHA256 = "a0c0bd6042fcb2234bdba757a7cc858da4fc1030ee882808d7ae4c5a6ef133a6"
HELD_OUT_PER_CLASS = 100
SPLIT_SEED = 0
CLASSIFIER_EPOCHS = 15
CONFIDENCE = 0.9
TARGET_CONFIDENT_SHARE = 0.85
TARGET_CLASS_RANGE = (0.05, 0.15)


def mnist_split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, held-out images, held-out labels) of the embedded 5k, 100 per class held out."""
    images, labels = load_embedded()
    train, held = stratified_split(labels, HELD_OUT_PER_CLASS, seed=SPLIT_SEED)
    return images[train], labels[train], images[held], labels[held]


def train_mnist_classifier(epochs: int = CLASSIFIER_EPOCHS, seed: int = 0) -> DigitClassifier:
    """Train the evaluation classifier on the training split (deterministic for a seed on one thread)."""
    x, y, _, _ = mnist_split()
    torch.manual_seed(seed)
    return fit_classifier(DigitClassifier(), x, y, epochs=epochs, seed=seed)


@functools.lru_cache(maxsize=1)
def load_mnist_classifier() -> DigitClassifier:
    """The shipped evaluation classifier (sha256-verified), in eval mode on the CPU."""
    from zoo.weights import read_state_dict

    model = DigitClassifier()
    model.load_state_dict(read_state_dict(CLASSIFIER_FILE, sha256=CLASSIFIER_SHA256))
    return model.eval()


@torch.no_grad()
def score_digits(images: Tensor, classifier: nn.Module | None = None) -> dict:
    """Confident share (max prob >= 0.9), predicted-class histograms and whether the quality target is met."""
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ConfigError(f"MNIST scoring needs images of shape (N, 1, 28, 28) in [-1, 1], got {tuple(images.shape)}")
    classifier = classifier or load_mnist_classifier()
    proba = predict_proba(classifier, images.float())
    conf, pred = proba.max(dim=1)
    confident = conf >= CONFIDENCE
    n_conf = int(confident.sum())
    hist_conf = torch.bincount(pred[confident], minlength=10).double() / max(n_conf, 1)
    hist_all = torch.bincount(pred, minlength=10).double() / pred.numel()
    share = n_conf / pred.numel()
    low, high = TARGET_CLASS_RANGE
    return {
        "confident_share": round(share, 4),
        "class_histogram": [round(v, 4) for v in hist_conf.tolist()],
        "class_histogram_all": [round(v, 4) for v in hist_all.tolist()],
        "target_met": bool(share >= TARGET_CONFIDENT_SHARE and n_conf > 0
                           and all(low <= v <= high for v in hist_conf.tolist())),
    }


@torch.no_grad()
def evaluate_generator(generator: nn.Module, n: int = 1000, seed: int = 0) -> dict:
    """Score `n` samples of a digit generator (`sample(n, seed=)`) against the held-out real digits."""
    if n < 2:
        raise ConfigError(f"evaluation needs at least 2 samples, got {n}")
    classifier = load_mnist_classifier()
    train_x, _, held_x, held_y = mnist_split()
    fake = generator.sample(n, seed=seed).float().cpu()
    held_proba = predict_proba(classifier, held_x)
    held_feats = classifier_features(classifier, held_x)
    ref = train_x[torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(seed))[:held_x.shape[0]]]
    scores = score_digits(fake, classifier)
    scores.update({
        "n": n,
        "seed": seed,
        "fid": round(fid_from_features(classifier_features(classifier, fake), held_feats), 3),
        "fid_real_train_vs_held_out": round(fid_from_features(classifier_features(classifier, ref), held_feats), 3),
        "classifier_held_out_accuracy": round(float((held_proba.argmax(1) == held_y).double().mean()), 4),
        "real_held_out_confident_share": round(float((held_proba.max(1).values >= CONFIDENCE).double().mean()), 4),
    })
    return scores


def main(argv: list[str] | None = None) -> int:
    """`python -m zoo.metrics.mnist -o FILE`: retrain the evaluation classifier and write its weights + sha256."""
    from zoo.weights import save_weights

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("-o", "--out", default=str(CLASSIFIER_FILE))
    p.add_argument("--epochs", type=int, default=CLASSIFIER_EPOCHS)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = train_mnist_classifier(args.epochs, args.seed)
    _, _, held_x, held_y = mnist_split()
    acc = float((predict_proba(model, held_x).argmax(1) == held_y).double().mean())
    digest = save_weights(args.out, model.state_dict(), {"model": "mnist-classifier", "held_out_accuracy": f"{acc:.4f}"})
    print(json.dumps({"out": args.out, "sha256": digest, "held_out_accuracy": round(acc, 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
