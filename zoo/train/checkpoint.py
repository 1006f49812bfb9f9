"""Run checkpoints: one atomic file per run directory, read back with weights_only=True, and the run lock."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ConfigError, DataError
from zoo.io import atomic_write

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write the run's checkpoint atomically (a kill mid-write leaves the previous one intact)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    path = run_dir / CHECKPOINT
    with atomic_write(path) as f:
        f.write(buf.getbuffer())
    return path


def load_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read a run's checkpoint (tensors and plain containers only)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise DataError(f"{run_dir} holds no {CHECKPOINT}; is it a `zoo train` run directory?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"cannot read checkpoint {path}: {exc}") from exc


class RunLock:
    """An exclusive lock on a run directory so two trainings never write the same checkpoint."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; runs are not protected there
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"another training is running in {self.path.parent}; wait for it or use another --out")
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
