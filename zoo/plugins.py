"""Plugin discovery with pluggy: entry points in group `zoo.plugins`, loaded lazily once, failures isolated."""
from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Callable

import pluggy

from zoo.errors import ConfigError, PluginError
from zoo.registry import ModelSpec, Registry

GROUP = "zoo.plugins"
hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


class ZooPluginWarning(UserWarning):
    """A plugin was skipped because it failed to import or register."""


class _Specs:
    @hookspec
    def register_models(self, register: Callable[[ModelSpec], None]) -> None:
        """Call `register(zoo.ModelSpec(...))` once for each model the plugin provides."""


@dataclass
class PluginInfo:
    """One discovered plugin: where it came from, what it registered, or why it was skipped."""

    name: str
    distribution: str
    version: str
    models: list[str] = field(default_factory=list)
    error: str | None = None


_lock = threading.RLock()
_state: tuple[Registry, list[PluginInfo]] | None = None


def _strict() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0")


def _skip(info: PluginInfo, what: str, exc: BaseException) -> None:
    info.error = f"{type(exc).__name__}: {exc}"
    message = f"zoo plugin {info.name!r} from {info.distribution} {info.version} {what} and was skipped: {info.error}"
    if _strict():
        raise PluginError(message) from exc
    warnings.warn(message, ZooPluginWarning, stacklevel=3)


def _load() -> tuple[Registry, list[PluginInfo]]:
    registry = Registry()
    infos: list[PluginInfo] = []
    pm = pluggy.PluginManager("zoo")
    pm.add_hookspecs(_Specs)
    eps = sorted(importlib.metadata.entry_points(group=GROUP), key=lambda ep: ep.name)
    for ep in eps:
        dist = ep.dist
        info = PluginInfo(ep.name, dist.name if dist else "?", dist.version if dist else "?")
        infos.append(info)
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin must not break the others
            _skip(info, "failed to import", exc)
            continue
        staged: list[ModelSpec] = []

        def register(spec: ModelSpec, _staged: list[ModelSpec] = staged) -> None:
            if not isinstance(spec, ModelSpec):  # raised inside the hook: the plugin is skipped as a whole
                raise ConfigError(f"register() takes a zoo.ModelSpec, got {type(spec).__name__}")
            _staged.append(spec)

        try:
            pm.subset_hook_caller("register_models", remove_plugins=[p for p in pm.get_plugins() if p is not module])(
                register=register
            )
        except Exception as exc:
            _skip(info, "raised in register_models", exc)
            continue
        for spec in staged:
            registry.add(spec, ep.name)  # only a duplicate name can fail here, and that is an error for everyone
            info.models.append(spec.name)
    return registry, infos


def _ensure() -> tuple[Registry, list[PluginInfo]]:
    global _state
    with _lock:
        if _state is None:
            _state = _load()
        return _state


def registry() -> Registry:
    """The registry filled by every plugin (loaded on first call)."""
    return _ensure()[0]


def plugins() -> list[PluginInfo]:
    """The discovered plugins, including skipped ones with their error."""
    return list(_ensure()[1])


def reload() -> None:
    """Forget the loaded plugins so the next use discovers them again (after installing a plugin)."""
    global _state
    with _lock:
        _state = None
