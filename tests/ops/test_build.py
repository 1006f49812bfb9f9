"""Building and selecting the compiled ops: lock files, failed builds, fallback warning, killed builds, nvcc."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from zoo.ops import _build

CSRC = _build.source_dir()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(lock: Path, pid: int) -> None:
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": time.time()}))


def test_lock_of_a_dead_owner_is_taken_over_and_half_build_wiped(tmp_path):
    lock, build = tmp_path / "b.lock", tmp_path / "b"
    build.mkdir()
    (build / "half.o").write_bytes(b"\x7fELF truncated")
    _write_lock(lock, _dead_pid())
    t0 = time.monotonic()
    with _build.build_lock(lock, build, timeout=600):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert not (build / "half.o").exists()
    assert time.monotonic() - t0 < 5
    assert not lock.exists()


def test_lock_without_heartbeat_times_out(tmp_path):
    lock, build = tmp_path / "b.lock", tmp_path / "b"
    _write_lock(lock, os.getppid())  # a live process that will never release it
    old = time.time() - 60
    os.utime(lock, (old, old))
    with _build.build_lock(lock, build, timeout=30):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_live_lock_is_waited_for(tmp_path):
    lock, build = tmp_path / "b.lock", tmp_path / "b"
    _write_lock(lock, os.getpid())
    threading.Timer(1.0, lock.unlink).start()
    t0 = time.monotonic()
    with _build.build_lock(lock, build, timeout=600):
        pass
    assert time.monotonic() - t0 >= 0.9


def test_heartbeat_keeps_a_long_build_alive(tmp_path, monkeypatch):
    monkeypatch.setattr(_build, "HEARTBEAT_S", 0.1)
    lock, build = tmp_path / "b.lock", tmp_path / "b"
    with _build.build_lock(lock, build, timeout=600):
        old = time.time() - 100
        os.utime(lock, (old, old))
        time.sleep(0.5)
        assert time.time() - lock.stat().st_mtime < 5


def test_failed_build_writes_log_and_is_not_retried(tmp_path, monkeypatch):
    from torch.utils import cpp_extension

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    monkeypatch.delenv("ZOO_OPS_BUILD_ROOT", raising=False)
    calls = []

    def failing_load(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("Error building extension 'zoo_ops'\nops.cpp:1: error: expected ';'")

    monkeypatch.setattr(cpp_extension, "load", failing_load)
    with pytest.raises(_build.BuildError) as first:
        _build.build_and_load()
    assert first.value.log is not None and "expected ';'" in first.value.log.read_text()
    assert str(first.value.log) in str(first.value)
    with pytest.raises(_build.BuildError, match=r"an earlier build of the C\+\+ ops from these sources failed"):
        _build.build_and_load()
    assert len(calls) == 1
    build_dir = Path(calls[0]["build_directory"])
    assert build_dir.parent == tmp_path / "ops" and len(build_dir.name.split("-")[1]) == 16


def test_failed_cuda_build_falls_back_to_a_cpu_only_build_once(tmp_path, monkeypatch):
    """A CUDA torch whose toolkit cannot build the CUDA kernels (say, no libcudart) still gets the C++ CPU kernels,
    and later processes go straight to the CPU-only build instead of retrying CUDA."""
    from torch.utils import cpp_extension

    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    monkeypatch.delenv("ZOO_OPS_BUILD_ROOT", raising=False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path / "cuda"))
    calls = []

    def load(**kwargs):
        calls.append(kwargs)
        if any(s.endswith(".cu") for s in kwargs["sources"]):
            raise RuntimeError("Error building extension\n/usr/bin/ld: cannot find -lcudart")

    monkeypatch.setattr(cpp_extension, "load", load)
    for attempt in range(2):
        built = _build.build_and_load()
        assert "C++/CUDA ops" in built.cuda_failure and "failed" in built.cuda_failure
        assert str(built.path / "build.log") not in built.cuda_failure  # the log is the CUDA build's, not this one's
        assert "-lcudart" in Path(built.cuda_failure.split("(build log: ")[1].rstrip(")")).read_text()
    assert [any(s.endswith(".cu") for s in c["sources"]) for c in calls] == [True, False, False]
    assert "-DWITH_CUDA" not in calls[1]["extra_cflags"] and calls[1]["extra_cuda_cflags"] == []


def test_build_key_changes_with_sources_and_versions(monkeypatch):
    sources = sorted(CSRC.glob("*.cpp"))
    key = _build.build_key(sources, ["-O3"])
    assert key == _build.build_key(sources, ["-O3"])
    assert key != _build.build_key(sources, ["-O2"])
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    assert key != _build.build_key(sources, ["-O3"])


def _isolated(env: dict) -> dict:
    """os.environ plus `env`, without a shared JIT build root (so the test builds in its own ZOO_HOME)."""
    full = {**os.environ, **env}
    full.pop("ZOO_OPS_BUILD_ROOT", None)
    return full


def _run_python(code: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    full = _isolated(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          timeout=timeout)


_NO_AOT = "import sys; sys.modules['zoo._C'] = None  # hide an ahead-of-time build: force the JIT path\n"


def test_auto_falls_back_with_exactly_one_warning(tmp_path):
    body = """
    import warnings, torch, zoo.ops as ops
    from zoo.errors import ConfigError
    x = torch.randn(2, 3, 4, 4)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(3):
            ops.instance_norm_act(x); ops.bias_leaky_relu(x, torch.zeros(3)); ops.InstanceNormAct2d(3)(x)
    fallback = [w for w in rec if issubclass(w.category, ops.OpsFallbackWarning)]
    assert len(fallback) == 1, [str(w.message) for w in rec]
    assert "no C++ compiler" in str(fallback[0].message), fallback[0].message
    info = ops.backend_info()
    assert info["devices"]["cpu"]["backend"] == "reference" and info["extension"]["status"] == "failed"
    try:
        with ops.use_backend("cpp"):
            ops.instance_norm_act(x)
    except ConfigError as exc:
        assert "no C++ compiler" in str(exc)
    else:
        raise AssertionError("cpp backend without a compiler must raise")
    print("ok")
    """
    code = _NO_AOT + textwrap.dedent(body)
    res = _run_python(code, {"ZOO_HOME": str(tmp_path), "CXX": "/nonexistent/c++", "ZOO_OPS_BACKEND": "auto"}, 120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]


@pytest.mark.slow
def test_sigkilled_build_leaves_no_hang_and_next_build_recovers(tmp_path):
    """Kill a real JIT build (the whole process group, compilers included) halfway; the next one must finish."""
    env = {"ZOO_HOME": str(tmp_path), "ZOO_OPS_BACKEND": "auto"}
    build = _NO_AOT + "from zoo.ops import _build; print(_build.build_and_load())"
    proc = subprocess.Popen([sys.executable, "-c", build], env=_isolated(env), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    root = tmp_path / "ops"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not list(root.glob("zoo_ops-*/*.o")):
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        time.sleep(0.2)
    assert not list(root.glob("zoo_ops-*/*.so")), "the build finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    locks = list(root.glob("*.lock"))
    assert len(locks) == 1 and json.loads(locks[0].read_text())["pid"] == proc.pid  # the stale lock is left

    check = _NO_AOT + """
