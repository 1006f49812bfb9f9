"""Shared fixtures: an isolated ZOO_HOME per test and a way to register test-only models."""
from __future__ import annotations

import os

import pytest

from zoo.paths import zoo_home
from zoo.plugins import registry

# Just-in-time kernel builds (where zoo._C is missing or stale) are shared by all tests and sessions, although each
# test gets its own ZOO_HOME below: a build takes minutes.
os.environ.setdefault("ZOO_OPS_BUILD_ROOT", str(zoo_home() / "ops"))


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
