"""`zoo train NAME [recipe flags]` and `zoo export RUN_DIR -o weights.safetensors [--half]`."""
from __future__ import annotations

import argparse
import os
import sys

from zoo.registry import get_spec
from zoo.train import export_run, options_parser, run_training


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (`zoo train NAME --help` lists its options)", add_help=False)
    p.add_argument("name", nargs="?")
    p.add_argument("-h", "--help", action="store_true")
    p.set_defaults(func=run_train, train_args=[])
    p = sub.add_parser("export", help="turn a training run into a shippable safetensors file")
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--half", action="store_true", help="store float tensors as float16")
    p.set_defaults(func=run_export)


def run_train(args: argparse.Namespace) -> int:
    if args.name is None:
        print("usage: zoo train NAME [options]   (zoo train NAME --help lists the options of NAME's recipe)",
              file=sys.stdout if args.help else sys.stderr)
        return 0 if args.help else 2
    if args.help or "-h" in args.train_args or "--help" in args.train_args:
        options_parser(get_spec(args.name)).print_help()
        return 0
    run_dir = run_training(args.name, args.train_args)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(run_dir)
    return 0


def run_export(args: argparse.Namespace) -> int:
    path, sha = export_run(args.run_dir, args.output, half=args.half)
    print(f"{path}  sha256 {sha}")
    return 0
