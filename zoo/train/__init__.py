"""Training: plugins supply a Recipe, the engine runs it (progress, checkpoints, resume, torchrun data parallel)."""
from zoo.train.engine import export_run, make_options, options_parser, parse_options, run_training
from zoo.train.recipe import Recipe, TrainOptions

__all__ = ["Recipe", "TrainOptions", "export_run", "make_options", "options_parser", "parse_options",
           "run_training"]
