"""Choose between the compiled kernels and their NumPy twin.

``ELMAN_BACKEND`` (read once, at import):

* unset or empty: the compiled module if it imports, otherwise the NumPy twin, silently;
* ``cython``: the compiled module, or an ImportError that says how to build it;
* ``numpy``: the NumPy twin.

``ELMAN_ISA`` picks among compiled builds: unset, the AVX2+FMA build when the CPU
has both; ``baseline``, the portable build; ``avx2``, that build or ImportError.

Both modules export the same functions with the same signatures (see
``_kernels_numpy`` for the contract). :func:`use_backend` switches the backend for
the current thread or task only, which is how the test suite runs every test on
both backends in one process.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from typing import Iterator

from elman import _threading

BACKEND_NAMES = ("cython", "numpy")

_BUILD_HINT = (
    "the compiled module elman._kernels is not available ({reason}). "
    "Install a C compiler and reinstall elman from source "
    "(pip install --no-binary elman elman, or pip install . in a checkout) with "
    "ELMAN_REQUIRE_EXTENSION=1 to see why the build fails; or unset "
    "ELMAN_BACKEND / set ELMAN_BACKEND=numpy to use the NumPy twin."
)


ISA_NAMES = ("baseline", "avx2")


def cpu_has_avx2_fma():
    """True when this CPU (and OS) can run the AVX2+FMA build of the kernels.

    Asks NumPy's own runtime CPU-feature detection, which also checks that the
    operating system saves the AVX registers.
    """
    features = None
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            features = importlib.import_module(module).__cpu_features__
            break
        except (ImportError, AttributeError):
            continue
    if not features:
        return False
    return bool(features.get("AVX2")) and bool(features.get("FMA3"))


def _requested_isa():
    requested = os.environ.get("ELMAN_ISA", "").strip().lower()
    if requested not in ("",) + ISA_NAMES:
        raise ImportError(f"ELMAN_ISA must be unset, 'baseline' or 'avx2'; got {requested!r}")
    return requested


def _import_compiled():
    """The best compiled build this CPU runs, or the one ELMAN_ISA names.

    ELMAN_ISA unset: the AVX2+FMA build when the CPU has both and it was built,
    else the baseline build. ``baseline``: the portable build. ``avx2``: the AVX2
    build, or ImportError when it is missing or the CPU cannot run it.
    """
    requested = _requested_isa()
    if requested == "avx2" and not cpu_has_avx2_fma():
        raise ImportError("ELMAN_ISA=avx2, but this CPU does not report AVX2 and FMA")
    if requested == "avx2" or (requested == "" and cpu_has_avx2_fma()):
        try:
            return importlib.import_module("elman._kernels_avx2")
        except ImportError:
            if requested == "avx2":
                raise
    return importlib.import_module("elman._kernels")


def instruction_set():
    """Instruction-set level of the compiled kernels in use ('baseline' or
    'avx2+fma'), or None when they are not available."""
    try:
        return get_kernels("cython").INSTRUCTION_SET
    except ImportError:
        return None


def _import_numpy_twin():
    return importlib.import_module("elman._kernels_numpy")


def _load(name):
    if name == "numpy":
        return _import_numpy_twin()
    try:
        return _threading_registered(_import_compiled())
    except ImportError as exc:
        raise ImportError("ELMAN_BACKEND=cython, but " + _BUILD_HINT.format(reason=exc)) from exc


def _threading_registered(kernels):
    """The compiled module, given the process's thread setting (elman._threading)."""
    _threading.register(kernels)
    return kernels


def _choose_default():
    requested = os.environ.get("ELMAN_BACKEND", "").strip().lower()
    if requested == "":
        try:
            return "cython", _threading_registered(_import_compiled())
        except ImportError:
            return "numpy", _import_numpy_twin()
    if requested not in BACKEND_NAMES:
        raise ImportError(
            f"ELMAN_BACKEND must be unset, 'cython' or 'numpy'; got {requested!r}"
        )
    return requested, _load(requested)


_DEFAULT_NAME, _DEFAULT_MODULE = _choose_default()
_MODULES = {_DEFAULT_NAME: _DEFAULT_MODULE}
_ACTIVE = contextvars.ContextVar("elman_backend", default=(_DEFAULT_NAME, _DEFAULT_MODULE))


def compiled_available() -> bool:
    """True when the compiled kernels import on this machine."""
    try:
        get_kernels("cython")
    except ImportError:
        return False
    return True


def get_kernels(name=None):
    """The kernel module for backend ``name`` (the active one when None)."""
    if name is None:
        return _ACTIVE.get()[1]
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend must be one of {BACKEND_NAMES}; got {name!r}")
    module = _MODULES.get(name)
    if module is None:
        module = _MODULES[name] = _load(name)
    return module


def get_num_threads() -> int:
    """The number of threads the kernels of the active backend would use for one
    model now, in this thread (see :func:`elman.set_num_threads`): 1 on the NumPy
    backend and for a compiled module built without OpenMP."""
    return _threading.count_for(get_kernels())


def active_name():
    """Name of the backend in use in this thread or task: 'cython' or 'numpy'."""
    return _ACTIVE.get()[0]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the enclosed block on backend ``name`` ('cython' or 'numpy').

    The switch applies to the current thread (or asyncio task) only; other threads
    keep the backend chosen at import.
    """
    token = _ACTIVE.set((name, get_kernels(name)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)
