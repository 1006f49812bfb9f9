"""Fused ops shared by the architectures: InstanceNorm+LeakyReLU and bias+LeakyReLU.

Served by C++/CUDA kernels (torch ops `zoo::*`, built ahead of time by setup.py or just in time on first use) or by
the pure-PyTorch reference; ZOO_OPS_BACKEND=auto|cpp|reference or `use_backend(...)` chooses, `backend_info()` says
which backend serves each device and why.
"""
from zoo.ops._backend import OpsFallbackWarning, backend_info, use_backend
from zoo.ops._checks import OpsTypeError
from zoo.ops.functional import bias_leaky_relu, instance_norm_act
from zoo.ops.modules import FusedLeakyReLU, InstanceNormAct2d, LeakyReLU

__all__ = [
    "FusedLeakyReLU",
    "InstanceNormAct2d",
    "LeakyReLU",
    "OpsFallbackWarning",
    "OpsTypeError",
    "backend_info",
    "bias_leaky_relu",
    "instance_norm_act",
    "use_backend",
]
