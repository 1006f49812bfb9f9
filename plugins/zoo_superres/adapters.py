"""Community checkpoints -> our state dicts: BasicSR/Real-ESRGAN wrappers, DataParallel prefixes, the original
ESRGAN release's names (`RRDB_trunk...`) and its oldest sequential layout (`model.N.sub...`); config from keys."""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from zoo.errors import WeightsError

_WRAPPERS = ("params_ema", "params", "state_dict", "model_state_dict", "net_g", "generator")


def unwrap(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Return the tensor mapping inside a checkpoint (prefers `params_ema` over `params`), without `module.`."""
    obj: Any = checkpoint
    for _ in range(3):  # wrappers nest at most a couple of levels deep in practice
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError("checkpoint holds no state dict (expected tensors, or one under 'params_ema'/'params')")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(list(obj)[:5])
        raise WeightsError(f"checkpoint holds no tensors at the top level or under {_WRAPPERS}; found keys: {keys}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in tensors.items()}


def adapt_generic(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Key adapter for models whose checkpoints differ from ours only by wrappers/prefixes."""
    return unwrap(checkpoint)


_OLD_NAMES = [
    (re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$"), r"body.\1.rdb\2.conv\3.\4"),
    (re.compile(r"^trunk_conv\.(weight|bias)$"), r"conv_body.\1"),
    (re.compile(r"^upconv1\.(weight|bias)$"), r"conv_up1.\1"),
    (re.compile(r"^upconv2\.(weight|bias)$"), r"conv_up2.\1"),
    (re.compile(r"^HRconv\.(weight|bias)$"), r"conv_hr.\1"),
]
_OLDEST_BLOCK = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLDEST_TRUNK = re.compile(r"^model\.1\.sub\.(\d+)\.(weight|bias)$")
_OLDEST_TOP = {"0": "conv_first", "3": "conv_up1", "6": "conv_up2", "8": "conv_hr", "10": "conv_last"}
_OLDEST_OTHER = re.compile(r"^model\.(\d+)\.(weight|bias)$")


def _adapt_oldest(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the oldest ESRGAN layout (model.0, model.1.sub.N..., model.3/6/8/10) onto BasicSR names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if m := _OLDEST_BLOCK.match(key):
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = value
        elif m := _OLDEST_TRUNK.match(key):
            out[f"conv_body.{m[2]}"] = value  # the trunk conv is the last entry of model.1.sub
        elif (m := _OLDEST_OTHER.match(key)) and m[1] in _OLDEST_TOP:
            out[f"{_OLDEST_TOP[m[1]]}.{m[2]}"] = value
        else:
            raise WeightsError(
                f"unrecognised key {key!r} in an old-layout ESRGAN checkpoint; only the x4 layout "
                f"(model.0, model.1.sub.*, model.3, model.6, model.8, model.10) is supported"
            )
    return out


def adapt_esrgan(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Key adapter for RRDBNet: BasicSR/Real-ESRGAN (as is), original ESRGAN names, oldest `model.N` layout."""
    sd = unwrap(checkpoint)
    if any(k.startswith("model.") for k in sd):
        return _adapt_oldest(sd)
    out = {}
    for key, value in sd.items():
        for pattern, repl in _OLD_NAMES:
            if pattern.match(key):
                key = pattern.sub(repl, key)
                break
        out[key] = value
    return out


def _need(sd: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    """A key the config inference depends on, or a clear error naming it."""
    if key not in sd:
        raise WeightsError(f"cannot infer the architecture: checkpoint has no {key!r}")
    return sd[key]


def infer_esrgan_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """RRDBNet config (scale, in_channels, num_feat, num_block, num_grow_ch) from an adapted state dict."""
    first = _need(sd, "conv_first.weight")
    last = _need(sd, "conv_last.weight")
    grow = _need(sd, "body.0.rdb1.conv1.weight")
    blocks = {int(m[1]) for k in sd if (m := re.match(r"^body\.(\d+)\.", k))}
    channels = last.shape[0]
    ratio, rem = divmod(first.shape[1], channels)
    scales = {1: 4, 4: 2, 16: 1}
    if rem or ratio not in scales:
        raise WeightsError(
            f"cannot infer the scale: conv_first takes {first.shape[1]} channels for {channels} image channels "
            f"(expected 1x, 4x or 16x for scale 4, 2 or 1)"
        )
    return {"scale": scales[ratio], "in_channels": channels, "num_feat": first.shape[0],
            "num_block": max(blocks) + 1, "num_grow_ch": grow.shape[0]}


def infer_espcn_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """ESPCN config (scale, in_channels, width, mid_width) from a state dict (residual/activation: not in keys)."""
    c1 = _need(sd, "conv1.weight")
    c3 = _need(sd, "conv3.weight")
    channels = c1.shape[1]
    r2, rem = divmod(c3.shape[0], channels)
    scale = round(r2 ** 0.5)
    if rem or scale * scale != r2:
        raise WeightsError(f"cannot infer the scale: conv3 has {c3.shape[0]} outputs for {channels} channels")
    return {"scale": scale, "in_channels": channels, "width": c1.shape[0], "mid_width": c3.shape[1]}


def infer_srresnet_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """SRResNet config (scale, in_channels, num_feat, num_block) from a state dict."""
    head = _need(sd, "head.weight")
    blocks = {int(m[1]) for k in sd if (m := re.match(r"^body\.(\d+)\.", k))}
    ups = sorted({int(m[1]) for k in sd if (m := re.match(r"^upsample\.(\d+)\.conv\.weight$", k))})
    if not blocks or not ups:
        raise WeightsError("cannot infer the architecture: checkpoint has no body.N / upsample.N.conv keys")
    nf = head.shape[0]
    factors = [round((sd[f"upsample.{i}.conv.weight"].shape[0] // nf) ** 0.5) for i in ups]
    scale = 1
    for f in factors:
        scale *= f
    return {"scale": scale, "in_channels": head.shape[1], "num_feat": nf, "num_block": max(blocks) + 1}
