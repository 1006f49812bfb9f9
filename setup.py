"""Build script: the zoo core, the built-in plugins under plugins/, and the fused-ops extension."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").glob("zoo_*") if (p / "__init__.py").exists())


def _plugin_entry_points() -> list[str]:
    """Each built-in plugin registers like a third-party one: `<family> = zoo_<family>` in group zoo.plugins."""
    return [f"{name.removeprefix('zoo_')} = {name}" for name in PLUGINS]


def _ops_extensions() -> tuple[list, dict]:
    """The fused-ops extension modules and build commands (filled in by the ops work)."""
    return [], {}


ext_modules, cmdclass = _ops_extensions()

setup(
    packages=find_packages(include=["zoo", "zoo.*"]) + PLUGINS,
    package_dir={name: f"plugins/{name}" for name in PLUGINS},
    package_data={"zoo": ["metrics/weights/*"], **{name: ["weights/*"] for name in PLUGINS}},
    entry_points={
        "zoo.plugins": _plugin_entry_points(),
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
