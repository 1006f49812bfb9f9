"""zoo plugin: GAN super-resolution — ESPCN (shipped x2 weights), SRResNet/SRGAN and ESRGAN (RRDBNet, loads
BasicSR / Real-ESRGAN / original ESRGAN checkpoints unchanged)."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

import zoo
from zoo.tasks.superres import evaluate

from .adapters import adapt_esrgan, adapt_generic, infer_esrgan_config, infer_espcn_config, infer_srresnet_config
from .networks import build_espcn, build_rrdbnet, build_srresnet
from .recipes import ESPCNRecipe, ESRGANRecipe, PixelRecipe, SRGANRecipe

_CONTRACT = ("forward(x): x float (N,C,H,W) in [0,1], C = in_channels (1 or 3) -> (N,C,H*scale,W*scale), "
             "clamped to [0,1] by zoo.tasks.superres; H, W multiples of size_multiple")


def _shipped(stem: str) -> tuple[zoo.WeightsFile | None, dict[str, Any]]:
    """The shipped weight file and its card JSON (sha256, scores, reproduce command), if present."""
    card_path = resources.files(__name__).joinpath("weights", f"{stem}.json")
    if not card_path.is_file():
        return None, {}
    card = json.loads(card_path.read_text())
    wf = zoo.WeightsFile(filename=card["filename"], sha256=card["sha256"], package=__name__, size=card.get("size"))
    return wf, card


def _espcn_specs() -> list[zoo.ModelSpec]:
    specs = []
    for scale in (2, 3, 4):
        wf, card = _shipped(f"espcn-x{scale}")
        # Default: the variant that trained best here (ReLU + bicubic skip; 128/64 wide was no better than 64/32);
        # the paper's is activation="tanh", residual=False.
        config = card.get("config", {"scale": scale, "width": 64, "mid_width": 32, "activation": "relu",
                                     "residual": True})
        act = config.get("activation", "tanh")
        specs.append(zoo.ModelSpec(
            name=f"espcn-x{scale}", task="super-resolution", builder=build_espcn, config=config, weights=wf,
            architecture=f"ESPCN: conv5x5 ({config.get('width', 64)})-{act}, conv3x3 ({config.get('mid_width', 32)})-"
                         f"{act}, conv3x3 to C*r^2, PixelShuffle(r)"
                         + (" + bicubic skip (predicts the residual over bicubic)" if config.get("residual") else ""),
            paper="Shi et al. 2016, Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel "
                  "Convolutional Neural Network (arXiv:1609.05158)",
            training_data=card.get("training_data", ""), contract=_CONTRACT, reproduce=card.get("reproduce", ""),
            scores=card.get("scores", {}), key_adapter=adapt_generic, infer_config=infer_espcn_config,
            recipe=ESPCNRecipe, evaluate=evaluate,
            description=f"Small fast x{scale} upscaler" + (" (trained here; weights shipped)" if wf else
                                                          " (architecture only; train it with `zoo train`)"),
        ))
    return specs


def _gan_specs() -> list[zoo.ModelSpec]:
    paper_srgan = ("Ledig et al. 2017, Photo-Realistic Single Image Super-Resolution Using a Generative "
                   "Adversarial Network (arXiv:1609.04802)")
    return [
        zoo.ModelSpec(
            name="srresnet-x4", task="super-resolution", builder=build_srresnet,
            config={"scale": 4, "num_feat": 64, "num_block": 16},
            architecture="SRResNet: conv9x9-PReLU, 16 x (conv-BN-PReLU-conv-BN) residual blocks, conv-BN, global "
                         "skip, 2 x (conv, PixelShuffle(2), PReLU), conv9x9",
            paper=paper_srgan, contract=_CONTRACT, key_adapter=adapt_generic, infer_config=infer_srresnet_config,
            recipe=PixelRecipe, evaluate=evaluate,
            description="SRResNet x4 trained with a pixel (L1) loss (stage 1)",
        ),
        zoo.ModelSpec(
            name="srgan-x4", task="super-resolution", builder=build_srresnet,
            config={"scale": 4, "num_feat": 64, "num_block": 16},
            architecture="SRGAN generator (= SRResNet) trained against a VGG-style discriminator "
                         "(8 convs, Dense(1024), LeakyReLU(0.2) via zoo.ops, Dense(1))",
            paper=paper_srgan, contract=_CONTRACT, key_adapter=adapt_generic, infer_config=infer_srresnet_config,
            recipe=SRGANRecipe, evaluate=evaluate,
            description="SRGAN x4 generator (stage 2: adversarial + pixel/perceptual)",
        ),
        zoo.ModelSpec(
            name="esrgan", task="super-resolution", builder=build_rrdbnet,
            config={"scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32},
            architecture="ESRGAN RRDBNet (BasicSR keys): conv_first, 23 RRDB (3 dense blocks of 5 convs, gc 32), "
                         "conv_body, 2 x (nearest x2, conv, LeakyReLU), conv_hr, conv_last; scale 2/1 by "
                         "pixel_unshuffle; fused bias+LeakyReLU",
            paper="Wang et al. 2018, ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks "
                  "(arXiv:1809.00219)",
            contract=_CONTRACT, key_adapter=adapt_esrgan, infer_config=infer_esrgan_config,
            recipe=ESRGANRecipe, evaluate=evaluate,
            description="ESRGAN / Real-ESRGAN generator; load BasicSR, Real-ESRGAN or original ESRGAN checkpoints "
                        "with weights=PATH (scale, blocks and widths are read from the keys)",
        ),
    ]


@zoo.hookimpl
def register_models(register) -> None:
    """Register the super-resolution models with the zoo registry."""
    for spec in _espcn_specs() + _gan_specs():
        register(spec)
