"""Where zoo keeps its files: ZOO_HOME (default: the user's cache dir) for downloads, builds and user weights."""
from __future__ import annotations

import os
from pathlib import Path


def zoo_home() -> Path:
    """The zoo cache directory: $ZOO_HOME, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo."""
    env = os.environ.get("ZOO_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "zoo"


def weights_cache() -> Path:
    """Downloaded weights, stored under hash-bearing names."""
    return zoo_home() / "weights"
