"""One model on several threads: the same results, bit for bit, on any thread count.

The compiled fused loops cut a batch into chunks whose size depends on the batch
alone, and add the chunks' partial gradients in chunk order; the gemm route with
BLAS steps cuts a large batch into chunks that depend on the shape alone, each
computed whole with one-thread BLAS products, and adds them in chunk order; the
compiled per-sequence loops split sequences. So 1, 2 and 3 threads must give
identical bits, on every route, for forward passes, gradients and whole training
runs. These tests compare exact equality, and the thread count really changes
(checked first): a reduction that depended on the thread count would fail them.
"""

import threading

import numpy as np
import pytest

import elman
from elman import _backend, _blas_threads, _engine, _gemm_path, _threading

THREAD_COUNTS = (1, 2, 3)

# (hidden, batch) per route of the compiled backend; the batches are above the
# fused loops' split size, so that several chunks run.
ROUTE_SHAPES = {
    "fused": (16, 21),
    "gemm, blas steps": (64, 160),
    "gemm, blas steps in chunks": (256, 100),
    "gemm, compiled loops": (256, 9),
}
STEPS = 6


@pytest.fixture
def threaded_kernels(compiled_kernels):
    """The compiled module, skipped when it was built without OpenMP (it then runs
    every loop on one thread, and there is nothing to compare)."""
    if not compiled_kernels.OPENMP:
        pytest.skip("the compiled module was built without OpenMP")
    return compiled_kernels


def _data(rng, batch, steps, inputs, outputs, padded, many_to_many):
    X = rng.normal(size=(batch, steps, inputs))
    Y = rng.normal(size=(batch, steps, outputs) if many_to_many else (batch, outputs))
    lengths = None
    if padded:
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[0] = steps
    return X, Y, lengths


def _on_each_thread_count(fn):
    """fn() under each thread count, after checking that the count took effect."""
    results = []
    for n in THREAD_COUNTS:
        with elman.num_threads(n):
            assert elman.get_num_threads() == n
            results.append(fn())
    return results


def _assert_identical(results, what):
    first = results[0]
    for n, other in zip(THREAD_COUNTS[1:], results[1:]):
        for key in first:
            a, b = np.asarray(first[key]), np.asarray(other[key])
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a, b), (
                f"{what}: {key} differs between 1 and {n} threads, by up to "
                f"{np.max(np.abs(a - b))}")


