"""Fixtures shared by the whole suite: both backends, and how closely they agree.

Running a test on both backends
-------------------------------
Take the ``backend`` fixture::

    def test_something(backend):          # runs twice: [cython] and [numpy]
        model = elman.RNN(2, 4, 1, seed=0)
        ...                               # every elman call here uses `backend`

The test body runs inside ``elman.use_backend(name)`` and receives the name. The
switch is per thread (a context variable): code that the test runs in *other*
threads uses the backend chosen at import, not the fixture's.

When the ``cython`` case is skipped, and when it fails
------------------------------------------------------
* ``ELMAN_BACKEND=numpy``: skipped (this run is the NumPy twin's run).
* ``ELMAN_BACKEND`` unset and ``elman._kernels`` not importable (an install made
  without a compiler): skipped, with the reason.
* ``ELMAN_BACKEND=cython``: never skipped. If the compiled module is missing,
  ``import elman`` below already raises ImportError, so pytest stops before
  running anything ("ImportError while loading conftest", exit status 4); the
  fixture also asks for the compiled module itself, so it can only error, never
  skip. This is the CI run that must not pass quietly without the extension.

Comparing the two backends
--------------------------
``both_backends(fn, *args, **kwargs)`` calls ``fn`` once on each backend and
returns ``(compiled_result, twin_result)``; it skips under the same conditions as
the ``cython`` case above. ``compiled_kernels`` / ``twin_kernels`` give the kernel
modules themselves, for tests of the kernel contract (``_kernels_numpy``'s
docstring).

Tolerances
----------
``assert_close(actual, expected, dtype)`` passes when

    max |actual - expected|  <=  rtol * max(1, max |expected|)

with ``rtol`` = ``RTOL_FLOAT64`` (1e-12) or ``RTOL_FLOAT32`` (1e-5). Why scale by
the largest magnitude in the array rather than element by element: the two
backends sum the same products in different orders (row-wise loops against
blocked BLAS), and the rounding error of a sum is bounded by eps * sum |terms|,
not by eps * |result|. An element that comes out near zero by cancellation (an
output crossing zero, a gradient entry whose contributions cancel) would fail an
element-wise relative test with both backends correct. Normwise bounds are what
floating-point analysis of matrix products gives. The floor of 1 stops an array
whose entries are all tiny (a gradient of 1e-9) from demanding more digits than
its terms, of size 1, carried; the values here (tanh states, outputs and losses
of O(1) data) are of order 1. 1e-12 is about 4500 float64 ulps and 1e-5 about 80
float32 ulps at scale 1: room for sums of hundreds of terms, but a wrong index,
a missing term or a float32 round trip in a float64 path fails it by orders of
magnitude.
"""

import os

import numpy as np
import pytest

# With ELMAN_BACKEND=cython and no compiled module this raises ImportError, which
# aborts the run: deliberately not caught.
import elman
from elman import _backend, _engine

RTOL_FLOAT64 = 1e-12
RTOL_FLOAT32 = 1e-5
RTOL = {np.dtype(np.float64): RTOL_FLOAT64, np.dtype(np.float32): RTOL_FLOAT32}

REQUESTED_BACKEND = os.environ.get("ELMAN_BACKEND", "").strip().lower()


def _compiled_skip_reason():
    """Why the compiled backend is not tested in this run, or None."""
    if REQUESTED_BACKEND == "numpy":
        return "ELMAN_BACKEND=numpy: this run tests the NumPy twin only"
    if REQUESTED_BACKEND == "cython":
        return None  # required: never skip (a missing module already failed import)
    if not elman.compiled_available():
        return ("the compiled module elman._kernels is not importable in this install "
                "(ELMAN_BACKEND is unset, so elman runs on the NumPy twin)")
    return None


COMPILED_SKIP_REASON = _compiled_skip_reason()


def pytest_report_header(config):
    compiled = "skipped: " + COMPILED_SKIP_REASON if COMPILED_SKIP_REASON else "tested"
    return (f"elman {elman.__version__}: default backend {elman.BACKEND!r} "
            f"(ELMAN_BACKEND={os.environ.get('ELMAN_BACKEND', '<unset>')!r}); "
            f"compiled backend {compiled}")


