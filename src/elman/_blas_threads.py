"""The BLAS library's thread count, held at one while elman runs BLAS on its own threads.

The large-batch route can run the recurrence of several chunks of a batch at once,
one chunk per thread, each calling NumPy's matrix product. Two things need the BLAS
library on one thread meanwhile:

* speed: OpenBLAS threads every product of that size, and two calls that each want
  all the cores slow each other down;
* bits: a product's result can depend on how many threads computed it (OpenBLAS
  splits some shapes differently), and the chunks must give the same bits whichever
  thread ran them and however many ran at once.

The library is the one NumPy loaded. It is found by its file (the shared objects this
process has mapped, on Linux; NumPy's bundled libraries elsewhere) and its thread
functions by their exported names (OpenBLAS, plain or as NumPy's ``scipy_openblas``
build, 32- or 64-bit integers). Where none is found (another BLAS, an OpenBLAS
threaded by OpenMP, or a platform where the search finds nothing) :func:`available` is False and the caller keeps the
whole batch in one product, as it did before, so results never depend on this
search.

The count is process-wide, as for threadpoolctl: while any caller holds
:func:`one_blas_thread`, BLAS products anywhere in the process run on one thread;
the last caller to leave restores the count found when the first entered.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading
from typing import Iterator

import numpy as np

# Exported names of the thread functions: NumPy's wheels bundle OpenBLAS built with a
# "scipy_" symbol prefix and 64-bit integers; distributions ship plain OpenBLAS.
_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
# openblas_get_parallel(): 0 sequential, 1 its own threads, 2 OpenMP's.
_OPENMP_THREADED = 2


class _Library:
    """The thread functions of one loaded BLAS library."""

    def __init__(self, path: str, set_count: ctypes._CFuncPtr,  # type: ignore[name-defined]
                 get_count: ctypes._CFuncPtr) -> None:  # type: ignore[name-defined]
        self.path = path
        self._set, self._get = set_count, get_count

    def get(self) -> int:
        return int(self._get())

    def set(self, n: int) -> None:
        self._set(int(n))


def _mapped_libraries() -> list[str]:
    """Paths of the shared objects mapped into this process whose names mention
    OpenBLAS (Linux's /proc/self/maps; empty elsewhere)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if "openblas" in os.path.basename(path).lower() and path not in found:
            found.append(path)
    return found


def _bundled_libraries() -> list[str]:
    """OpenBLAS libraries bundled with NumPy's wheels (numpy.libs on Linux and
    Windows, numpy/.dylibs on macOS)."""
    root = os.path.dirname(os.path.abspath(np.__file__))
    patterns = [os.path.join(root, ".dylibs", "*openblas*"),
                os.path.join(os.path.dirname(root), "numpy.libs", "*openblas*")]
    return sorted(path for pattern in patterns for path in glob.glob(pattern))


def _open(path: str) -> _Library | None:
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    for setter in _SETTERS:
        getter = setter.replace("_set_", "_get_")
        try:
            set_count, get_count = getattr(library, setter), getattr(library, getter)
        except AttributeError:
            continue
        # An OpenBLAS threaded by OpenMP takes its count from OpenMP, per thread, and
        # its setter did not work before 0.3.34: elman leaves such a build alone.
        parallel = getattr(library, setter.replace("_set_num_threads", "_get_parallel"),
                           None)
        if parallel is not None:
            parallel.argtypes, parallel.restype = [], ctypes.c_int
            if parallel() == _OPENMP_THREADED:
                return None
        set_count.argtypes, set_count.restype = [ctypes.c_int], None
        get_count.argtypes, get_count.restype = [], ctypes.c_int
        return _Library(path, set_count, get_count)
    return None


def _find() -> _Library | None:
    if os.environ.get("ELMAN_BLAS_THREAD_CONTROL", "1") == "0":
        return None
    for path in _mapped_libraries() + _bundled_libraries():
        found = _open(path)
        if found is not None:
            return found
    return None


_LIBRARY: _Library | None = None
_SEARCHED = False
_LOCK = threading.Lock()
_HOLDERS = 0         # callers inside one_blas_thread now
_RESTORE = 0         # the count to restore when the last one leaves


def library() -> _Library | None:
    """The BLAS library whose thread count elman can set, or None (searched once)."""
    global _LIBRARY, _SEARCHED
    if not _SEARCHED:
        with _LOCK:
            if not _SEARCHED:
                _LIBRARY = _find()
                _SEARCHED = True
    return _LIBRARY


def available() -> bool:
    """True when elman can hold the BLAS library on one thread.

    ``ELMAN_BLAS_THREAD_CONTROL=0`` in the environment (read at the first call) turns
    the control off: the large-batch route then keeps each product whole, as on a
    BLAS elman cannot control."""
    return library() is not None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Hold the BLAS library at one thread for the enclosed block (see the module
    docstring); requires :func:`available`."""
    global _HOLDERS, _RESTORE
    found = library()
    if found is None:
        raise RuntimeError("no BLAS library whose thread count elman can set was found")
    with _LOCK:
        if _HOLDERS == 0:
            _RESTORE = found.get()
            if _RESTORE != 1:
                found.set(1)
        _HOLDERS += 1
    try:
        yield
    finally:
        with _LOCK:
            _HOLDERS -= 1
            if _HOLDERS == 0 and _RESTORE != 1:
                found.set(_RESTORE)


def _after_fork_in_child() -> None:
    # A fork inside the block leaves the child with holders that will never leave.
    global _LOCK, _HOLDERS
    _LOCK = threading.Lock()
    if _HOLDERS and _LIBRARY is not None and _RESTORE != 1:
        _LIBRARY.set(_RESTORE)
    _HOLDERS = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
