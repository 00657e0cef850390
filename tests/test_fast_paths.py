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
