"""Shared fixtures: an isolated ZOO_HOME per test and a way to register test-only models."""
from __future__ import annotations

import pytest

from zoo.plugins import registry


@pytest.fixture(autouse=True)
def _isolated_zoo_home(tmp_path_factory, monkeypatch):
    """Every test gets its own cache directory so nothing leaks between tests or into the user's cache."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path_factory.mktemp("zoo_home")))


@pytest.fixture
def register_spec():
    """Register ModelSpecs for one test; they are removed afterwards."""
    added: list[str] = []

    def add(spec, plugin: str = "tests"):
        registry().add(spec, plugin)
        added.append(spec.name)
        return spec

    yield add
    for name in added:
        registry()._specs.pop(name, None)
