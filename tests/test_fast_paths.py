"""The model's fast paths give exactly what its full checks give.

Inputs already in the kernels' form (a C-contiguous ndarray in the model's dtype,
the right shape, finite, no lengths) skip the conversions; anything else takes the
full checks. A Fortran-ordered copy of the same values takes the full path, so the
two results must be equal bit for bit.
"""

import warnings

import numpy as np
import pytest

import elman
from elman import _validation


def _slow(array):
    """The same values in a form the fast path refuses (Fortran order, a copy)."""
    return np.asfortranarray(array) if array.ndim > 1 else array.tolist()


def _pair(shape, seed):
    rng = np.random.default_rng(seed)
    fast = rng.normal(size=shape)
    slow = _slow(fast)
    if isinstance(slow, np.ndarray):
        assert not slow.flags.c_contiguous
    return fast, slow


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_forward_fast_and_full_paths_agree(backend, return_sequences, batched):
    model = elman.RNN(3, 6, 2, num_layers=2, seed=0, return_sequences=return_sequences)
    X, X_slow = _pair((4, 5, 3) if batched else (5, 3), 1)
    h0, h0_slow = _pair((2, 4, 6) if batched else (2, 6), 2)
    for state, state_slow in ((None, None), (h0, h0_slow)):
        fast = model.forward(X, state, return_state=True)
        slow = model.forward(X_slow, state_slow, return_state=True)
        for a, b in zip(fast, slow):
            assert a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(X), model.predict(X_slow))


@pytest.mark.parametrize("return_sequences, target_shape", [
    (True, (4, 5, 2)), (True, (5, 2)), (False, (4, 2)), (False, (2,))])
def test_loss_and_grad_fast_and_full_paths_agree(backend, return_sequences, target_shape):
    model = elman.RNN(3, 6, 2, seed=0, return_sequences=return_sequences)
    batched = len(target_shape) == (3 if return_sequences else 2)
    X, X_slow = _pair((4, 5, 3) if batched else (5, 3), 1)
    Y, Y_slow = _pair(target_shape, 3)
    loss, grads = model.loss_and_grad(X, Y)
    loss_slow, grads_slow = model.loss_and_grad(X_slow, Y_slow)
    assert loss == loss_slow
    assert list(grads) == list(grads_slow)
    for name in grads:
        np.testing.assert_array_equal(grads[name], grads_slow[name])
    assert grads.intact()
    assert all(np.shares_memory(view, grads.flat) for view in grads.values())


def test_one_output_many_to_one_takes_a_target_vector_on_the_fast_path(backend):
    model = elman.RNN(2, 5, 1, seed=0, return_sequences=False)
    X, _ = _pair((3, 4, 2), 1)
    Y = np.random.default_rng(2).normal(size=3)
    loss, grads = model.loss_and_grad(X, Y)
    loss_column, grads_column = model.loss_and_grad(X, Y[:, None].copy(order="F"))
    assert loss == loss_column
    np.testing.assert_array_equal(grads.flat, grads_column.flat)


def test_streaming_one_step_at_a_time_equals_one_call(backend):
    model = elman.RNN(2, 8, 1, num_layers=2, seed=0)
    stream = np.random.default_rng(4).normal(size=(9, 2))
    h = None
    outputs = []
    for x_t in stream:
        y_t, h = model.forward(x_t[None, :], h, return_state=True)
        outputs.append(y_t[0])
    whole, h_whole = model.forward(stream, return_state=True)
    np.testing.assert_allclose(np.array(outputs), whole, rtol=0, atol=1e-14)
    np.testing.assert_allclose(h, h_whole, rtol=0, atol=1e-14)


def test_shared_zero_states_and_lengths_stay_read_only_zeros(backend):
    model = elman.RNN(3, 4, 1, seed=0)
    X = np.random.default_rng(0).normal(size=(2, 5, 3))
    first = model.forward(X)
    zeros = _validation.zero_states(1, 2, 4, model.dtype)
    lengths = _validation.full_lengths(2, 5)
    assert not zeros.flags.writeable and not lengths.flags.writeable
    model.loss_and_grad(X, np.ones((2, 5, 1)))
    np.testing.assert_array_equal(model.forward(X), first)
    assert not zeros.any()
    np.testing.assert_array_equal(lengths, [5, 5])
    np.testing.assert_array_equal(first, model.forward(X, np.zeros((1, 2, 4))))


