"""Calls every compiled kernel on random small shapes, for valgrind memcheck.

Run by .ci/memcheck.sh under valgrind; any invalid read or write, or use of an
uninitialised value, whose stack passes through elman's compiled module fails CI.
Shapes are small so the run stays short under valgrind (~50x slower than native).
"""
import numpy as np

import elman
from elman import _backend, _engine, _gemm_path

k = _backend.get_kernels("cython")
rng = np.random.default_rng(0)


def recurrences(B, T, H, dtype, lens, Whh, activation):
    """Both recurrences directly, time-major, backward in blocks of 2 steps."""
    P = rng.normal(size=(T, B, H)).astype(dtype)
    Hs = np.empty_like(P)
    k.recurrence_forward(activation, P, Whh, np.zeros((B, H), dtype), lens, Hs)
    dA = np.empty_like(P)
    carry = np.zeros((B, H), dtype)
    for stop in range(T, 0, -2):
        start = max(0, stop - 2)
        k.recurrence_backward(activation, P[start:stop], Hs[start:stop], Whh, lens, start,
                              carry, dA[start:stop])


for trial in range(30):
    # Hidden up to 20: the kernels' vector tiles (8 doubles, 16 floats wide) and
    # their scalar edges both run.
    I, O, L = (int(v) for v in rng.integers(1, 6, 3))
    H = int(rng.integers(1, 21))
    B, T = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    seq = bool(trial % 2)
    nonlinearity = "relu" if trial % 3 == 0 else "tanh"
    for dtype in (np.float32, np.float64):
        m = elman.RNN(I, H, O, num_layers=L, return_sequences=seq, seed=trial, dtype=dtype,
                      nonlinearity=nonlinearity)
        X = rng.normal(size=(B, T, I)); lens = rng.integers(1, T + 1, B)
        Y = rng.normal(size=(B, T, O)) if seq else rng.normal(size=(B, O))
        with elman.use_backend("cython"):
            m.forward(X, lengths=lens, return_state=True)
            m.loss_and_grad(X, Y, lengths=lens)
            m.backward(X, rng.normal(size=(B, T, O) if seq else (B, O)), lengths=lens)
            m.forecast(X, 3, feedback=[min(o, I - 1) if o < I else -1 for o in range(O)] if O != I else None,
                       future=rng.normal(size=(B, 2, I)))
            m.fit(X, Y, epochs=2, batch_size=3, lengths=lens, clip_norm=1.0, seed=1)
            m.fit(X, Y, epochs=1, batch_size=1, optimizer="momentum", lengths=lens, clip_value=1.0)
            Whh = np.ascontiguousarray(m.get_weights()["layers.0.Whh"])
            recurrences(B, T, H, dtype, lens.astype(np.intp), Whh, m._activation)

# The recurrences' BLAS-step regime (a matmul per step, then the compiled
# elementwise step kernels), as the route table runs it.
B, H, T = _engine.BLAS_STEPS_MIN_BATCH, _engine.BLAS_STEPS_MIN_HIDDEN, 3
for dtype, activation in ((np.float32, 0), (np.float64, 0), (np.float32, 1), (np.float64, 1)):
    Whh = (rng.normal(size=(H, H)) / np.sqrt(H)).astype(dtype)
    lens = rng.integers(1, T + 1, B).astype(np.intp)
    blas = _engine.recurrences(B, H, k)
    assert blas.name == "blas steps", blas.name
    P = rng.normal(size=(T, B, H)).astype(dtype)
    Hs = np.empty_like(P)
    blas.forward(activation, P, Whh, np.zeros((B, H), dtype), lens, Hs)
    dA = np.empty_like(P)
    blas.backward(activation, P, Hs, Whh, lens, 0, np.zeros((B, H), dtype), dA)
    # The gemm route's forecast steps the recurrence one step at a time.
    m = elman.RNN(2, H, 2, num_layers=2, seed=1, dtype=dtype)
    Y_out, h_last = np.empty((B, 3, 2), dtype), np.empty((2, B, H), dtype)
    _gemm_path.forecast(blas, m.parameters, 2, H, 2, 2, activation,
                        rng.normal(size=(B, T, 2)).astype(dtype),
                        np.zeros((2, B, H), dtype), np.arange(2, dtype=np.intp),
                        np.zeros((B, 2, 2), dtype), Y_out, h_last)

from elman._backend import instruction_set
print(f"memcheck: exercised every compiled kernel ({instruction_set()}) on 62 shapes")