import torch, zoo.ops as ops
from zoo.ops import reference
x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
with ops.use_backend("cpp"):
    got = ops.instance_norm_act(x)
torch.testing.assert_close(got, reference.instance_norm_act(x), rtol=1e-10, atol=1e-10)
print(ops.backend_info()["extension"]["origin"])
"""
    t0 = time.monotonic()
    res = _run_python(check, env, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "just-in-time" in res.stdout
    assert "took over a stale build lock" in res.stderr and f"pid {proc.pid} is dead" in res.stderr
    assert not list(root.glob("*.lock"))
    print(f"recovered build took {time.monotonic() - t0:.0f} s")


def _nvcc() -> str | None:
    from torch.utils.cpp_extension import CUDA_HOME

    found = shutil.which("nvcc")
    if found:
        return found
    if CUDA_HOME and (Path(CUDA_HOME) / "bin" / "nvcc").exists():
        return str(Path(CUDA_HOME) / "bin" / "nvcc")
    return None


@pytest.mark.slow
def test_cuda_sources_compile_with_nvcc(tmp_path):
    """Compile-only check of every .cu against torch's headers (a CPU build of torch suffices; nothing runs).

    The files compile in parallel (about 70-90 s each on a quiet 2-core machine).
    """
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (no CUDA toolkit): the CUDA kernels cannot be compile-checked here")
    from torch.utils.cpp_extension import include_paths

    arch = os.environ.get("ZOO_NVCC_ARCH", "arch=compute_90,code=sm_90")
    sources = sorted(CSRC.glob("*.cu"))
    assert sources, "no .cu files found"
    procs = {}
    for source in sources:
        cmd = [nvcc, "-c", "-std=c++20", "--expt-relaxed-constexpr", "-gencode", arch,
               "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE", "-DWITH_CUDA", *[f"-I{p}" for p in include_paths()],
               f"-I{CSRC}", str(source), "-o", str(tmp_path / f"{source.stem}.o")]
        procs[source.name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failures = {}
    for name, proc in procs.items():
        output, _ = proc.communicate(timeout=1200)
        if proc.returncode != 0:
            failures[name] = output[-4000:]
    assert not failures, failures
    for source in sources:
        assert (tmp_path / f"{source.stem}.o").stat().st_size > 0


def test_stale_ahead_of_time_binary_is_detected(tmp_path):
    """A zoo._C built from other sources is recognised by the digest it embeds (and then not loaded)."""
    current, other = tmp_path / "current.so", tmp_path / "other.so"
    current.write_bytes(b"\0ELF...ZOO_OPS_SOURCES_SHA256=" + _build.sources_sha256().encode() + b";\0...")
    other.write_bytes(b"\0ELF...ZOO_OPS_SOURCES_SHA256=" + b"0" * 64 + b";\0...")
    assert _build.aot_binary_is_current(str(current))
    assert not _build.aot_binary_is_current(str(other))


def test_backend_info_says_what_serves_each_device(cpp):
    import zoo.ops as ops

    with ops.use_backend("auto"):
        info = ops.backend_info()
    assert info["requested"] == "auto" and info["extension"]["status"] == "loaded"
    assert info["devices"]["cpu"]["backend"] == "cpp" and "compiled kernels" in info["devices"]["cpu"]["reason"]
    assert info["devices"]["cuda"]["reason"]
    with ops.use_backend("reference"):
        assert ops.backend_info()["devices"]["cpu"] == {"backend": "reference",
                                                       "reason": "reference requested (use_backend())"}


def test_cuda_arch_flags_name_torchs_architectures_when_no_gpu_is_visible(monkeypatch):
    """A CUDA torch on a GPU-less machine (a build node, CI) builds for the architectures torch itself was built for."""
    from torch.utils import cpp_extension

    from zoo.ops._flags import NVCC_FLAGS, cuda_arch_flags

    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_90", "sm_75", "sm_120", "compute_120"])
    flags = cuda_arch_flags()
    assert flags == ["-gencode=arch=compute_75,code=sm_75", "-gencode=arch=compute_90,code=sm_90",
                     "-gencode=arch=compute_120,code=sm_120", "-gencode=arch=compute_120,code=compute_120"]
    # torch then adds no architectures of its own (without ours it would look for GPUs and fail with IndexError)
    assert cpp_extension._get_cuda_arch_flags(NVCC_FLAGS + flags) == []


def test_cuda_arch_flags_leave_the_choice_to_torch_when_it_has_one(monkeypatch):
    from zoo.ops._flags import cuda_arch_flags

    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_90"])
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert cuda_arch_flags() == []  # the user's list is honoured, never overridden
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert cuda_arch_flags() == []  # torch targets the visible GPU


def test_build_key_changes_with_the_target_gpus(monkeypatch):
    sources = sorted(CSRC.glob("*.cpp")) + sorted(CSRC.glob("*.cu"))
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0")
    key = _build.build_key(sources, ["-O3"])
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert key != _build.build_key(sources, ["-O3"])


@pytest.mark.slow
def test_failed_ahead_of_time_build_leaves_the_install_working(tmp_path):
    """setup.py whose extension fails to compile warns and finishes (the ops then build JIT or use the reference)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "setup.py").exists():
        pytest.skip("needs the source tree (setup.py)")
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info", "build")
    for name in ("zoo", "csrc", "plugins"):
        shutil.copytree(root / name, tmp_path / name, ignore=ignore)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(root / name, tmp_path / name)
    env = {**os.environ, "CFLAGS": "-include /nonexistent/zoo_forced_failure.h"}  # every compile fails
    res = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "building zoo._C failed" in res.stdout + res.stderr
    assert not list((tmp_path / "zoo").glob("_C*.so"))


