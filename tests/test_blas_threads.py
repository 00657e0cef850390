"""Holding the BLAS library at one thread, sharing tasks out on threads, and the
chunks the gemm route cuts a large batch into."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from elman import _blas_threads, _gemm_path, _threading
from elman._losses import LOSSES, value_and_gradient


@pytest.fixture
def blas():
    library = _blas_threads.library()
    if library is None:
        pytest.skip("no BLAS library whose thread count elman can set was found")
    return library


def test_numpy_s_openblas_is_found_on_linux_wheels():
    # NumPy's Linux wheels bundle OpenBLAS; where NumPy uses it, elman must find it.
    info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    if sys.platform != "linux" or "openblas" not in str(info.get("name", "")).lower():
        pytest.skip("NumPy here is not built with OpenBLAS on Linux")
    assert _blas_threads.available()
    assert "openblas" in os.path.basename(_blas_threads.library().path).lower()


def test_a_hold_sets_one_thread_and_restores_the_count(blas):
    before = blas.get()
    blas.set(2)
    try:
        with _blas_threads.one_blas_thread():
            assert blas.get() == 1
            with _blas_threads.one_blas_thread():
                assert blas.get() == 1
            assert blas.get() == 1  # the inner hold leaves the outer one in force
        assert blas.get() == 2
    finally:
        blas.set(before)
    assert _blas_threads._HOLDERS == 0


def test_the_last_of_several_threads_to_leave_restores_the_count(blas):
    before = blas.get()
    blas.set(2)
    entered, release_first, first_left = (threading.Event() for _ in range(3))
    seen = {}

    def first():
        with _blas_threads.one_blas_thread():
            entered.set()
            release_first.wait(10)
        first_left.set()

    thread = threading.Thread(target=first)
    try:
        thread.start()
        assert entered.wait(10)
        with _blas_threads.one_blas_thread():
            release_first.set()
            assert first_left.wait(10)
            seen["after the first left"] = blas.get()
        seen["after both left"] = blas.get()
    finally:
        release_first.set()
        thread.join(10)
        blas.set(before)
    assert seen == {"after the first left": 1, "after both left": 2}


def test_an_error_inside_a_hold_still_restores_the_count(blas):
    before = blas.get()
    blas.set(2)
    try:
        with pytest.raises(ZeroDivisionError):
            with _blas_threads.one_blas_thread():
                1 / 0
        assert blas.get() == 2
    finally:
        blas.set(before)


def test_the_control_can_be_turned_off_from_the_environment():
    script = ("from elman import _blas_threads, _engine, _gemm_path\n"
              "import numpy as np, elman\n"
              "assert not _blas_threads.available()\n"
              "m = elman.RNN(3, 256, 1, seed=0)\n"
              "X = np.random.default_rng(0).normal(size=(64, 6, 3))\n"
              "assert _gemm_path._chunks(_engine.route(64, 256).recurrences or\n"
              "    _gemm_path.Recurrences('x', None, None, lambda: 2), 64, 256, 6) is None\n"
              "print(m.forward(X).shape)\n")
    env = dict(os.environ, ELMAN_BLAS_THREAD_CONTROL="0")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(64, 6, 1)"


def test_run_in_threads_runs_every_task_the_first_here():
    here = threading.get_ident()
    seen = {}
    barrier = threading.Barrier(3, timeout=10)

    def task(i):
        def run():
            seen[i] = threading.get_ident()
            barrier.wait()  # all three at once, or this times out
        return run

    _threading.run_in_threads([task(i) for i in range(3)])
    assert sorted(seen) == [0, 1, 2]
    assert seen[0] == here and seen[1] != here and seen[2] != here


def test_run_in_threads_raises_a_worker_s_error_after_all_finish():
    finished = []

    def fine():
        finished.append("fine")

    def failing():
        raise ValueError("worker failed")

    with pytest.raises(ValueError, match="worker failed"):
        _threading.run_in_threads([fine, failing, fine])
    assert finished == ["fine", "fine"]


@pytest.mark.parametrize("hidden", [32, 64, 100, 128, 256, 300, 512])
@pytest.mark.parametrize("steps", [1, 5, 100])
def test_batch_chunks_cover_the_batch_in_even_power_of_two_runs(hidden, steps):
    for batch in list(range(1, 300)) + [511, 512, 1000, 4096, 10000]:
        chunks = _gemm_path.batch_chunks(batch, hidden, steps)
        assert chunks[0][0] == 0 and chunks[-1][1] == batch
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
        if len(chunks) == 1:
            continue
        count = len(chunks)
        assert count & (count - 1) == 0  # a power of two
        sizes = [stop - start for start, stop in chunks]
        assert all(start % 8 == 0 for start, _ in chunks)
        assert max(sizes) - min(sizes) < 16
        assert (min(sizes) + 8) * hidden * hidden >= _gemm_path._CHUNK_MIN_STEP_WORK
        assert min(sizes) >= _gemm_path._CHUNK_MIN_ROWS
        assert steps * batch * hidden * hidden >= _gemm_path._CHUNK_MIN_WORK


def test_batch_chunks_of_the_usual_shapes():
    assert _gemm_path.batch_chunks(64, 256, 100) == [(0, 32), (32, 64)]
    assert _gemm_path.batch_chunks(256, 256, 100) == [(0, 64), (64, 128), (128, 192),
                                                      (192, 256)]
    assert _gemm_path.batch_chunks(32, 256, 100) == [(0, 32)]      # too few sequences
    assert _gemm_path.batch_chunks(200, 128, 100) == [(0, 200)]    # steps too small
    assert _gemm_path.batch_chunks(256, 128, 100) == [(0, 128), (128, 256)]


@pytest.mark.parametrize("loss", LOSSES)
def test_chunk_shares_of_a_loss_add_up_to_the_batch_s(loss):
    rng = np.random.default_rng(1)
    outputs = rng.normal(size=(7, 10, 4))
    width = {"cross_entropy": 1, "gaussian_nll": 2}.get(loss, 4)
    if loss == "cross_entropy":
        targets = rng.integers(0, 4, size=(7, 10, 1)).astype(float)
    else:
        targets = rng.normal(size=(7, 10, width))
    valid = rng.random(size=(7, 10, 1)) < 0.7
    code = LOSSES.index(loss)
    whole, gradient = value_and_gradient(code, outputs, targets, valid)
    rows = int(np.count_nonzero(valid))
    total, parts = 0.0, []
    for a, b in [(0, 4), (4, 10)]:
        value, part = value_and_gradient(code, outputs[:, a:b], targets[:, a:b],
                                         valid[:, a:b], rows)
        total += value
        parts.append(part)
    assert total == pytest.approx(whole, rel=1e-13)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), gradient, rtol=1e-13)


def test_an_openblas_threaded_by_openmp_is_left_alone(monkeypatch, blas):
    # Such a build takes its thread count from OpenMP, per thread: elman must not
    # rely on its setter, and keeps batches whole instead.
    class Library:
        def __init__(self, parallel):
            self.scipy_openblas_set_num_threads64_ = lambda n: None
            self.scipy_openblas_get_num_threads64_ = lambda: 2
            self.scipy_openblas_get_parallel64_ = lambda: parallel

    for parallel, usable in [(2, False), (1, True), (0, True)]:
        monkeypatch.setattr(_blas_threads.ctypes, "CDLL", lambda path, p=parallel: Library(p))
        assert (_blas_threads._open("libscipy_openblas64_.so") is not None) == usable
