"""zoo.load: build a registered architecture, load verified weights (shipped or the user's own), eval mode."""
from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from zoo.errors import ConfigError, WeightsError
from zoo.registry import ModelSpec, get_spec
from zoo.weights import load_weights_file, read_metadata, read_state_dict, sidecar_sha256


def _describe_mismatch(module: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    parts = []
    if missing:
        parts.append(f"missing keys: {', '.join(missing[:20])}" + (" ..." if len(missing) > 20 else ""))
    if unexpected:
        parts.append(f"unexpected keys: {', '.join(unexpected[:20])}" + (" ..." if len(unexpected) > 20 else ""))
    for k in shapes[:20]:
        parts.append(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
    return "; ".join(parts) if parts else None


def load_state(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strictly load `state` into `module`, converting dtypes; a mismatch is one error listing the bad keys."""
    problem = _describe_mismatch(module, state)
    if problem:
        raise WeightsError(f"weights from {source} do not fit {type(module).__name__}: {problem}")
    own = module.state_dict()
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def _read_user_weights(spec: ModelSpec, path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = read_state_dict(path, sha256=sidecar_sha256(path))
    if spec.key_adapter is not None:
        state = spec.key_adapter(state)
    config: dict[str, Any] = {}
    if spec.infer_config is not None:
        config.update(spec.infer_config(state))
    if str(path).endswith(".safetensors"):
        meta = read_metadata(path)
        model = meta.get("zoo.model")
        if model and model != spec.name:
            raise WeightsError(f"{path} holds weights for model {model!r}, not {spec.name!r}")
        if "zoo.config" in meta:
            config.update(json.loads(meta["zoo.config"]))
    return state, config


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device, or a ConfigError if it is malformed or not available on this machine."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {str(device)!r}: expected e.g. cpu, cuda, cuda:1") from exc
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        found = f"{torch.cuda.device_count()} CUDA device(s)" if torch.cuda.is_available() else "no CUDA"
        raise ConfigError(f"device {str(device)!r} is not available (this machine has {found}); use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {str(device)!r} is not available on this machine; use --device cpu")
    return dev


def load(name: str, *, pretrained: bool = True, weights: str | os.PathLike | None = None,
         device: str | torch.device | None = None, **overrides: Any) -> nn.Module:
    """Build model `name`, load its weights (shipped ones, or a local `weights` file) and return it in eval mode.

    `overrides` change the builder's configuration; with a foreign checkpoint the configuration is inferred from
    its keys where the plugin knows how, and explicit overrides still win.
    """
    spec = get_spec(name)
    if device is not None:
        device = check_device(device)
    config = dict(spec.config)
    if weights is not None:
        state, inferred = _read_user_weights(spec, weights)
        config.update(inferred)
        source = str(weights)
    elif pretrained:
        if spec.weights is None:
            raise WeightsError(
                f"model {name!r} has no pretrained weights; pass pretrained=False for a random init "
                f"or weights=PATH for your own checkpoint"
            )
        state = load_weights_file(spec.weights)
        if spec.key_adapter is not None:
            state = spec.key_adapter(state)
        source = spec.weights.filename
    else:
        state, source = None, ""
    config.update(overrides)
    try:
        module = spec.builder(**config)
    except TypeError as exc:
        raise ConfigError(f"invalid configuration for {name!r} {config}: {exc}") from exc
    if state is not None:
        load_state(module, state, source)
    module.eval()
    if device is not None:
        module.to(device)
    return module
