"""Choose between the compiled kernels and their NumPy twin.

``ELMAN_BACKEND`` (read once, at import):

* unset or empty: the compiled module if it imports, otherwise the NumPy twin, silently;
* ``cython``: the compiled module, or an ImportError that says how to build it;
* ``numpy``: the NumPy twin.

Both modules export the same functions with the same signatures (see
``_kernels_numpy`` for the contract). :func:`use_backend` switches the backend for
the current thread or task only, which is how the test suite runs every test on
both backends in one process.
"""

import contextlib
import contextvars
import importlib
import os

BACKEND_NAMES = ("cython", "numpy")

_BUILD_HINT = (
    "the compiled module elman._kernels is not available ({reason}). "
    "Install a C compiler and reinstall elman from source "
    "(pip install --no-binary elman elman, or pip install . in a checkout) with "
    "ELMAN_REQUIRE_EXTENSION=1 to see why the build fails; or unset "
    "ELMAN_BACKEND / set ELMAN_BACKEND=numpy to use the NumPy twin."
)


def _import_compiled():
    return importlib.import_module("elman._kernels")


def _import_numpy_twin():
    return importlib.import_module("elman._kernels_numpy")


def _load(name):
    if name == "numpy":
        return _import_numpy_twin()
    try:
        return _import_compiled()
    except ImportError as exc:
        raise ImportError("ELMAN_BACKEND=cython, but " + _BUILD_HINT.format(reason=exc)) from exc


def _choose_default():
    requested = os.environ.get("ELMAN_BACKEND", "").strip().lower()
    if requested == "":
        try:
            return "cython", _import_compiled()
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


def compiled_available():
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


def active_name():
    """Name of the backend in use in this thread or task: 'cython' or 'numpy'."""
    return _ACTIVE.get()[0]


@contextlib.contextmanager
def use_backend(name):
    """Run the enclosed block on backend ``name`` ('cython' or 'numpy').

    The switch applies to the current thread (or asyncio task) only; other threads
    keep the backend chosen at import.
    """
    token = _ACTIVE.set((name, get_kernels(name)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)
