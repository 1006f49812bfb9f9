"""`zoo generate NAME -n 64 --seed 0 -o grid.png`: sample a generation model into an image grid."""
from __future__ import annotations

import argparse

from zoo.tasks.generation import generate_grid


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample a generation model into a grid image")
    p.add_argument("name")
    p.add_argument("-n", "--num", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nrow", type=int, default=None, help="images per row (default: square-ish)")
    p.add_argument("-o", "--output", required=True, help="output image file (.png, .jpg)")
    p.add_argument("--weights", default=None, help="your own weights file instead of the shipped ones")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = generate_grid(args.name, args.num, args.output, seed=args.seed, nrow=args.nrow, weights=args.weights,
                         device=args.device)
    print(path)
    return 0
