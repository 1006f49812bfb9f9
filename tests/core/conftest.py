"""Core-test fixtures: real plugin distributions installed into temp dirs (no mocks), and a way to make them the
visible plugins for one test."""
from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo.plugins

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "plugins"
FIXTURE_MODULES = ("zoo_fixture_", "my_zoo_plugin")

#: target name -> the fixture package directories installed into it (one pip call per target)
TARGETS = {
    "good": ["good"],
    "broken_import": ["broken_import", "registers_dict"],
    "broken_hook": ["broken_hook"],
    "dup": ["dup_a", "dup_b"],
    "toytrain": ["toytrain"],
    "readme": [],  # filled from README.md's plugin example
}


def readme_plugin_files(readme: Path = REPO / "README.md") -> dict[str, str]:
    """The README's plugin example: the fenced block after each `my_zoo_plugin.py` / `pyproject.toml` label."""
    text = readme.read_text()
    files = {}
    for name in ("my_zoo_plugin.py", "pyproject.toml"):
        m = re.search(rf"^`{re.escape(name)}`\s*\n```[a-z]*\n(.*?)^```", text, re.S | re.M)
        assert m, f"README.md has no fenced block labelled `{name}`"
        files[name] = m.group(1)
    return files


def _copy_sources(names: list[str], work: Path) -> list[Path]:
    """Copy fixture packages to `work` (pip builds in the source dir; the repo must stay clean)."""
    out = []
    for name in names:
        dst = work / name
        shutil.copytree(FIXTURES / name, dst, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        out.append(dst)
    return out


class _Targets(dict):
    """Installed targets by name; one that could not be made fails only the tests that use it."""

    def __init__(self, paths: dict[str, Path], errors: dict[str, str]) -> None:
        super().__init__(paths)
        self.errors = errors

    def __missing__(self, name: str) -> Path:
        pytest.fail(self.errors.get(name, f"no fixture target {name!r}"), pytrace=False)


@pytest.fixture(scope="session")
def plugin_targets(tmp_path_factory) -> dict[str, Path]:
    """Install every fixture distribution (pip, real entry points) into per-scenario --target dirs, in parallel."""
    root = tmp_path_factory.mktemp("plugin_dists")
    errors: dict[str, str] = {}
    readme_src = root / "src" / "readme"
    readme_src.mkdir(parents=True)
    try:
        for name, content in readme_plugin_files().items():
            (readme_src / name).write_text(content)
    except AssertionError as exc:
        errors["readme"] = str(exc)
    procs = {}
    for target, names in TARGETS.items():
        if target in errors:
            continue
        sources = _copy_sources(names, root / "src") if names else [readme_src]
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "--no-index", "--target", str(root / target), *map(str, sources)]
        procs[target] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for target, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            errors[target] = f"pip install of fixture target {target!r} failed:\n{out}"
    return _Targets({t: root / t for t in procs if t not in errors}, errors)


@contextlib.contextmanager
def plugins_on_path(*targets: Path):
    """Make the distributions in `targets` importable and discoverable, rediscover plugins; undo everything after."""
    saved = list(sys.path)
    sys.path[:0] = [str(t) for t in targets]
    importlib.invalidate_caches()
    zoo.plugins.reload()
    try:
        yield
    finally:
        sys.path[:] = saved
        for name in [m for m in sys.modules if m.startswith(FIXTURE_MODULES)]:
            del sys.modules[name]
        importlib.invalidate_caches()
        zoo.plugins.reload()


@pytest.fixture
def use_plugins(plugin_targets):
    """`use_plugins("good", "broken")` makes those installed fixture targets the visible third-party plugins."""
    stack = contextlib.ExitStack()

    def use(*names: str) -> list[Path]:
        paths = [plugin_targets[n] for n in names]
        stack.enter_context(plugins_on_path(*paths))
        return paths

    with stack:
        yield use


def subprocess_env(*paths: Path, **extra: str) -> dict[str, str]:
    """The environment for a `python -m zoo` subprocess that sees the given --target dirs."""
    env = dict(os.environ)
    env.pop("ZOO_STRICT_PLUGINS", None)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env
