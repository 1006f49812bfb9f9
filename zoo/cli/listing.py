"""`zoo list`, `zoo info NAME`, `zoo plugins`: what is installed and what each model is."""
from __future__ import annotations

import argparse
import json

import zoo
from zoo.plugins import plugins


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list models (fnmatch pattern, task filter)")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--task", choices=["generation", "translation", "super-resolution"])
    p.add_argument("--pretrained", action="store_true", help="only models with shipped weights")
    p.set_defaults(func=run_list)
    p = sub.add_parser("info", help="the model card of a model")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.set_defaults(func=run_info)
    p = sub.add_parser("plugins", help="installed plugins, their distributions and models")
    p.set_defaults(func=run_plugins)


def run_list(args: argparse.Namespace) -> int:
    names = zoo.list_models(args.pattern, task=args.task, pretrained=True if args.pretrained else None)
    rows = [(n, zoo.get_spec(n)) for n in names]
    width = max((len(n) for n in names), default=4)
    print(f"{'name':<{width}}  {'task':<16}  {'weights':<7}  {'train':<5}  architecture")
    for name, spec in rows:
        print(f"{name:<{width}}  {spec.task:<16}  {'yes' if spec.weights else '-':<7}  "
              f"{'yes' if spec.recipe else '-':<5}  {spec.architecture}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    card = zoo.model_card(args.name)
    if args.json:
        print(json.dumps(card, indent=2, sort_keys=True))
        return 0
    print(f"# {card['name']}")
    for key in ("description", "task", "architecture", "paper", "training_data", "contract", "plugin"):
        if card[key]:
            print(f"{key.replace('_', ' ')}: {card[key]}")
    print(f"parameters: {card['parameters']:,}")
    print(f"config: {json.dumps(card['config'], sort_keys=True)}")
    w = card["weights"]
    if w:
        size = f"{w['size']:,} bytes" if w["size"] is not None else "not downloaded yet"
        print(f"weights: {w['filename']} ({size}, {w['source']})\n  sha256: {w['sha256']}")
    else:
        print("weights: none (architecture only; load your own checkpoint with weights=PATH)")
    if card["scores"]:
        print("scores:")
        for k, v in card["scores"].items():
            print(f"  {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}")
    if card["reproduce"]:
        print(f"reproduce:\n  {card['reproduce']}")
    return 0


def run_plugins(args: argparse.Namespace) -> int:
    for info in plugins():
        status = f"SKIPPED: {info.error}" if info.error else f"{len(info.models)} models: {', '.join(info.models)}"
        print(f"{info.name}  ({info.distribution} {info.version})  {status}")
    return 0
