"""`zoo upscale NAME IN -o OUT [--tile 256 --tile-overlap 16]`: super-resolve an image, or every image of a folder."""
from __future__ import annotations

import argparse
from pathlib import Path

import zoo
from zoo.errors import ConfigError
from zoo.tasks.superres import DEFAULT_OVERLAP, DEFAULT_TILE, upscale_file, upscale_folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="super-resolve an image (or a folder of images) with an SR model")
    p.add_argument("name", help="super-resolution model, e.g. espcn-x2 or esrgan")
    p.add_argument("input", help="image file, or a folder (then -o is a folder too)")
    p.add_argument("-o", "--output", required=True, help="output image file, or output folder in folder mode")
    p.add_argument("--weights", default=None, help="weights file (e.g. a Real-ESRGAN .pth) instead of shipped ones")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help=f"tile size in input pixels; 0 = whole image at once (default {DEFAULT_TILE})")
    p.add_argument("--tile-overlap", type=int, default=DEFAULT_OVERLAP,
                   help=f"context pixels around each tile, blended (default {DEFAULT_OVERLAP})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--half", action=argparse.BooleanOptionalAction, default=None,
                   help="float16 on GPU (default: on for CUDA, with float32 fallback on NaN; CPU is float32)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = zoo.get_spec(args.name)
    if spec.task != "super-resolution":
        raise ConfigError(f"model {args.name!r} is a {spec.task} model; `upscale` needs a super-resolution model")
    if args.tile < 0:
        raise ConfigError(f"--tile must be >= 0, got {args.tile}")
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = zoo.load(args.name, weights=args.weights, device=device)
    options = {"tile": args.tile or None, "overlap": args.tile_overlap, "device": device, "half": args.half}
    src = Path(args.input)
    if src.is_dir():
        for path in upscale_folder(model, src, args.output, **options):
            print(path)
    else:
        print(upscale_file(model, src, args.output, **options))
    return 0
