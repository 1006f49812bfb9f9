"""`zoo bench [--quick] [--json out.json] [--markdown out.md] [--chart out.png] [--from-json in.json]`: run the
fused-ops and model benchmarks (or re-render a saved run) and print the results table."""
from __future__ import annotations

import argparse
import shlex

from zoo.errors import ConfigError


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x64x32x32' -> (1, 64, 32, 32); anything else is a ConfigError naming the expected form."""
    try:
        shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise ConfigError(f"--shape must be four positive sizes N x C x H x W like 1x64x32x32, got {text!r}")
    return shape


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark the fused ops and the models (fused vs eager vs torch.compile)",
                       description="Time the fused ops (cpp backend) against the reference (eager) and "
                                   "torch.compile(reference), and each trainable model with both backends.")
    p.add_argument("--quick", action="store_true", help="small subset and few rounds (about a minute)")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    p.add_argument("--markdown", metavar="OUT", help="write the results table as markdown")
    p.add_argument("--chart", metavar="OUT", help="write a PNG bar chart of the speedups")
    p.add_argument("--from-json", metavar="IN", help="render a saved JSON report instead of running")
    p.add_argument("--rounds", type=int, default=0, help="interleaved rounds per case (default 9, quick 5)")
    p.add_argument("--only", default="", metavar="TEXT", help="run only op cases / models whose name contains TEXT")
    p.add_argument("--shape", action="append", default=None, metavar="NxCxHxW",
                   help="op shapes to run instead of the standard ones (repeatable)")
    p.add_argument("--model-budget", type=float, default=0.0, metavar="SECONDS",
                   help="time budget per model and kind (default 20, quick 3); slower models are skipped")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's default)")
    p.add_argument("--no-fused", action="store_true", help="skip the fused (cpp backend) variant")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--no-nn", action="store_true",
                   help="skip the nn variant (PyTorch's F.instance_norm + F.leaky_relu, instance_norm_act only)")
    p.add_argument("--no-nn-compile", action="store_true", help="skip the torch.compile variant of nn")
    p.add_argument("--no-models", action="store_true", help="skip the model-level benchmark")
    p.add_argument("--no-steady-alloc", action="store_true",
                   help="let glibc return large freed buffers to the OS (outputs then page-fault on every call)")
    p.set_defaults(func=run)


def canonical_command(args: argparse.Namespace) -> str:
    """The `zoo bench` command line that reproduces this run (recorded in the report)."""
    parts = ["zoo", "bench"]
    if args.quick:
        parts.append("--quick")
    for flag in ("rounds", "threads", "model_budget", "only"):
        if getattr(args, flag):
            parts += ["--" + flag.replace("_", "-"), f"{getattr(args, flag):g}" if flag == "model_budget"
                      else str(getattr(args, flag))]
    for shape in args.shape or []:
        parts += ["--shape", shape]
    for flag in ("no_fused", "no_compile", "no_nn", "no_nn_compile", "no_models", "no_steady_alloc"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    for flag in ("json", "markdown", "chart"):
        if getattr(args, flag):
            parts += [f"--{flag}", getattr(args, flag)]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from zoo.bench import report as rep
    from zoo.bench.cases import VARIANTS
    from zoo.bench.suite import Config
    from zoo.bench.suite import run as run_suite

    for flag in ("rounds", "threads", "model_budget"):
        if getattr(args, flag) < 0:
            raise ConfigError(f"--{flag.replace('_', '-')} must be positive (or 0 for the default), "
                              f"got {getattr(args, flag)}")
    if args.from_json:
        report = rep.read_json(args.from_json)
    else:
        shapes = [parse_shape(s) for s in args.shape] if args.shape else None
        cfg = Config(quick=args.quick, rounds=args.rounds, shapes=shapes, only=args.only,
                     variants=tuple(v for v in VARIANTS if not getattr(args, "no_" + v.replace("-", "_"), False)),
                     models=not args.no_models, steady_alloc=not args.no_steady_alloc, threads=args.threads,
                     model_budget_s=args.model_budget,
                     command=canonical_command(args))
        report = run_suite(cfg)
    if args.json:
        rep.write_json(report, args.json)
    if args.markdown:
        rep.write_markdown(report, args.markdown)
    if args.chart:
        rep.write_chart(report, args.chart)
    print(rep.render_markdown(report))
    return 0
