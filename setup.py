"""Build script: compiles the Cython kernels, or installs pure Python when that fails.

Environment switches (read at build time):

ELMAN_REQUIRE_EXTENSION=1
    A failed compile is fatal. Wheel builds and CI set this, so a wheel can never
    quietly ship without its compiled module.
ELMAN_NO_EXTENSION=1
    Do not try to compile; install the pure-Python package (NumPy twin only).
ELMAN_NO_OPENMP=1
    Build the kernels without OpenMP: every loop then runs on the calling thread.
    Without it, OpenMP is used where a test program compiles and links with it
    (GCC and clang on Linux, with libgomp; clang with libomp elsewhere), and the
    build goes on without it, on one thread, where it does not. MSVC is not tried:
    its runtime, vcomp140.dll, is not part of a Python installation.
ELMAN_CYTHON_DEBUG=1
    Turn Cython's bounds, wraparound and initialisation checks back on, so an
    out-of-range index in a kernel raises IndexError instead of corrupting memory.
    Also keeps debug information and symbols in the compiled module (every other
    build strips them).

Everything else (metadata, dependencies, package data) lives in pyproject.toml.

About the fallback message: pip runs this script in a subprocess and shows its
output only when the build fails or when pip is run with ``-v``. A successful
fallback is therefore silent under a plain ``pip install``; ``pip install -v``,
``python -m build`` and ``pip wheel -v`` show it, and ``elman.BACKEND`` tells
afterwards which backend was installed. The message is written to stderr so that
it is not buried in setuptools' stdout log.
"""

import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


REQUIRE_EXTENSION = _flag("ELMAN_REQUIRE_EXTENSION")
NO_EXTENSION = _flag("ELMAN_NO_EXTENSION")
CYTHON_DEBUG = _flag("ELMAN_CYTHON_DEBUG")
NO_OPENMP = _flag("ELMAN_NO_OPENMP")

if REQUIRE_EXTENSION and NO_EXTENSION:
    sys.exit("ELMAN_REQUIRE_EXTENSION=1 and ELMAN_NO_EXTENSION=1 contradict each other.")

# .ci/check_distribution.sh greps pip's output for FALLBACK_MARKER: keep them in step.
FALLBACK_MARKER = "elman: installed the pure-Python package"
FALLBACK_MESSAGE = """
************************************************************************
{marker} (NumPy backend only).
The compiled kernels could not be built: {reason}
elman.BACKEND will be "numpy": the same results, only slower.
To get the compiled kernels, install a C compiler, then reinstall: from a
source checkout
    pip install --force-reinstall --no-cache-dir .
or, once elman is published on PyPI,
    pip install --force-reinstall --no-cache-dir --no-binary elman elman
(--no-cache-dir: pip would otherwise reuse the pure-Python wheel it just
cached). Set ELMAN_REQUIRE_EXTENSION=1 to make this failure fatal.
************************************************************************
"""

# What a missing or broken compiler raises: no compiler configured (PlatformError,
# e.g. no MSVC on Windows), a compiler that cannot be run (ExecError, OSError), or a
# compile/link that fails (CCompilerError covers CompileError and LinkError).
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)


def _announce_fallback(reason):
    sys.stderr.write(FALLBACK_MESSAGE.format(marker=FALLBACK_MARKER, reason=reason))
    sys.stderr.flush()


def _required_failure(reason):
    return SystemExit(
        "elman: ELMAN_REQUIRE_EXTENSION=1 is set and the compiled kernels "
        f"could not be built: {reason}"
    )


OPENMP_PROBE = """
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
}
"""


