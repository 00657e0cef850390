"""Every size regime of the compiled recurrences agrees with the twin.

On the gemm route, the route table (``elman._engine``) runs the recurrences as one
BLAS product per step for the whole batch, with the compiled elementwise step
kernels, from batch ``BLAS_STEPS_MIN_BATCH`` and hidden ``BLAS_STEPS_MIN_HIDDEN``
on; below, as a compiled loop per sequence. These tests call both regimes
directly, ragged batches included, and check them against the twin.
"""

import numpy as np
import pytest

from elman import _engine, _gemm_path
from elman._layout import parameter_count


def regime_shapes():
    big_b = _engine.BLAS_STEPS_MIN_BATCH
    big_h = _engine.BLAS_STEPS_MIN_HIDDEN
    return [(big_b, big_h, True), (big_b - 1, big_h, False), (big_b, big_h - 1, False),
            (big_b + 3, big_h + 5, True)]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("activation", [0, 1], ids=["tanh", "relu"])
def test_recurrences_agree_in_each_regime(index, dtype, ragged, activation, compiled_kernels,
                                          twin_kernels, assert_close):
    batch, hidden, blas = regime_shapes()[index]
    compiled = _engine.recurrences(batch, hidden, compiled_kernels)
    assert (compiled.name == "blas steps") == blas
    steps = 6
    rng = np.random.default_rng(index)
    P = rng.normal(size=(steps, batch, hidden)).astype(dtype)  # time-major
    Whh = (rng.normal(size=(hidden, hidden)) / np.sqrt(hidden)).astype(dtype)
    h0 = rng.normal(size=(batch, hidden)).astype(dtype) * 0.5
    lengths = np.full(batch, steps, dtype=np.intp)
    if ragged:
        lengths = rng.integers(1, steps + 1, size=batch).astype(np.intp)
    dH = rng.normal(size=(steps, batch, hidden)).astype(dtype)
    results = []
    for recurrences in (compiled, _engine.recurrences(batch, hidden, twin_kernels)):
        Hs = np.empty_like(P)
        recurrences.forward(activation, P, Whh, h0, lengths, Hs)
        # Backward in two blocks, steps [2, 6) then [0, 2), carrying Whh^T da across.
        dA = np.empty_like(P)
        carry = np.zeros((batch, hidden), dtype=dtype)
        for start, stop in ((2, steps), (0, 2)):
            recurrences.backward(activation, dH[start:stop], Hs[start:stop], Whh, lengths,
                                 start, carry, dA[start:stop])
        results.append((Hs, dA))
    assert_close(results[0][0], results[1][0], dtype, what="hidden states")
    assert_close(results[0][1], results[1][1], dtype, what="dA")


@pytest.mark.parametrize("activation", [0, 1], ids=["tanh", "relu"])
def test_loss_and_grad_through_blas_recurrences(activation, compiled_kernels, twin_kernels,
                                                assert_close):
    """The whole gemm path with the compiled recurrences in their BLAS regime."""
    I, H, O, L, B, T = 3, _engine.BLAS_STEPS_MIN_HIDDEN, 2, 2, _engine.BLAS_STEPS_MIN_BATCH, 5
    rng = np.random.default_rng(1)
    theta = rng.uniform(-1, 1, parameter_count(I, H, O, L)) / np.sqrt(H)
    X = rng.normal(size=(B, T, I))
    Y = rng.normal(size=(B, T, O))
    h0 = rng.normal(size=(L, B, H)) * 0.1
    lengths = rng.integers(1, T + 1, size=B).astype(np.intp)
    grads, losses = [], []
    for kernels in (compiled_kernels, twin_kernels):
        grad = np.empty_like(theta)
        recurrences = _engine.recurrences(B, H, kernels)
        losses.append(_gemm_path.loss_and_grad(recurrences, theta, I, H, O, L, activation,
                                               True, X, Y, h0, lengths, grad))
        grads.append(grad)
    assert_close(losses[0], losses[1], "float64", what="loss")
    assert_close(grads[0], grads[1], "float64", what="gradient")
