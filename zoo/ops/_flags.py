"""Compiler flags and the sources digest, shared by setup.py (ahead of time) and zoo.ops._build (just in time).

Imports only the standard library (torch inside functions), so setup.py can load this file by path before zoo is
installed.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

CXX_FLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-Wno-psabi"]
NVCC_FLAGS = ["-O3", "--use_fast_math", "-DWITH_CUDA"]
LD_FLAGS = ["-fopenmp"]
SOURCE_KINDS = (".cpp", ".cu", ".h", ".cuh")


def sources_digest(directory: Path, kinds: tuple[str, ...] = SOURCE_KINDS) -> str:
    """sha256 over the names and bytes of the C++/CUDA files in `directory`; the AOT binary embeds it."""
    h = hashlib.sha256()
    for path in sorted(Path(directory).iterdir()):
        if path.suffix in kinds:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def cuda_arch_flags() -> list[str]:
    """nvcc -gencode flags for a CUDA build, or [] where torch picks the architectures itself.

    torch uses TORCH_CUDA_ARCH_LIST when it is set (we never override it) and otherwise the visible GPUs; with
    neither (a CUDA build of torch on a machine without a GPU) it fails, so we name the architectures this torch
    was built for, with PTX for the newest so later GPUs can JIT it.
    """
    import torch

    if os.environ.get("TORCH_CUDA_ARCH_LIST") or torch.cuda.device_count() > 0:
        return []
    arches = sorted({int(a.removeprefix("sm_")) for a in torch.cuda.get_arch_list()
                     if a.startswith("sm_") and a.removeprefix("sm_").isdigit()})
    if not arches:
        return []
    flags = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in arches]
    return flags + [f"-gencode=arch=compute_{arches[-1]},code=compute_{arches[-1]}"]


def cuda_failure_note(binary: str | os.PathLike) -> Path:
    """Where an ahead-of-time build records why its CUDA kernels are missing: a text file beside the binary."""
    return Path(binary).with_name("_C.cuda_failure.txt")


def record_cuda_failure(binary: str | os.PathLike, reason: str | None) -> None:
    """Write (atomically) or, with reason None, remove the CUDA-failure note of the binary at `binary`."""
    note = cuda_failure_note(binary)
    if reason is None:
        note.unlink(missing_ok=True)
        return
    note.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=note.parent, prefix=note.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(reason)
        os.replace(tmp, note)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_cuda_failure(binary: str | os.PathLike) -> str | None:
    """The reason recorded by `record_cuda_failure` for this binary, or None."""
    note = cuda_failure_note(binary)
    if not note.is_file():
        return None
    return note.read_text().strip() or None