def test_a_non_finite_ready_array_still_gets_the_full_check(backend):
    model = elman.RNN(3, 4, 1, seed=0)
    X = np.zeros((2, 5, 3))
    X[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        model.forward(X)
    h = np.zeros((1, 4))
    h[0, 1] = np.inf
    with pytest.raises(ValueError, match="h0 contains NaN or inf"):
        model.forward(np.zeros((1, 3)), h, return_state=True)
    # Finite values whose sum overflows are valid: accepted without a warning.
    big = np.full((1, 2, 3), 1e308)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(model.forward(big)).all()


def test_the_shared_arrays_are_bounded():
    for batch in range(1, 3 * _validation.CACHED_MAX_SHAPES):
        _validation.zero_states(1, batch, 3, np.dtype(np.float64))
        _validation.full_lengths(batch, 4)
    assert len(_validation._zero_states) <= _validation.CACHED_MAX_SHAPES
    assert len(_validation._full_lengths) <= _validation.CACHED_MAX_SHAPES
    big = _validation.zero_states(1, _validation.CACHED_MAX_ELEMENTS + 1, 1,
                                  np.dtype(np.float64))
    assert not big.any() and not big.flags.writeable
    assert (1, _validation.CACHED_MAX_ELEMENTS + 1, 1, np.dtype(np.float64)) \
        not in _validation._zero_states


# ---------------------------------------------------------------------------
# The streaming step: forward(x_t[None], h, return_state=True) with x_t and h ready
# goes straight to the compiled step after one test of both arrays
# (rnn.stream_step_ready); everything else takes the full checks.
# ---------------------------------------------------------------------------

STREAM_I, STREAM_H, STREAM_L = 2, 5, 2


def _stream_model(dtype="float64", return_sequences=True):
    return elman.RNN(STREAM_I, STREAM_H, 1, num_layers=STREAM_L, dtype=dtype, seed=0,
                     return_sequences=return_sequences)


def _stream_arrays(dtype="float64"):
    rng = np.random.default_rng(5)
    return (rng.normal(size=(1, STREAM_I)).astype(dtype),
            (0.5 * rng.normal(size=(STREAM_L, STREAM_H))).astype(dtype))


def _with(array, index, value):
    array = np.array(array)
    array[index] = value
    return array


@pytest.fixture
def step_calls(monkeypatch):
    """Records each call of the compiled-step route (the stream fast path)."""
    from elman import _engine

    calls = []
    original = _engine.step

    def spy(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(_engine, "step", spy)
    return calls


@pytest.fixture
def kernel_requests(monkeypatch):
    """Records every request for a kernel module."""
    from elman import _backend

    requests = []
    original = _backend.get_kernels

    def spy(name=None):
        requests.append(name)
        return original(name)

    monkeypatch.setattr(_backend, "get_kernels", spy)
    return requests


_x, _h = _stream_arrays()
# (id, x, h, exception type, the whole message): what the full checks raise.
BAD_STREAM_STEPS = [
    ("x-nan", _with(_x, (0, 1), np.nan), _h, ValueError,
     "X contains NaN or inf; every value must be finite"),
    ("x-inf", _with(_x, (0, 0), np.inf), _h, ValueError,
     "X contains NaN or inf; every value must be finite"),
    ("x-nan-list", [[np.nan, 0.0]], _h, ValueError,
     "X contains NaN or inf; every value must be finite"),
    ("h-nan", _x, _with(_h, (1, 4), np.nan), ValueError,
     "h0 contains NaN or inf; every value must be finite"),
    ("h-minus-inf", _x, _with(_h, (0, 0), -np.inf), ValueError,
     "h0 contains NaN or inf; every value must be finite"),
    ("h-nan-non-contiguous", _x, _with(np.zeros((STREAM_L, 2 * STREAM_H)), (1, 2), np.nan)
     [:, ::2], ValueError, "h0 contains NaN or inf; every value must be finite"),
    ("h-nan-masked", _x, np.ma.masked_invalid(_with(_h, (0, 2), np.nan)), ValueError,
     "h0 contains NaN or inf; every value must be finite"),
    ("x-complex", _x + 0j, _h, TypeError,
     "X must hold real numbers; got an array of dtype complex128"),
    ("h-strings", _x, _h.astype("<U3"), TypeError,
     "h0 must hold real numbers; got an array of dtype <U3"),
    ("x-features", np.zeros((1, STREAM_I + 1)), _h, ValueError,
     "X must have 2 features on its last axis (input_size); got shape (1, 3)"),
    ("h-vector", _x, np.zeros(STREAM_H), ValueError,
     "h0 must have shape (2, 5) (num_layers, hidden_size); got (5,)"),
    ("h-layers", _x, np.zeros((1, STREAM_H)), ValueError,
     "h0 must have shape (2, 5) (num_layers, hidden_size); got (1, 5)"),
    ("h-batched", _x, np.zeros((STREAM_L, 1, STREAM_H)), ValueError,
     "h0 must have shape (2, 5) (num_layers, hidden_size); got (2, 1, 5)"),
    ("x-empty", np.zeros((0, STREAM_I)), _h, ValueError,
     "X is an empty sequence: its time axis has length 0"),
]


@pytest.mark.parametrize("case_id, x, h, error, message", BAD_STREAM_STEPS,
                         ids=[case[0] for case in BAD_STREAM_STEPS])
def test_bad_stream_steps_get_the_full_checks_errors_before_any_kernel(
        backend, kernel_requests, step_calls, case_id, x, h, error, message):
    model = _stream_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error) as info:
            model.forward(x, h, return_state=True)
    assert type(info.value) is error
    assert str(info.value) == message
    assert kernel_requests == [] and step_calls == []


def test_a_float32_stream_step_that_overflows_is_rejected(backend, kernel_requests):
    model = _stream_model("float32")
    x, h = _stream_arrays("float64")
    with pytest.raises(ValueError) as info:
        model.forward(_with(x, (0, 0), 1e39), h.astype(np.float32), return_state=True)
    assert str(info.value) == "X has values too large for float32 (they overflow to inf)"
    assert kernel_requests == []


class _Subclass(np.ndarray):
    """An ndarray subclass: the full checks take a plain view of it."""


def _converted_variants(x, h):
    """(id, x, h): the same values in forms the fast path refuses and the full
    checks convert."""
    big_endian = h.dtype.newbyteorder(">")
    return [
        ("lists", x.tolist(), h.tolist()),
        ("x-list", x.tolist(), h),
        ("h-fortran", x, np.asfortranarray(h)),
        ("h-strided", x, np.repeat(h, 2, axis=1)[:, ::2]),
        ("x-strided", np.repeat(x, 2, axis=1)[:, ::2], h),
        ("h-big-endian", x, h.astype(big_endian)),
        ("h-subclass", x, h.view(_Subclass)),
        ("x-masked", np.ma.masked_array(x), h),
    ]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_stream_step_fast_and_full_paths_agree_bit_for_bit(backend, step_calls, dtype,
                                                           return_sequences):
    model = _stream_model(dtype, return_sequences)
    x, h = _stream_arrays(dtype)
    y_fast, h_fast = model.forward(x, h, return_state=True)
    assert len(step_calls) == 1, "ready arrays did not take the compiled step"
    assert y_fast.shape == ((1, 1) if return_sequences else (1,))
    assert h_fast.shape == (STREAM_L, STREAM_H)
    assert y_fast.dtype == h_fast.dtype == model.dtype
    # The outputs are new arrays of their own, not views of the inputs or of each other.
    assert y_fast.base is None and h_fast.base is None
    assert not np.shares_memory(h_fast, h)
    for case_id, x_slow, h_slow in _converted_variants(x, h):
        y_slow, h_next_slow = model.forward(x_slow, h_slow, return_state=True)
        assert len(step_calls) == 1, f"{case_id} took the fast path"
        assert y_slow.shape == y_fast.shape and h_next_slow.shape == h_fast.shape, case_id
        np.testing.assert_array_equal(y_slow, y_fast, err_msg=case_id)
        np.testing.assert_array_equal(h_next_slow, h_fast, err_msg=case_id)


def test_integer_stream_steps_are_converted(backend, step_calls):
    model = _stream_model()
    x, h = np.array([[1, -2]]), np.array([[0, 1, 0, -1, 0]] * STREAM_L)
    y, h_next = model.forward(x, h, return_state=True)
    assert step_calls == []
    y_ready, h_ready = model.forward(x.astype(float), h.astype(float), return_state=True)
    assert len(step_calls) == 1
    np.testing.assert_array_equal(y, y_ready)
    np.testing.assert_array_equal(h_next, h_ready)


def test_the_stream_step_leaves_its_inputs_alone(backend):
    model = _stream_model()
    x, h = _stream_arrays()
    x_saved, h_saved = x.copy(), h.copy()
    h.flags.writeable = False
    _, h_next = model.forward(x, h, return_state=True)
    np.testing.assert_array_equal(x, x_saved)
    np.testing.assert_array_equal(h, h_saved)
    assert not np.array_equal(h_next, h)


def _stream_check_inputs(dtype):
    """(x, h) pairs of every kind the stream check sees, good and bad."""
    x, h = _stream_arrays(dtype)
    other = np.float32 if dtype == "float64" else np.float64
    pairs = [(x, h), (x, h.copy(order="F")), (x, np.ascontiguousarray(h[::-1])),
             (x.tolist(), h), (x, h.tolist()), (None, h), (x, None), (1.0, h),
             (x[0], h), (x, h[None]), (x, h[:1]), (x, h[:, :-1]), (x[:, :1], h),
             (np.zeros((1, 0)), h), (x, np.zeros((STREAM_L, 0))),
             (x.astype(other), h), (x, h.astype(other)), (x, h.astype(np.float16)),
             (x, h.astype(np.longdouble)), (x.astype(int), h), (x, h.astype(bool)),
             (x, h.astype(h.dtype.newbyteorder(">"))), (x, h.astype(complex)),
             (np.repeat(x, 2, axis=1)[:, ::2], h), (x, np.repeat(h, 2, axis=1)[:, ::2]),
             (x, h.view(_Subclass)), (np.ma.masked_array(x), h), (x, np.full_like(h, 1e30)),
             (x, np.full_like(h, np.finfo(dtype).max)), (x, np.full_like(h, -0.0)),
             (x, np.full_like(h, np.finfo(dtype).smallest_subnormal))]
    read_only = h.copy()
    read_only.flags.writeable = False
    pairs.append((x, read_only))
    # A non-finite value at every position: the compiled test runs in vector lanes
    # and a scalar tail, and each must see it.
    for value in (np.nan, np.inf, -np.inf):
        for index in np.ndindex(h.shape):
            pairs.append((x, _with(h, index, value)))
        for index in np.ndindex(x.shape):
            pairs.append((_with(x, index, value), h))
    return pairs


def _compiled_stream_checks():
    import importlib

    from elman import _backend

    checks = []
    for name in ("elman._kernels", "elman._kernels_avx2"):
        if name.endswith("avx2") and not _backend.cpu_has_avx2_fma():
            continue
        try:
            checks.append(importlib.import_module(name)._stream_step_ready)
        except ImportError:
            continue
    return checks


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_compiled_stream_check_equals_the_python_one(compiled_kernels, dtype):
    checks = _compiled_stream_checks()
    assert checks, "no compiled module to test"
    theta = _stream_model(dtype)._theta
    sizes = (STREAM_I, STREAM_H, STREAM_L)
    pairs = _stream_check_inputs(dtype)
    expected = [_validation.stream_step_ready_python(theta, *sizes, x, h) for x, h in pairs]
    assert expected[0] and expected.count(True) >= 5 and expected.count(False) >= 40
    for check in checks:
        assert [check(theta, *sizes, x, h) for x, h in pairs] == expected


def test_the_stream_check_is_the_compiled_one_where_the_kernels_are():
    from elman import _backend, rnn

    if elman.BACKEND == "cython":
        assert rnn.stream_step_ready is _backend.get_kernels()._stream_step_ready
    else:
        assert rnn.stream_step_ready is _validation.stream_step_ready_python
