"""The compiled kernels' lean entries (forward, loss_and_grad, backward, step) read
the arrays' headers instead of acquiring typed memoryviews: they must accept and
refuse exactly what typed memoryviews of the contract's types would have."""

import numpy as np
import pytest

import elman

I, H, O, L, B, T = 3, 4, 2, 2, 2, 5


def _backward_arguments(dtype):
    model = elman.RNN(I, H, O, num_layers=L, seed=0, dtype=dtype)
    rng = np.random.default_rng(0)
    arguments = {
        "theta": model._theta,
        "X": rng.normal(size=(B, T, I)).astype(dtype),
        "h0": (0.5 * rng.normal(size=(L, B, H))).astype(dtype),
        "lengths": np.array([T, T - 2], dtype=np.intp),
        "dY": rng.normal(size=(B, T, O)).astype(dtype),
        "grad": np.empty(model.n_params, dtype=dtype),
        "dX": np.empty((B, T, I), dtype=dtype),
        "dh0": np.empty((L, B, H), dtype=dtype),
        "dh_last": rng.normal(size=(L, B, H)).astype(dtype),
    }
    return model, arguments


def _backward(kernels, model, arguments):
    a = arguments
    kernels.backward(a["theta"], I, H, O, L, model._activation, True, a["X"], a["h0"],
                     a["lengths"], a["dY"], a["grad"], a["dX"], a["dh0"], a["dh_last"])
    return a["grad"].copy(), a["dX"].copy(), a["dh0"].copy()


def _read_only(array):
    array = array.copy()
    array.flags.writeable = False
    return array


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backward_entry_takes_read_only_inputs_and_either_intp(compiled_kernels, twin_kernels,
                                                               dtype, assert_close):
    model, arguments = _backward_arguments(dtype)
    expected = _backward(twin_kernels, model, dict(arguments))
    plain = _backward(compiled_kernels, model, dict(arguments))
    for name in ("X", "h0", "dY", "dh_last", "lengths"):
        arguments[name] = _read_only(arguments[name])
    # int64 is C long on Linux and long long on Windows: both arrive as intp lengths.
    for code in "lq":
        if np.dtype(code).itemsize == np.dtype(np.intp).itemsize:
            arguments["lengths"] = arguments["lengths"].astype(code)
            again = _backward(compiled_kernels, model, dict(arguments))
            for a, b in zip(plain, again):
                np.testing.assert_array_equal(a, b)
    for a, b in zip(plain, expected):
        assert_close(a, b, dtype)


def test_backward_entry_without_dh_last_equals_zeros(compiled_kernels):
    model, arguments = _backward_arguments("float64")
    arguments["dh_last"] = np.zeros((L, B, H))
    zeros = _backward(compiled_kernels, model, dict(arguments))
    arguments["dh_last"] = None
    none = _backward(compiled_kernels, model, dict(arguments))
    for a, b in zip(zeros, none):
        np.testing.assert_array_equal(a, b)
    assert np.abs(none[0]).max() > 0


def test_backward_entry_of_an_empty_batch_zeroes_the_gradient(compiled_kernels):
    model, arguments = _backward_arguments("float64")
    arguments.update(X=np.empty((0, T, I)), h0=np.empty((L, 0, H)),
                     lengths=np.empty(0, dtype=np.intp), dY=np.empty((0, T, O)),
                     dX=np.empty((0, T, I)), dh0=np.empty((L, 0, H)), dh_last=None)
    arguments["grad"][:] = np.nan
    grad, _, _ = _backward(compiled_kernels, model, arguments)
    assert not grad.any()


def _refusals(dtype):
    other = np.float32 if dtype == "float64" else np.float64
    _, a = _backward_arguments(dtype)
    return [
        ("theta", a["theta"].tolist(), TypeError, "theta must be a float64 or float32"),
        ("X", a["X"].astype(other), ValueError, "X must be a C-contiguous 3-d"),
        ("X", np.asfortranarray(a["X"]), ValueError, "X must be a C-contiguous 3-d"),
        ("X", a["X"].tolist(), TypeError, "X must be a NumPy array"),
        ("h0", a["h0"][0], ValueError, "h0 must be a C-contiguous 3-d"),
        ("lengths", a["lengths"].astype(np.int32), ValueError,
         "lengths must be a C-contiguous 1-d intp"),
        ("dY", a["dY"][..., None], ValueError, "dY must be a C-contiguous 3-d"),
        ("dY", a["dY"].astype(other), ValueError, "dY must be a C-contiguous 3-d"),
        ("grad", _read_only(a["grad"]), ValueError, "grad must be a C-contiguous writeable"),
        ("dX", _read_only(a["dX"]), ValueError, "dX must be a C-contiguous writeable"),
        ("dh0", a["dh0"].astype(other), ValueError, "dh0 must be a C-contiguous writeable"),
        ("dh_last", a["dh_last"].astype(other), ValueError, "dh_last must be a C-contiguous"),
        ("dh_last", a["dh_last"].tolist(), TypeError, "dh_last must be a NumPy array"),
    ]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backward_entry_refuses_what_a_typed_memoryview_refused(compiled_kernels, dtype):
    for name, bad, error, message in _refusals(dtype):
        model, arguments = _backward_arguments(dtype)
        arguments["grad"][:] = 7.0
        arguments[name] = bad
        with pytest.raises(error, match=message):
            _backward(compiled_kernels, model, arguments)
        if name != "grad":
            # Refused before anything was written.
            assert (arguments["grad"] == 7.0).all(), name