@pytest.mark.parametrize("route", sorted(ROUTE_SHAPES))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("many_to_many", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_forward_and_gradients_do_not_depend_on_thread_count(threaded_kernels, route,
                                                             num_layers, padded,
                                                             many_to_many, nonlinearity):
    hidden, batch = ROUTE_SHAPES[route]
    chosen = _engine.route(batch, hidden, threaded_kernels)
    assert chosen.name == route.split(",")[0]
    if chosen.recurrences is not None:
        assert route.split(", ")[1].startswith(chosen.recurrences.name)
    rng = np.random.default_rng(7)
    steps = STEPS
    X, Y, lengths = _data(rng, batch, steps, 3, 2, padded, many_to_many)
    h0 = rng.normal(scale=0.5, size=(num_layers, batch, hidden))
    model = elman.RNN(3, hidden, 2, num_layers=num_layers, return_sequences=many_to_many,
                      nonlinearity=nonlinearity, seed=1)
    dY = rng.normal(size=Y.shape if many_to_many else (batch, 1, 2))

    def run():
        with elman.use_backend("cython"):
            Y_hat, h_last = model.forward(X, h0, lengths=lengths, return_state=True)
            loss, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
            vjp, dX, dh0 = model.backward(X, dY.reshape(Y_hat.shape), h0, lengths=lengths)
        return {"Y_hat": Y_hat, "h_last": h_last, "loss": loss, **dict(grads),
                "dX": dX, "dh0": dh0, **{f"backward {k}": v for k, v in vjp.items()}}

    _assert_identical(_on_each_thread_count(run), f"{route}, {num_layers} layer(s)")


@pytest.mark.parametrize("route", sorted(ROUTE_SHAPES))
@pytest.mark.parametrize("many_to_many", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("loss", ["mae", "huber", "cross_entropy", "gaussian_nll"])
def test_every_loss_does_not_depend_on_thread_count(threaded_kernels, route, many_to_many,
                                                    loss):
    hidden, batch = ROUTE_SHAPES[route]
    rng = np.random.default_rng(5)
    steps, outputs = STEPS, 4
    X, _, lengths = _data(rng, batch, steps, 3, outputs, True, many_to_many)
    shape = (batch, steps) if many_to_many else (batch,)
    if loss == "cross_entropy":
        Y = rng.integers(0, outputs, size=shape)
    elif loss == "gaussian_nll":
        Y = rng.normal(size=(*shape, outputs // 2))
    else:
        Y = rng.normal(size=(*shape, outputs))
    model = elman.RNN(3, hidden, outputs, return_sequences=many_to_many, loss=loss, seed=4)

    def run():
        with elman.use_backend("cython"):
            value, grads = model.loss_and_grad(X, Y, lengths=lengths)
        return {"loss": value, **dict(grads)}

    results = _on_each_thread_count(run)
    assert np.isfinite(results[0]["loss"]) and results[0]["loss"] > 0
    _assert_identical(results, f"{route}, loss {loss}")


@pytest.mark.parametrize("hidden, batch_size", [(16, 12), (64, 160), (256, 64)],
                         ids=["fused", "gemm", "gemm in chunks"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_does_not_depend_on_thread_count(threaded_kernels, hidden, batch_size,
                                             num_layers, dtype):
    rng = np.random.default_rng(3)
    X, Y, lengths = _data(rng, 2 * batch_size + 5, 5, 2, 1, True, True)

    def run():
        with elman.use_backend("cython"):
            model = elman.RNN(2, hidden, 1, num_layers=num_layers, dtype=dtype, seed=0)
            history = model.fit(X, Y, epochs=2, batch_size=batch_size, lengths=lengths,
                                seed=5, clip_norm=1.0)
        return {"loss": history.loss, **model.get_weights()}

    _assert_identical(_on_each_thread_count(run), f"fit, hidden {hidden}")


@pytest.mark.parametrize("hidden, batch", [(24, 40), (256, 64)],
                         ids=["fused", "gemm in chunks"])
def test_forecast_does_not_depend_on_thread_count(threaded_kernels, hidden, batch):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(batch, 8, 1))
    model = elman.RNN(1, hidden, 1, num_layers=2, seed=2)

    def run():
        with elman.use_backend("cython"):
            return {"forecast": model.forecast(X, steps=5)}

    _assert_identical(_on_each_thread_count(run), "forecast")


def test_chunking_constants_split_the_batches_tested(threaded_kernels):
    # The fused shapes above must really run several chunks (several partials): the
    # forward/gradient batch three (two full, one short), fit's batch two halves.
    chunking = threaded_kernels.CHUNKING
    assert ROUTE_SHAPES["fused"][1] > 2 * chunking["FUSED_CHUNK_SEQUENCES"]
    assert chunking["FUSED_SPLIT_MIN_BATCH"] <= 12 < 2 * chunking["FUSED_CHUNK_SEQUENCES"]
    # The gemm shapes "in chunks" (forward/gradients, fit's full batches, forecast)
    # must really be cut, the first unevenly; the plain gemm shape must not be.
    hidden, batch = ROUTE_SHAPES["gemm, blas steps in chunks"]
    assert _gemm_path.batch_chunks(batch, hidden, STEPS) == [(0, 48), (48, 100)]
    assert len(_gemm_path.batch_chunks(64, 256, 5)) == 2
    assert len(_gemm_path.batch_chunks(64, 256, 8 + 5)) == 2
    hidden, batch = ROUTE_SHAPES["gemm, blas steps"]
    assert len(_gemm_path.batch_chunks(batch, hidden, STEPS)) == 1


@pytest.fixture
def chunking_on():
    """Skips where the gemm route cannot cut batches here (one CPU, or a BLAS whose
    thread count elman cannot hold): the chunked cases would then test nothing."""
    if not _gemm_path._CHUNKING:
        pytest.skip("this process may use one CPU only: batches are not cut")
    if not _blas_threads.available():
        pytest.skip("no BLAS library whose thread count elman can hold was found")


def _chunked_model_and_data(rng, num_layers=1, many_to_many=True):
    hidden, batch = ROUTE_SHAPES["gemm, blas steps in chunks"]
    X, Y, lengths = _data(rng, batch, STEPS, 3, 2, True, many_to_many)
    model = elman.RNN(3, hidden, 2, num_layers=num_layers, return_sequences=many_to_many,
                      seed=3)
    return model, X, Y, lengths


def test_chunks_run_on_the_threads_asked_for_with_blas_on_one(threaded_kernels,
                                                              chunking_on, monkeypatch):
    model, X, Y, lengths = _chunked_model_and_data(np.random.default_rng(2))
    calls, blas_counts = [], []
    run_in_threads, forward = _gemm_path.run_in_threads, _gemm_path._forward

    def counting_run(tasks):
        calls.append(len(tasks))
        run_in_threads(tasks)

    def forward_seeing_blas(*args):
        blas_counts.append(_blas_threads.library().get())
        forward(*args)

    monkeypatch.setattr(_gemm_path, "run_in_threads", counting_run)
    monkeypatch.setattr(_gemm_path, "_forward", forward_seeing_blas)
    library = _blas_threads.library()
    before = library.get()
    with elman.use_backend("cython"):
        for threads in (1, 2, 3):
            with elman.num_threads(threads):
                model.forward(X, lengths=lengths)
                model.loss_and_grad(X, Y, lengths=lengths)
    # Two chunks: one group on one thread, two groups from two threads up.
    assert calls == [1, 1, 2, 2, 2, 2]
    assert blas_counts == [1, 1] * 3
    assert library.get() == before


def test_chunked_calls_agree_with_the_whole_batch_and_the_twin(threaded_kernels,
                                                              chunking_on, monkeypatch):
    rng = np.random.default_rng(9)
    model, X, Y, lengths = _chunked_model_and_data(rng, num_layers=2)
    dY = rng.normal(size=Y.shape)

    def run(backend):
        with elman.use_backend(backend), elman.num_threads(2):
            Y_hat, h_last = model.forward(X, lengths=lengths, return_state=True)
            loss, grads = model.loss_and_grad(X, Y, lengths=lengths)
            vjp, dX, dh0 = model.backward(X, dY, lengths=lengths)
        return {"Y_hat": Y_hat, "h_last": h_last, "loss": loss, "dX": dX, "dh0": dh0,
                **dict(grads), **{f"backward {k}": v for k, v in vjp.items()}}

    chunked, twin = run("cython"), run("numpy")
    monkeypatch.setattr(_gemm_path, "_chunks", lambda *args: None)
    whole = run("cython")
    for key in chunked:
        np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-10, atol=1e-12,
                                   err_msg=key)
        np.testing.assert_allclose(chunked[key], twin[key], rtol=1e-10, atol=1e-12,
                                   err_msg=key)


def test_a_chunk_error_reaches_the_caller_and_releases_blas(threaded_kernels, chunking_on,
                                                           monkeypatch):
    model, X, Y, lengths = _chunked_model_and_data(np.random.default_rng(4))
    library = _blas_threads.library()
    before = library.get()
    forward = _gemm_path._forward

    def failing_second_chunk(*args):
        if args[8].shape[0] != 48:  # X of the second chunk (52 sequences)
            raise RuntimeError("chunk failed")
        forward(*args)

    monkeypatch.setattr(_gemm_path, "_forward", failing_second_chunk)
    with elman.use_backend("cython"), elman.num_threads(2):
        with pytest.raises(RuntimeError, match="chunk failed"):
            model.forward(X, lengths=lengths)
    assert library.get() == before
    assert _blas_threads._HOLDERS == 0


def test_setting_is_accepted_on_both_backends(backend):
    kernels = _backend.get_kernels()
    before = elman.get_num_threads()
    with elman.num_threads(2):
        expected = 2 if getattr(kernels, "OPENMP", False) else 1
        assert elman.get_num_threads() == expected
        with elman.num_threads(1):
            assert elman.get_num_threads() == 1
        assert elman.get_num_threads() == expected
    assert elman.get_num_threads() == before
    elman.set_num_threads(1)
    try:
        assert elman.get_num_threads() == 1
    finally:
        elman.set_num_threads(None)
    assert elman.get_num_threads() == before


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError),
                                        (1.5, TypeError), ("2", TypeError),
                                        (True, TypeError)])
def test_bad_thread_counts_are_refused(bad, error):
    with pytest.raises(error, match=r"n must be a positive integer or None; got"):
        elman.set_num_threads(bad)
    with pytest.raises(error, match=r"n must be a positive integer or None; got"):
        with elman.num_threads(bad):
            pass


def test_numpy_integer_counts_are_accepted():
    with elman.num_threads(np.int64(1)):
        assert elman.get_num_threads() == 1


def test_a_worker_thread_can_run_its_model_on_one_thread(threaded_kernels):
    seen = {}

    def worker():
        with elman.use_backend("cython"), _threading.single_threaded_here():
            seen["worker"] = elman.get_num_threads()
        with elman.use_backend("cython"):
            seen["worker after"] = elman.get_num_threads()

    with elman.num_threads(2), elman.use_backend("cython"):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert elman.get_num_threads() == 2
    assert seen == {"worker": 1, "worker after": 2}


FORK_SCRIPT = """
import os, sys
import numpy as np
import elman
model = elman.RNN(3, 16, 2, seed=0)
rng = np.random.default_rng(0)
X, Y = rng.normal(size=(64, 20, 3)), rng.normal(size=(64, 20, 2))
# A gemm-route batch cut into chunks: the parent's chunk threads do not survive the
# fork either.
wide = elman.RNN(3, 256, 2, seed=0)
with elman.use_backend("cython"), elman.num_threads(2):
    parent = model.loss_and_grad(X, Y)[0]
    parent_wide = wide.loss_and_grad(X, Y)[0]
pid = os.fork()
if pid == 0:
    with elman.use_backend("cython"), elman.num_threads(2):
        threads = elman.get_num_threads()
        child = model.loss_and_grad(X, Y)[0]
        child_wide = wide.loss_and_grad(X, Y)[0]
    os._exit(0 if (threads, child, child_wide) == (1, parent, parent_wide) else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork here")
def test_a_forked_child_runs_on_one_thread_instead_of_hanging(threaded_kernels):
    # GNU OpenMP cannot start threads in a forked child of a process that used them:
    # without the one-thread rule the child's call hangs (the timeout fails it).
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", FORK_SCRIPT], timeout=120,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
