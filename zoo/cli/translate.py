"""`zoo translate NAME --direction AtoB in.png -o out.png` (or a folder in, a folder out)."""
from __future__ import annotations

import argparse

from zoo.tasks.translation import DIRECTIONS, translate_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("translate", help="translate images with an image-to-image model (e.g. CycleGAN)")
    p.add_argument("name", help="model name (see `zoo list`)")
    p.add_argument("input", help="an image file, or a folder of images")
    p.add_argument("-o", "--output", required=True, help="output image file, or a folder for a folder input")
    p.add_argument("--direction", default="AtoB", choices=DIRECTIONS, help="AtoB (default) or BtoA")
    p.add_argument("--weights", default=None, help="your own weights (.safetensors, or a reference .pth)")
    p.add_argument("--device", default=None, help="device (default: cuda if available, else cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for path in translate_path(args.name, args.input, args.output, direction=args.direction, weights=args.weights,
                               device=args.device):
        print(path)
    return 0
