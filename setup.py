"""Build script: the zoo core, the built-in plugins under plugins/, and the fused-ops extension."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").glob("zoo_*") if (p / "__init__.py").exists())


def _plugin_entry_points() -> list[str]:
    """Each built-in plugin registers like a third-party one: `<family> = zoo_<family>` in group zoo.plugins."""
    return [f"{name.removeprefix('zoo_')} = {name}" for name in PLUGINS]


def _ops_extensions() -> tuple[list, dict]:
    """The fused-ops extension zoo._C (C++, plus CUDA when torch is a CUDA build and nvcc exists).

    The build is optional: a compile failure only warns, and zoo.ops then builds just in time or falls back to the
    PyTorch reference. build_py ships csrc/ inside the package (zoo/ops/csrc) so installed wheels can build JIT.
    ZOO_OPS_NO_BUILD=1 skips the ahead-of-time build. TORCH_CUDA_ARCH_LIST is honoured, never set here.
    """
    import importlib.util
    import os
    import shutil

    from setuptools.command.build_py import build_py

    csrc = ROOT / "csrc"
    spec = importlib.util.spec_from_file_location("zoo_ops_flags", ROOT / "zoo" / "ops" / "_flags.py")
    flags = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flags)  # the flags zoo.ops._build uses, loaded by path: zoo is not installed yet

    class BuildPyWithSources(build_py):
        """build_py that also copies csrc/ to zoo/ops/csrc in the build tree."""

        def run(self) -> None:
            super().run()
            target = Path(self.build_lib) / "zoo" / "ops" / "csrc"
            target.mkdir(parents=True, exist_ok=True)
            for path in csrc.iterdir():
                if path.suffix in flags.SOURCE_KINDS:
                    shutil.copy2(path, target / path.name)

    cmdclass: dict = {"build_py": BuildPyWithSources}
    if os.environ.get("ZOO_OPS_NO_BUILD") or not csrc.is_dir():
        return [], cmdclass
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
    except ImportError:
        return [], cmdclass

    # the digest zoo.ops._build.sources_sha256() computes: lets zoo.ops detect a binary built from other sources
    cxx = flags.CXX_FLAGS + ["-g0", f"-DZOO_OPS_SOURCES_SHA256={flags.sources_digest(csrc)}"]
    sources = sorted(str(p.relative_to(ROOT)) for p in csrc.glob("*.cpp"))
    cuda = sorted(str(p.relative_to(ROOT)) for p in csrc.glob("*.cu"))
    # optional: a failed build leaves no binary, and setuptools then skips copying it instead of failing the install
    common = {"include_dirs": [str(csrc)], "extra_link_args": flags.LD_FLAGS, "optional": True}
    if torch.version.cuda and CUDA_HOME and cuda:
        nvcc = flags.NVCC_FLAGS + flags.cuda_arch_flags()
        ext = CUDAExtension("zoo._C", sources + cuda, extra_compile_args={"cxx": cxx + ["-DWITH_CUDA"], "nvcc": nvcc},
                            **common)
    else:
        ext = CppExtension("zoo._C", sources, extra_compile_args={"cxx": cxx}, **common)

    class OptionalBuildExtension(BuildExtension):
        """BuildExtension whose failure leaves the install working (JIT build or reference at run time)."""

        def build_extension(self, ext) -> None:
            binary = self.get_ext_fullpath(ext.name)
            flags.record_cuda_failure(binary, None)  # a note from an earlier build no longer applies
            try:
                super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001 - any compiler/linker failure
                if any(s.endswith(".cu") for s in ext.sources):
                    self.warn(f"zoo: building {ext.name} with CUDA kernels failed ({exc}); building it for the CPU "
                              "only")
                    # the same extension (torch's flags already added) without .cu files, WITH_CUDA and CUDA libs
                    ext.sources = [s for s in ext.sources if not s.endswith(".cu")]
                    ext.extra_compile_args = {"cxx": [f for f in ext.extra_compile_args["cxx"] if f != "-DWITH_CUDA"]}
                    ext.libraries = [lib for lib in ext.libraries if lib not in ("cudart", "c10_cuda", "torch_cuda")]
                    self.build_extension(ext)
                    # beside the binary (so in wheels too): zoo.ops.backend_info() gives it as the reason
                    flags.record_cuda_failure(binary, f"the ahead-of-time CUDA build failed: {exc}")
                else:
                    self.warn(f"zoo: building {ext.name} failed ({exc}); zoo.ops will build it just in time on "
                              "first use or use the PyTorch reference")

        def copy_extensions_to_source(self) -> None:
            """In-place (editable) builds: the CUDA-failure note travels with the binary (or a stale one goes)."""
            super().copy_extensions_to_source()
            for e in self.extensions:
                filename = self.get_ext_filename(self.get_ext_fullname(e.name))
                flags.record_cuda_failure(ROOT / filename, flags.read_cuda_failure(Path(self.build_lib) / filename))

    cmdclass["build_ext"] = OptionalBuildExtension
    return [ext], cmdclass


ext_modules, cmdclass = _ops_extensions()

setup(
    packages=find_packages(include=["zoo", "zoo.*"]) + PLUGINS,
    package_dir={name: f"plugins/{name}" for name in PLUGINS},
    package_data={"zoo": ["metrics/weights/*"], **{name: ["weights/*"] for name in PLUGINS}},
    entry_points={
        "console_scripts": ["zoo = zoo.cli.main:main"],
        "zoo.plugins": _plugin_entry_points(),
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