def test_no_two_sources_share_a_stem():
    """setuptools names object files by stem: x.cpp and x.cu would both become x.o and the CUDA build fails."""
    stems = [p.stem for p in CSRC.iterdir() if p.suffix in (".cpp", ".cu")]
    assert len(stems) == len(set(stems)), sorted(stems)


def test_cuda_failure_note_round_trip(tmp_path):
    from zoo.ops import _flags

    binary = tmp_path / "zoo" / "_C.cpython-311-x86_64-linux-gnu.so"
    assert _flags.read_cuda_failure(binary) is None
    _flags.record_cuda_failure(binary, "nvcc: no libcudart")
    assert _flags.read_cuda_failure(binary) == "nvcc: no libcudart"
    assert [p.name for p in binary.parent.iterdir()] == ["_C.cuda_failure.txt"]  # no temp file left behind
    _flags.record_cuda_failure(binary, None)
    assert _flags.read_cuda_failure(binary) is None and not list(binary.parent.iterdir())


def test_ahead_of_time_cuda_failure_is_the_cuda_reason():
    """setup.py records a failed CUDA build beside the CPU-only binary; backend_info() names it for cuda."""
    import importlib.util

    from zoo.ops import _flags

    spec = importlib.util.find_spec("zoo._C")
    if spec is None or not _build.aot_binary_is_current(spec.origin) or torch.cuda.is_available():
        pytest.skip("needs a current ahead-of-time zoo._C and no GPU")
    _flags.record_cuda_failure(spec.origin, "the ahead-of-time CUDA build failed: boom")
    try:
        code = "import json, zoo.ops as o; print(json.dumps(o.backend_info()))"
        env = {**os.environ, "ZOO_OPS_BACKEND": "auto"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        info = json.loads(out.stdout)
    finally:
        _flags.record_cuda_failure(spec.origin, None)
    assert info["extension"]["origin"] == "ahead-of-time (setup.py)"
    assert info["devices"]["cuda"]["reason"].startswith(
        "the C++ extension was built without CUDA kernels (the ahead-of-time CUDA build failed: boom)")
