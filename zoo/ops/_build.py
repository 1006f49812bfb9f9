"""Just-in-time build of the C++/CUDA ops with torch.utils.cpp_extension, safe against interrupted builds.

The build directory (under $ZOO_OPS_BUILD_ROOT, default <zoo cache>/ops) is keyed by a hash of the sources, the
flags and the torch/CUDA/Python versions, so an upgrade never loads a stale binary. A lock file next to it (pid,
host, heartbeat) serialises builders; a lock whose owner is dead, or whose heartbeat is older than
ZOO_OPS_LOCK_TIMEOUT seconds, is taken over and the half-built directory is wiped. A failed build leaves a FAILED
marker with the log path, so later processes do not retry it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import torch

from zoo.ops._flags import CXX_FLAGS, LD_FLAGS, NVCC_FLAGS, SOURCE_KINDS, cuda_arch_flags, sources_digest
from zoo.paths import zoo_home

HEARTBEAT_S = 5.0


class BuildError(RuntimeError):
    """The extension could not be built; `log` is the path of the build log (if one was written)."""

    def __init__(self, reason: str, log: Path | None = None):
        super().__init__(reason + (f" (build log: {log})" if log else ""))
        self.reason, self.log = reason, log


def source_dir() -> Path:
    """The C++/CUDA sources: shipped inside the package (wheel installs) or csrc/ of the source tree."""
    for candidate in (Path(__file__).parent / "csrc", Path(__file__).resolve().parents[2] / "csrc"):
        if (candidate / "ops.cpp").exists():
            return candidate
    raise BuildError("the C++ sources (csrc/) are not shipped with this installation")


def sources_sha256(kinds: tuple[str, ...] = SOURCE_KINDS) -> str:
    """Digest of the C++/CUDA sources and headers (setup.py embeds the same one in the ahead-of-time build)."""
    return sources_digest(source_dir(), kinds)


def aot_binary_is_current(path: str) -> bool:
    """Whether an ahead-of-time binary embeds the digest of the current sources (True when they are not shipped)."""
    try:
        want = sources_sha256()
    except BuildError:
        return True
    with open(path, "rb") as f:
        return f"ZOO_OPS_SOURCES_SHA256={want};".encode() in f.read()


def build_key(sources: list[Path], flags: list[str]) -> str:
    """Hash of everything that determines the binary: sources (and headers), flags, torch/CUDA/Python versions,
    and for CUDA builds the target GPUs (TORCH_CUDA_ARCH_LIST or the visible devices' capabilities)."""
    with_cuda = any(p.suffix == ".cu" for p in sources)
    kinds = (".cpp", ".h") + ((".cu", ".cuh") if with_cuda else ())
    gpus = ([os.environ.get("TORCH_CUDA_ARCH_LIST", ""),
             [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]] if with_cuda else [])
    h = hashlib.sha256(sources_sha256(kinds).encode())
    h.update(json.dumps([[p.name for p in sources], flags, torch.__version__, str(torch.version.cuda),
                         sys.version, platform.machine(), gpus]).encode())
    return h.hexdigest()[:16]


def build_root() -> Path:
    """Where JIT builds live: $ZOO_OPS_BUILD_ROOT, else <zoo cache>/ops (ZOO_HOME or ~/.cache/zoo)."""
    env = os.environ.get("ZOO_OPS_BUILD_ROOT")
    return Path(env).expanduser() if env else zoo_home() / "ops"


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_is_stale(lock: Path, timeout: float) -> str | None:
    """Why the lock's owner is gone (dead pid, or no heartbeat for `timeout` s), or None while it is alive."""
    try:
        age = time.time() - lock.stat().st_mtime
        owner = json.loads(lock.read_text() or "{}")
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        owner = {}
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        if not _pid_alive(owner["pid"]):
            return f"owner pid {owner['pid']} is dead"
    if age > timeout:
        return f"no heartbeat for {age:.0f} s (timeout {timeout:.0f} s)"
    return None


@contextlib.contextmanager
def build_lock(lock: Path, build_dir: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold `lock` exclusively (with a heartbeat); take over a stale one and wipe its half-built `build_dir`."""
    timeout = float(os.environ.get("ZOO_OPS_LOCK_TIMEOUT", 300)) if timeout is None else timeout
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            reason = _lock_is_stale(lock, timeout)
            if reason is None:
                time.sleep(0.5)
                continue
            grave = lock.with_name(f"{lock.name}.stale.{os.getpid()}")
            try:
                os.rename(lock, grave)  # only one process wins the takeover
            except FileNotFoundError:
                continue
            grave.unlink(missing_ok=True)
            shutil.rmtree(build_dir, ignore_errors=True)
            print(f"zoo.ops: took over a stale build lock ({reason}); rebuilding {build_dir}", file=sys.stderr)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, f)
        break
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(lock)

    thread = threading.Thread(target=beat, name="zoo-ops-build-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        lock.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class Built:
    """A loaded JIT build: its directory, and why CUDA kernels are missing where a CUDA build was tried and failed."""

    path: Path
    cuda_failure: str | None = None


def build_and_load(verbose: bool = False) -> Built:
    """Build (or reuse) the JIT extension and load its ops into this process.

    With a CUDA build of torch and a CUDA toolkit the extension gets the CUDA kernels too; if that build fails (say
    a toolkit without libcudart), a CPU-only build follows, so CPU users keep the compiled kernels.
    """
    from torch.utils import cpp_extension

    if not cpp_extension.is_ninja_available():
        raise BuildError("ninja is not installed (pip install ninja)")
    src = source_dir()
    cpp_sources = sorted(src.glob("*.cpp"))
    if torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None:
        try:
            return Built(_build_variant(src, cpp_sources + sorted(src.glob("*.cu")),
                                        NVCC_FLAGS + cuda_arch_flags(), verbose))
        except BuildError as exc:
            return Built(_build_variant(src, cpp_sources, [], verbose), cuda_failure=str(exc))
    return Built(_build_variant(src, cpp_sources, [], verbose))


def _build_variant(src: Path, sources: list[Path], cuda_flags: list[str], verbose: bool) -> Path:
    """Build one set of sources (CUDA kernels included when cuda_flags is non-empty) under its key; load it."""
    from torch.utils import cpp_extension

    cflags = CXX_FLAGS + (["-DWITH_CUDA"] if cuda_flags else [])
    key = build_key(sources, cflags + cuda_flags + LD_FLAGS)
    root = build_root()
    build_dir = root / f"zoo_ops-{key}"
    failed = build_dir / "FAILED"
    built = (build_dir / f"zoo_ops_{key}.so").exists()
    compiler = os.environ.get("CXX", "c++")
    if not built and shutil.which(compiler) is None:
        raise BuildError(f"no C++ compiler found ({compiler!r} is not on PATH)")
    what = "the C++/CUDA ops" if cuda_flags else "the C++ ops"
    with build_lock(root / f"zoo_ops-{key}.lock", build_dir):
        if failed.exists():
            raise BuildError(f"an earlier build of {what} from these sources failed; delete {build_dir} to retry",
                             build_dir / "build.log")
        build_dir.mkdir(parents=True, exist_ok=True)
        (build_dir / "lock").unlink(missing_ok=True)  # torch's own baton, orphaned if a build was killed
        try:
            cpp_extension.load(
                name=f"zoo_ops_{key}",
                sources=[str(s) for s in sources],
                extra_cflags=cflags,
                extra_cuda_cflags=cuda_flags,
                extra_ldflags=LD_FLAGS,
                extra_include_paths=[str(src)],
                build_directory=str(build_dir),
                is_python_module=False,
                verbose=verbose,
            )
        except Exception as exc:  # compiler errors arrive as RuntimeError carrying the compiler output
            log = build_dir / "build.log"
            log.write_text(f"{type(exc).__name__}: {exc}\n")
            failed.write_text(str(log) + "\n")
            raise BuildError(f"building {what} failed: {str(exc).splitlines()[0][:200]}", log) from exc
    return build_dir
