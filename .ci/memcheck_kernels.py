"""Calls every compiled kernel on random small shapes, for valgrind memcheck.

Run by .ci/memcheck.sh under valgrind; any invalid read or write, or use of an
uninitialised value, whose stack passes through elman's compiled module fails CI.
Shapes are small so the run stays short under valgrind (~50x slower than native).
"""
import numpy as np

import elman
from elman import _backend

k = _backend.get_kernels("cython")
rng = np.random.default_rng(0)
for trial in range(30):
    I, H, O, L = (int(v) for v in rng.integers(1, 6, 4))
    B, T = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    seq = bool(trial % 2)
    for dtype in (np.float32, np.float64):
        m = elman.RNN(I, H, O, num_layers=L, return_sequences=seq, seed=trial, dtype=dtype)
        X = rng.normal(size=(B, T, I)); lens = rng.integers(1, T + 1, B)
        Y = rng.normal(size=(B, T, O)) if seq else rng.normal(size=(B, O))
        with elman.use_backend("cython"):
            m.forward(X, lengths=lens, return_state=True)
            m.loss_and_grad(X, Y, lengths=lens)
            m.forecast(X, 3, feedback=[min(o, I - 1) if o < I else -1 for o in range(O)] if O != I else None,
                       future=rng.normal(size=(B, 2, I)))
            m.fit(X, Y, epochs=2, batch_size=3, lengths=lens, clip_norm=1.0, seed=1)
            m.fit(X, Y, epochs=1, batch_size=1, optimizer="momentum", lengths=lens, clip_value=1.0)
            th = m._theta
            P = rng.normal(size=(B, T, H)).astype(dtype); Hs = np.empty_like(P)
            k.recurrence_forward(P, np.ascontiguousarray(m.get_weights()["layers.0.Whh"]), np.zeros((B, H), dtype), lens.astype(np.intp), Hs)
            dA = np.empty_like(P)
            k.recurrence_backward(P, Hs, np.ascontiguousarray(m.get_weights()["layers.0.Whh"]), lens.astype(np.intp), dA)
from elman._backend import instruction_set
print(f"memcheck: exercised every compiled kernel ({instruction_set()}) on 60 shapes")
