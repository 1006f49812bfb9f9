"""`zoo eval NAME [--weights F] [--json out.json]`: measure a model with its plugin's evaluation."""
from __future__ import annotations

import argparse
import json

import torch

import zoo
from zoo.errors import ConfigError
from zoo.io import atomic_write


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a model with its plugin's evaluation (the numbers in its card)")
    p.add_argument("name")
    p.add_argument("--weights", default=None, help="weights file to score instead of the shipped ones")
    p.add_argument("--json", default=None, help="also write the scores as JSON to this file")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = zoo.get_spec(args.name)
    if spec.evaluate is None:
        raise ConfigError(f"model {args.name!r} has no evaluation; its plugin does not define one")
    model = zoo.load(args.name, weights=args.weights, device=args.device)
    with torch.no_grad():
        scores = spec.evaluate(model)
    text = json.dumps(scores, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with atomic_write(args.json, "w") as f:
            f.write(text + "\n")
    return 0
