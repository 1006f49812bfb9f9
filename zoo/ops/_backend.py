"""The one place that picks the ops backend: compiled extension (ahead of time or JIT) or the PyTorch reference.

Request: use_backend(...) > ZOO_OPS_BACKEND > "auto". "cpp" demands the compiled kernels (error if they cannot serve
the device), "reference" never loads them, "auto" uses them where they exist and otherwise falls back to the
reference with exactly one warning per device type naming the reason. The extension is loaded (or built) once per
process; a failure is remembered and never retried in the same process.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import threading
import warnings
from typing import Any, Iterator

import torch

from zoo.errors import ConfigError

BACKENDS = ("auto", "cpp", "reference")
ENV = "ZOO_OPS_BACKEND"


class OpsFallbackWarning(UserWarning):
    """The compiled ops are unavailable, so the slower PyTorch reference serves them."""


_overrides: list[str] = []
_lock = threading.RLock()
_ext: dict[str, Any] = {"status": "not loaded", "origin": None, "path": None, "reason": None, "log": None,
                        "cuda_failure": None}
_warned: set[str] = set()


def _validate(name: object, where: str) -> str:
    """A backend name, normalised; anything else is a ConfigError naming where it came from."""
    value = str(name).strip().lower()
    if value not in BACKENDS:
        raise ConfigError(f"{where} must be one of {', '.join(BACKENDS)}; got {name!r}")
    return value


def requested() -> tuple[str, str]:
    """The requested backend and where the request came from."""
    if _overrides:
        return _overrides[-1], "use_backend()"
    env = os.environ.get(ENV)
    if env:
        return _validate(env, ENV), f"environment {ENV}"
    return "auto", "default"


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Serve the ops from `name` ("auto" | "cpp" | "reference") inside the with-block (nestable)."""
    value = _validate(name, "use_backend(name)")
    _overrides.append(value)
    try:
        yield
    finally:
        _overrides.pop()


def load_extension() -> bool:
    """Load the compiled ops once (ahead-of-time zoo._C, else a JIT build); True when they are available."""
    with _lock:
        if _ext["status"] != "not loaded":
            return _ext["status"] == "loaded"
        try:
            from zoo.ops import _build
            from zoo.ops._flags import read_cuda_failure

            spec = importlib.util.find_spec("zoo._C")
            why = "zoo._C is not built" if spec is None else f"{spec.origin} was built from other sources"
            if spec is not None and spec.origin and _build.aot_binary_is_current(spec.origin):
                try:
                    importlib.import_module("zoo._C")
                    _ext.update(origin="ahead-of-time (setup.py)", path=spec.origin,
                                cuda_failure=read_cuda_failure(spec.origin))
                    why = None
                except (ImportError, OSError) as exc:  # e.g. built against another torch: undefined symbols
                    why = f"{spec.origin} failed to load ({exc})"
            if why is not None:
                if os.environ.get("ZOO_OPS_NO_JIT"):
                    raise RuntimeError(f"{why} and ZOO_OPS_NO_JIT is set")
                built = _build.build_and_load()
                _ext.update(origin=f"just-in-time (torch.utils.cpp_extension.load; {why})", path=str(built.path),
                            cuda_failure=built.cuda_failure)
            from zoo.ops import _registration  # noqa: F401  (fake kernels for the loaded ops)

            _ext["status"] = "loaded"
        except Exception as exc:  # any failure means "fall back", with the reason recorded once
            _ext.update(status="failed", reason=str(exc), log=str(getattr(exc, "log", None) or "") or None)
        return _ext["status"] == "loaded"


def _has_kernels(device_type: str) -> bool:
    """Whether the loaded extension registered kernels for this device type."""
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    return key is not None and torch._C._dispatch_has_kernel_for_dispatch_key("zoo::instance_norm_act", key)


_reasons: dict[str, str | None] = {}


def _why_not(device_type: str) -> str | None:
    """None when the compiled ops serve this device type, else the reason they do not (fixed once known)."""
    if device_type in _reasons:
        return _reasons[device_type]
    if device_type not in ("cpu", "cuda"):
        reason = f"no compiled kernels exist for device type {device_type!r}"
    elif not load_extension():
        reason = f"the C++ extension is unavailable: {_ext['reason']}"
    elif not _has_kernels(device_type):
        reason = f"the C++ extension was built without {device_type.upper()} kernels"
        if device_type == "cuda" and _ext["cuda_failure"]:
            reason += f" ({_ext['cuda_failure']})"
    else:
        reason = None
    _reasons[device_type] = reason
    return reason


def _resolve(device_type: str) -> bool:
    """True when the compiled ops serve `device_type` under the current request (warns/raises as specified)."""
    name, source = requested()
    if name == "reference":
        return False
    reason = _why_not(device_type)
    if reason is None:
        return True
    if name == "cpp":
        raise ConfigError(f"backend 'cpp' was requested ({source}) but cannot serve {device_type}: {reason}")
    if device_type not in _warned:
        _warned.add(device_type)
        warnings.warn(f"zoo.ops: using the PyTorch reference on {device_type} because {reason}",
                      OpsFallbackWarning, stacklevel=4)
    return False


def _resolve_constant(device_type: str) -> bool:
    """_resolve, evaluated once at torch.compile trace time and baked into the graph as a constant."""
    return _resolve(device_type)


# A compiled graph keeps the backend chosen when it was traced (no graph break, no guard). This is what
# torch.compiler.assume_constant_result(fn) does (Dynamo reads the marker when it traces a call), set directly
# because that function imports torch._dynamo, which costs seconds on every `zoo` command that never compiles;
# tests/ops/test_compile.py checks that the public function still sets exactly this marker.
DYNAMO_CONSTANT_MARKER = "_dynamo_marked_constant"
setattr(_resolve_constant, DYNAMO_CONSTANT_MARKER, True)


def use_cpp(device: torch.device) -> bool:
    """Whether an op on `device` runs the compiled kernels (False: the reference)."""
    if torch.compiler.is_compiling():
        return _resolve_constant(device.type)
    return _resolve(device.type)


def backend_info() -> dict[str, Any]:
    """Which backend serves each device type and why, plus the extension's load status (loads it if needed)."""
    name, source = requested()
    devices: dict[str, dict[str, str]] = {}
    for device_type in ("cpu", "cuda"):
        if name == "reference":
            devices[device_type] = {"backend": "reference", "reason": f"reference requested ({source})"}
            continue
        reason = _why_not(device_type)
        if reason is None:
            devices[device_type] = {"backend": "cpp", "reason": f"compiled kernels, {_ext['origin']}"}
        else:
            devices[device_type] = {"backend": "reference" if name == "auto" else "unavailable", "reason": reason}
        if device_type == "cuda" and not torch.cuda.is_available():
            devices[device_type]["reason"] += " (no CUDA device is available in this process)"
    return {"requested": name, "requested_by": source, "extension": dict(_ext), "devices": devices}