def _compiled_kernels_or_skip():
    if COMPILED_SKIP_REASON is not None:
        pytest.skip(COMPILED_SKIP_REASON)
    # Raises ImportError (an error, not a skip) if the module is missing.
    return _backend.get_kernels("cython")


@pytest.fixture(params=[
    pytest.param("cython", id="cython",
                 marks=pytest.mark.skipif(COMPILED_SKIP_REASON is not None,
                                          reason=str(COMPILED_SKIP_REASON))),
    pytest.param("numpy", id="numpy"),
])
def backend(request):
    """Run the test on one backend; yields its name, 'cython' or 'numpy'."""
    name = request.param
    if name == "cython":
        _compiled_kernels_or_skip()
    with elman.use_backend(name):
        assert elman.BACKEND == name
        yield name


@pytest.fixture
def compiled_kernels():
    """The compiled kernel module (skips as the ``cython`` case of ``backend``)."""
    return _compiled_kernels_or_skip()


@pytest.fixture
def twin_kernels():
    """The NumPy twin kernel module."""
    return _backend.get_kernels("numpy")


@pytest.fixture
def both_backends():
    """``run(fn, *args, **kwargs) -> (compiled_result, twin_result)``."""
    _compiled_kernels_or_skip()

    def run(fn, *args, **kwargs):
        results = []
        for name in ("cython", "numpy"):
            with elman.use_backend(name):
                results.append(fn(*args, **kwargs))
        return tuple(results)

    return run


def assert_close(actual, expected, dtype=None, *, rtol=None, what="arrays"):
    """Assert max|actual - expected| <= rtol * max(1, max|expected|) (see module doc).

    ``dtype`` picks the tolerance (default: ``expected``'s dtype); ``rtol``
    overrides it. Shapes must match exactly and every value must be finite.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape} != expected {expected.shape}")
    if rtol is None:
        rtol = RTOL[np.dtype(dtype if dtype is not None else expected.dtype)]
    if expected.size == 0:
        return
    assert np.isfinite(actual).all() and np.isfinite(expected).all(), (
        f"{what}: non-finite values")
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(e))))
    error = float(np.max(np.abs(a - e)))
    assert error <= rtol * scale, (
        f"{what}: max |difference| {error:.3g} > {rtol:g} * scale {scale:.3g} "
        f"(relative {error / scale:.3g})")


@pytest.fixture(name="assert_close")
def assert_close_fixture():
    """The :func:`assert_close` function, for test modules (conftest is not imported)."""
    return assert_close


# ------------------------------------------------------------------- routes
ROUTES = ["fused", "compiled loops", "blas steps"]


@pytest.fixture(params=ROUTES + ["twin"])
def forced_route(request, monkeypatch):
    """Force every call of the test onto one route of the route table (batch >= 2).

    The compiled routes run on the compiled backend (skipped where it is not
    available, as the ``backend`` fixture skips); ``twin`` runs on the NumPy twin.
    Yields the route's name; the ``assert_route`` fixture checks a call takes it.
    """
    name = request.param
    if name == "twin":
        with elman.use_backend("numpy"):
            yield name
        return
    _compiled_kernels_or_skip()
    fused = name == "fused"
    monkeypatch.setattr(_engine, "FUSED_MAX_BATCH_HIDDEN2", 2 ** 62 if fused else 0)
    blas = name == "blas steps"
    monkeypatch.setattr(_engine, "BLAS_STEPS_MIN_BATCH", 1 if blas else 2 ** 62)
    monkeypatch.setattr(_engine, "BLAS_STEPS_MIN_HIDDEN", 1 if blas else 2 ** 62)
    monkeypatch.setattr(_engine, "_ROUTES", {})
    with elman.use_backend("cython"):
        yield name


def assert_route(route, batch, hidden):
    """Assert the route table sends a call on ``batch`` sequences of ``hidden`` units
    to ``route`` (a ``forced_route`` name)."""
    chosen = _engine.route(batch, hidden)
    if route in ("fused", "twin"):
        assert chosen.name == route
    else:
        assert chosen.name == "gemm" and chosen.recurrences.name == route


@pytest.fixture(name="assert_route")
def assert_route_fixture():
    """The :func:`assert_route` function, for test modules."""
    return assert_route
