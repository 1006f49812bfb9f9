"""`zoo` command line: each subcommand lives in its own module with `register(subparsers)` and `run(args)`."""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Sequence

from zoo.errors import ZooError

COMMANDS = ["listing", "generate", "translate", "upscale", "train", "evaluate", "bench"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="A model zoo of image GANs for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"zoo.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"zoo.cli.{name}":
                continue  # a command whose module is not part of this build
            raise
        module.register(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"zoo: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user mistakes become one line on stderr and exit code 2, never a traceback."""
    warnings.formatwarning = _format_warning
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if args_list[:1] == ["train"] and len(args_list) > 1 and not args_list[1].startswith("-"):
        args, extra = parser.parse_known_args(args_list[:2])
        args.train_args = args_list[2:]
    else:
        args = parser.parse_args(args_list)
    try:
        return int(args.func(args) or 0)
    except ZooError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable input, unwritable output: the user's environment, not a zoo bug
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
