"""The model registry: what plugins register (ModelSpec), filled lazily from the plugins on first use."""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

from zoo.errors import ConfigError, DuplicateModelError, UnknownModelError

TASKS = ("generation", "translation", "super-resolution")


@dataclass(frozen=True)
class WeightsFile:
    """One weight file: where it lives (package data and/or URL) and the sha256 every load verifies."""

    filename: str
    sha256: str
    package: str | None = None
    url: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ConfigError(f"WeightsFile {self.filename!r}: sha256 must be 64 lowercase hex digits")
        if self.package is None and self.url is None:
            raise ConfigError(f"WeightsFile {self.filename!r}: give a package holding it or a url")


@dataclass
class ModelSpec:
    """Everything zoo knows about one named model; plugins create these and hand them to `register`."""

    name: str
    task: str
    builder: Callable[..., Any]
    config: dict[str, Any] = field(default_factory=dict)
    weights: WeightsFile | None = None
    architecture: str = ""
    paper: str = ""
    training_data: str = ""
    contract: str = ""
    reproduce: str = ""
    scores: dict[str, Any] = field(default_factory=dict)
    key_adapter: Callable[[dict], dict] | None = None
    infer_config: Callable[[dict], dict] | None = None
    recipe: Callable[..., Any] | None = None
    evaluate: Callable[..., dict] | None = None
    description: str = ""
    plugin: str = ""  # filled in by the registry: the plugin that registered it

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip() or " " in self.name:
            raise ConfigError(f"model name must be a non-empty string without spaces, got {self.name!r}")
        if self.task not in TASKS:
            raise ConfigError(f"model {self.name!r}: task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if not callable(self.builder):
            raise ConfigError(f"model {self.name!r}: builder must be callable")


class Registry:
    """Name -> ModelSpec, with the plugin that registered each name so duplicates can name both."""

    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}

    def add(self, spec: ModelSpec, plugin: str) -> None:
        if not isinstance(spec, ModelSpec):
            raise ConfigError(f"plugin {plugin!r} registered {type(spec).__name__}, expected zoo.ModelSpec")
        if spec.name in self._specs:
            other = self._specs[spec.name].plugin
            raise DuplicateModelError(
                f"model {spec.name!r} is registered twice: by plugin {other!r} and by plugin {plugin!r}"
            )
        spec.plugin = plugin
        self._specs[spec.name] = spec

    def names(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._specs, n=3, cutoff=0.4)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `zoo list` shows the available models"
            raise UnknownModelError(f"unknown model {name!r}{hint}") from None

    def specs(self) -> list[ModelSpec]:
        return [self._specs[n] for n in self.names()]


def _registry() -> Registry:
    from zoo.plugins import registry

    return registry()


def get_spec(name: str) -> ModelSpec:
    """The ModelSpec registered under `name` (an error lists the closest names if there is none)."""
    return _registry().get(name)


def list_models(pattern: str = "*", *, task: str | None = None, pretrained: bool | None = None) -> list[str]:
    """Sorted model names matching an fnmatch `pattern`, optionally only one task or only with/without weights."""
    if task is not None and task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    out = []
    for spec in _registry().specs():
        if not fnmatch.fnmatchcase(spec.name, pattern):
            continue
        if task is not None and spec.task != task:
            continue
        if pretrained is not None and (spec.weights is not None) != pretrained:
            continue
        out.append(spec.name)
    return out


def model_card(name: str) -> dict[str, Any]:
    """A plain dict describing the model: architecture, data, contract, parameters, weights, scores, reproduction."""
    from zoo.weights import weights_size

    spec = get_spec(name)
    module = spec.builder(**spec.config)
    weights = None
    if spec.weights is not None:
        weights = {
            "filename": spec.weights.filename,
            "sha256": spec.weights.sha256,
            "size": spec.weights.size if spec.weights.size is not None else weights_size(spec.weights),
            "source": f"package {spec.weights.package}" if spec.weights.package else spec.weights.url,
        }
    return {
        "name": spec.name,
        "task": spec.task,
        "plugin": spec.plugin,
        "description": spec.description,
        "architecture": spec.architecture,
        "paper": spec.paper,
        "training_data": spec.training_data,
        "parameters": sum(p.numel() for p in module.parameters()),
        "config": dict(spec.config),
        "contract": spec.contract,
        "weights": weights,
        "scores": dict(spec.scores),
        "reproduce": spec.reproduce,
        "trainable": spec.recipe is not None,
        "evaluable": spec.evaluate is not None,
    }
