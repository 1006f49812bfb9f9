"""Weight files: safetensors written with a sha256, verified on every load; .pth read only with weights_only=True."""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import urllib.request
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from zoo.errors import WeightsError
from zoo.io import atomic_write
from zoo.paths import weights_cache
from zoo.registry import WeightsFile

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _sorted_metadata(data: bytes) -> bytes:
    """Rewrite a safetensors header with its metadata keys sorted: safetensors writes them in hash-map order, which
    changes from run to run, and equal weights must give equal bytes (and sha256)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    if meta:
        header = {"__metadata__": dict(sorted(meta.items())), **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


def save_weights(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor],
                 metadata: Mapping[str, str] | None = None) -> str:
    """Write a safetensors file atomically (keys sorted, so equal weights give equal bytes) plus a `.sha256`
    sidecar; returns the sha256."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in sorted(state_dict.items())}
    meta = {str(k): str(v) for k, v in sorted((metadata or {}).items())}
    data = _sorted_metadata(save(tensors, metadata=meta or None))  # safetensors 0.8 writes a broken header for {}
    path = Path(path)
    with atomic_write(path) as f:
        f.write(data)
    digest = hashlib.sha256(data).hexdigest()
    with atomic_write(_sidecar(path), "w") as f:
        f.write(f"{digest}  {path.name}\n")
    return digest


def _sidecar(path: Path) -> Path:
    """Where the sha256 of a weights file is recorded: `<path>.sha256`, in `sha256sum` format."""
    return path.with_name(path.name + ".sha256")


def sidecar_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 recorded in the `.sha256` sidecar of `path` (as `save_weights` and `sha256sum` write it), or None
    if there is no sidecar."""
    sidecar = _sidecar(Path(path))
    if not sidecar.is_file():
        return None
    digest = (sidecar.read_text().split() or [""])[0].lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise WeightsError(f"{sidecar} does not start with a sha256 (64 hex digits); fix or delete it")
    return digest


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata stored in a safetensors header."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read safetensors header of {path}: {exc}") from exc
    return dict(header.get("__metadata__", {}))


def read_state_dict(path: str | os.PathLike, *, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a .safetensors file (or a .pth/.pt with weights_only=True), verifying `sha256` when given."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise WeightsError(
                f"weights file {path} is corrupt or not the expected file: sha256 is {actual}, expected {sha256}"
            )
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from exc
    if suffix in (".pth", ".pt", ".ckpt", ".bin"):
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(
                f"{path} could not be read with torch.load(weights_only=True) (only tensors and plain containers "
                f"are accepted): {exc}"
            ) from exc
        if not isinstance(obj, Mapping):
            raise WeightsError(f"{path} holds a {type(obj).__name__}, expected a state dict (a mapping of tensors)")
        return dict(obj)
    raise WeightsError(f"unsupported weights file {path}: expected .safetensors or .pth/.pt")


def _package_path(wf: WeightsFile) -> Path | None:
    if wf.package is None:
        return None
    try:
        root = importlib.resources.files(wf.package)
    except ModuleNotFoundError:
        return None
    path = Path(str(root.joinpath("weights", wf.filename)))
    return path if path.is_file() else None


def _cache_path(wf: WeightsFile) -> Path:
    stem, dot, ext = wf.filename.rpartition(".")
    return weights_cache() / f"{stem}-{wf.sha256[:12]}{dot}{ext}"


def _download(url: str, dest: Path, sha256: str) -> None:
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_write(dest) as f:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                h.update(chunk)
                f.write(chunk)
            if h.hexdigest() != sha256:
                raise WeightsError(
                    f"download of {url} is corrupt or not the expected file: sha256 is {h.hexdigest()}, "
                    f"expected {sha256}"
                )
    except OSError as exc:
        raise WeightsError(f"cannot download weights from {url}: {exc}") from exc


def resolve(wf: WeightsFile, *, download: bool = True) -> Path:
    """Local path of a weight file: package data first, then the ZOO_HOME cache, then a download into it."""
    path = _package_path(wf)
    if path is not None:
        return path
    cached = _cache_path(wf)
    if cached.is_file():
        return cached
    if wf.url and download:
        _download(wf.url, cached, wf.sha256)
        return cached
    where = f"package {wf.package!r} (weights/{wf.filename})" if wf.package else "the cache"
    raise WeightsError(
        f"weights {wf.filename} are not in {where} or {cached.parent}"
        + (f" and downloading is off (url {wf.url})" if wf.url else "")
    )


def load_weights_file(wf: WeightsFile) -> dict[str, torch.Tensor]:
    """Resolve and read a registered weight file, verifying its sha256."""
    return read_state_dict(resolve(wf), sha256=wf.sha256)


def weights_size(wf: WeightsFile) -> int | None:
    """Size in bytes of a locally available weight file (None if it is not available yet)."""
    path = _package_path(wf)
    if path is None and _cache_path(wf).is_file():
        path = _cache_path(wf)
    return path.stat().st_size if path is not None else None