def _openmp_flags():
    """(compile flags, link flags) to try for OpenMP on this platform, or None."""
    if sys.platform == "win32":
        return None
    if sys.platform == "darwin":  # Apple clang: libomp, if installed, is separate
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python unless the extension is required,
    and that compiles the kernels with OpenMP where the compiler supports it."""

    _fell_back = False

    def build_extensions(self):
        flags = None if NO_OPENMP else self._openmp_flags_that_work()
        if flags is not None:
            for ext in self.extensions:
                ext.extra_compile_args = list(ext.extra_compile_args) + flags[0]
                ext.extra_link_args = list(ext.extra_link_args) + flags[1]
        else:
            sys.stderr.write("elman: building the kernels without OpenMP: every loop "
                             "runs on one thread.\n")
        super().build_extensions()

    def _openmp_flags_that_work(self):
        """The OpenMP flags, if a test program compiles, links and runs with them."""
        import shutil
        import subprocess
        import tempfile

        flags = _openmp_flags()
        if flags is None:
            return None
        compile_flags, link_flags = flags
        directory = tempfile.mkdtemp(prefix="elman-openmp-")
        try:
            source = os.path.join(directory, "probe.c")
            with open(source, "w") as handle:
                handle.write(OPENMP_PROBE)
            objects = self.compiler.compile([source], output_dir=directory,
                                            extra_postargs=compile_flags)
            program = os.path.join(directory, "probe")
            self.compiler.link_executable(objects, "probe", output_dir=directory,
                                          extra_postargs=link_flags)
            # Running it proves that the runtime library is found, not only linked.
            # A cross-build (macOS arm64 on x86-64) cannot run it: linking is proof.
            if _targets_this_machine():
                subprocess.run([program], check=True, capture_output=True, timeout=60)
        except (*BUILD_ERRORS, subprocess.SubprocessError):
            return None
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return flags

    def run(self):
        # Compiler discovery happens in run(), before any extension is built.
        try:
            super().run()
        except BUILD_ERRORS as exc:
            self._fall_back(exc)

    def build_extension(self, ext):
        if self._fell_back:
            # The portable module failed: an AVX2 variant alone would be a package
            # whose compiled backend exists on some CPUs only. Pure Python it is.
            return
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as exc:
            if ext.name == AVX2_MODULE and not REQUIRE_EXTENSION:
                # The portable module still serves every CPU; only speed is lost.
                sys.stderr.write(f"elman: the AVX2 variant of the kernels could not be "
                                 f"built ({type(exc).__name__}: {exc}); the baseline "
                                 f"kernels will be used on every CPU.\n")
                return
            self._fall_back(exc)

    def _fall_back(self, exc):
        reason = f"{type(exc).__name__}: {exc}"
        if REQUIRE_EXTENSION:
            raise _required_failure(reason) from exc
        if not self._fell_back:  # one message, even if run() sees the error again
            self._fell_back = True
            _announce_fallback(reason)


def _compile_args():
    if sys.platform == "win32":
        return ["/O2"]
    # -O3 and nothing that names an instruction set: the baseline module must run
    # on any x86-64 (checked by .ci/check_distribution.sh). CPython's own CFLAGS
    # carry -g; -g0 drops the debug info, which otherwise makes up most of the
    # wheel, unless the debug build was asked for.
    # -fno-trapping-math: the kernels never read floating-point exception flags, and
    # without it GCC 12 will not if-convert the branch-free selects of the tanh
    # (``_kernels.h``), so that loop stayed scalar: 8 ns an element instead of 1.
    # It changes no result (no reassociation, no finite-math assumptions).
    flags = ["-O3", "-g"] if CYTHON_DEBUG else ["-O3", "-g0"]
    return flags + ["-fno-trapping-math"]


def _link_args():
    # Release builds ship stripped shared objects: the symbol table (and any debug
    # section a compiler flag of the environment still adds) is dead weight in a
    # wheel. The debug build keeps both, for gdb and valgrind. MSVC writes debug
    # information to a separate .pdb, and only on request: a .pyd needs nothing here.
    if CYTHON_DEBUG or sys.platform == "win32":
        return []
    if sys.platform == "darwin":
        return ["-Wl,-S,-x"]  # ld64: no debug information, no local symbols
    return ["-s"]


AVX2_MODULE = "elman._kernels_avx2"


def _targets_x86_64():
    """True when the extension is being built for x86-64 (not cross-built for arm64)."""
    archflags = os.environ.get("ARCHFLAGS", "")
    if archflags:  # macOS: cibuildwheel says which architecture it builds for
        return [a.strip() for a in archflags.split("-arch")[1:]] == ["x86_64"]
    return platform.machine().lower() in ("x86_64", "amd64")


def _targets_this_machine():
    """False when cibuildwheel cross-builds for another architecture (macOS)."""
    archflags = os.environ.get("ARCHFLAGS", "")
    if not archflags:
        return True
    machine = platform.machine().lower()
    return [a.strip() for a in archflags.split("-arch")[1:]] == [machine]


def _avx2_args():
    # The same source again with AVX2 and FMA: 1.3 to 1.6x faster from hidden 50 up
    # (bench/bench_isa.py). Only imported on CPUs that report both (_backend.py).
    if sys.platform == "win32":
        return ["/arch:AVX2"]
    return ["-mavx2", "-mfma"]


def extensions():
    if NO_EXTENSION:
        sys.stderr.write("elman: ELMAN_NO_EXTENSION=1, installing the pure-Python package.\n")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        if REQUIRE_EXTENSION:
            raise _required_failure(f"Cython is not available: {exc}") from exc
        _announce_fallback(f"Cython is not available: {exc}")
        return []

    directives = {
        "language_level": 3,
        "boundscheck": CYTHON_DEBUG,
        "wraparound": CYTHON_DEBUG,
        "initializedcheck": CYTHON_DEBUG,
        "cdivision": not CYTHON_DEBUG,
        "embedsignature": True,
    }
    # Both modules include the C helpers of _kernels.h (and _kernels_avx2.pyx
    # includes _kernels.pyx): a change to either rebuilds both.
    headers = dict(include_dirs=["src/elman"],
                   depends=["src/elman/_kernels.h", "src/elman/_kernels.pyx"])
    modules = [Extension(
        "elman._kernels",
        ["src/elman/_kernels.pyx"],
        extra_compile_args=_compile_args(),
        extra_link_args=_link_args(),
        **headers,
    )]
    if _targets_x86_64():
        modules.append(Extension(
            AVX2_MODULE,
            ["src/elman/_kernels_avx2.pyx"],
            extra_compile_args=_compile_args() + _avx2_args(),
            extra_link_args=_link_args(),
            **headers,
        ))
    try:
        return cythonize(modules, compiler_directives=directives, quiet=True)
    except Exception as exc:  # missing .pyx, Cython compile error, ...
        if REQUIRE_EXTENSION:
            raise _required_failure(f"cythonize failed: {exc}") from exc
        _announce_fallback(f"cythonize failed: {exc}")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
