"""zoo: a plugin-based model zoo of image GANs for PyTorch, with fused C++/CUDA kernels."""
from zoo.errors import ZooError
from zoo.loading import load
from zoo.plugins import hookimpl
from zoo.registry import ModelSpec, WeightsFile, get_spec, list_models, model_card

__version__ = "0.1.0"
__all__ = ["ModelSpec", "WeightsFile", "ZooError", "get_spec", "hookimpl", "list_models", "load", "model_card"]
