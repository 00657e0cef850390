"""Build script: compiles the Cython kernels, or installs pure Python when that fails.

Environment switches (read at build time):

ELMAN_REQUIRE_EXTENSION=1
    A failed compile is fatal. Wheel builds and CI set this, so a wheel can never
    quietly ship without its compiled module.
ELMAN_NO_EXTENSION=1
    Do not try to compile; install the pure-Python package (NumPy twin only).
ELMAN_CYTHON_DEBUG=1
    Turn Cython's bounds, wraparound and initialisation checks back on, so an
    out-of-range index in a kernel raises IndexError instead of corrupting memory.

Everything else (metadata, dependencies) lives in pyproject.toml.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


REQUIRE_EXTENSION = _flag("ELMAN_REQUIRE_EXTENSION")
NO_EXTENSION = _flag("ELMAN_NO_EXTENSION")
CYTHON_DEBUG = _flag("ELMAN_CYTHON_DEBUG")

if REQUIRE_EXTENSION and NO_EXTENSION:
    sys.exit("ELMAN_REQUIRE_EXTENSION=1 and ELMAN_NO_EXTENSION=1 contradict each other.")

FALLBACK_MESSAGE = """
************************************************************************
elman: the compiled kernels could not be built ({reason}).
Installed the pure-Python package instead: elman.BACKEND will be "numpy".
It gives the same results, only slower. To build the kernels, install a C
compiler and Cython 3, then reinstall; set ELMAN_REQUIRE_EXTENSION=1 to
make this failure fatal instead.
************************************************************************
"""


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python unless the extension is required."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, Cython missing, ...
            self._fall_back(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fall_back(exc)

    def _fall_back(self, exc):
        if REQUIRE_EXTENSION:
            raise
        message = FALLBACK_MESSAGE.format(reason=f"{type(exc).__name__}: {exc}")
        # Printed to stderr and as a warning: pip shows one or the other depending on -v.
        sys.stderr.write(message)
        self.warn(message)


def _compile_args():
    if sys.platform == "win32":
        return ["/O2"]
    return ["-O3"]


def extensions():
    if NO_EXTENSION:
        sys.stderr.write("elman: ELMAN_NO_EXTENSION=1, installing the pure-Python package.\n")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        if REQUIRE_EXTENSION:
            raise
        sys.stderr.write(FALLBACK_MESSAGE.format(reason=f"Cython is not available: {exc}"))
        return []

    directives = {
        "language_level": 3,
        "boundscheck": CYTHON_DEBUG,
        "wraparound": CYTHON_DEBUG,
        "initializedcheck": CYTHON_DEBUG,
        "cdivision": not CYTHON_DEBUG,
        "embedsignature": True,
    }
    kernels = Extension(
        "elman._kernels",
        ["src/elman/_kernels.pyx"],
        extra_compile_args=_compile_args(),
    )
    try:
        return cythonize([kernels], compiler_directives=directives, quiet=True)
    except Exception as exc:
        if REQUIRE_EXTENSION:
            raise
        sys.stderr.write(FALLBACK_MESSAGE.format(reason=f"cythonize failed: {exc}"))
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
