"""How many threads the compiled kernels use for one model.

The compiled kernels, when built with OpenMP, share the sequences of a batch among
threads: the fused loops in fixed chunks of sequences whose partial gradients are
added in a fixed order, the compiled per-sequence recurrences by sequence. The BLAS
route cuts a large batch into fixed chunks of sequences computed whole on Python
threads (:func:`run_in_threads`) with one-thread BLAS products (see
``elman._gemm_path`` and ``elman._blas_threads``), and adds their gradients in chunk
order. The results are bit-identical for every thread count (tests/test_threads.py
checks it), so the count is a matter of speed only.

The count, from the first that applies:

1. inside a worker of :func:`elman.fit_many`: one thread (its parallelism is
   across the models);
2. :func:`set_num_threads` / :func:`num_threads`, for the whole process;
3. OpenMP's default: ``OMP_NUM_THREADS`` if set, else the CPUs this process may
   run on; ``threadpoolctl.threadpool_limits(n, user_api="openmp")`` lowers it, as
   for scikit-learn's OpenMP loops.

In a child process made by ``fork`` (``multiprocessing``'s default start method on
Linux before Python 3.14) the count is 1, whatever is set: GNU OpenMP cannot start
threads again in a forked child of a process that used them, and a call would hang.
Processes started by ``spawn`` or ``forkserver`` (and joblib's loky workers) are
fresh and use threads as usual.

Where the BLAS route keeps a batch whole (too small to cut, a BLAS elman cannot
hold at one thread, or a process started with one thread by default), its
products use the BLAS library's own threads (OpenBLAS in NumPy's wheels), which
``OPENBLAS_NUM_THREADS`` or ``threadpoolctl.threadpool_limits(n, user_api="blas")``
control.

The NumPy twin accepts the same settings and runs its elementwise work on the
calling thread; only its BLAS products use threads.
"""

from __future__ import annotations

import contextlib
import operator
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Iterator, Sequence

# Kernel modules loaded so far: each compiled one keeps its own C copy of the
# requests (the baseline and the AVX2 build are separate shared objects).
_MODULES: list[object] = []
_PROCESS_REQUEST = 0          # 0: no request, OpenMP's default applies
_LOCK = threading.Lock()
_THIS_THREAD = threading.local()
_FORKED = False               # True in a child made by fork: one thread only
_POOL: ThreadPoolExecutor | None = None   # run_in_threads' workers, made when needed
_POOL_SIZE = 0


def register(kernels: object) -> None:
    """Give a newly loaded kernel module the current process-wide request."""
    with _LOCK:
        if kernels not in _MODULES:
            _MODULES.append(kernels)
        _apply(kernels, _PROCESS_REQUEST, -1)


def _apply(kernels: object, process: int, this_thread: int) -> None:
    setter = getattr(kernels, "set_thread_request", None)
    if setter is not None:
        setter(1 if _FORKED else process, this_thread)


def _after_fork_in_child() -> None:
    global _FORKED, _LOCK, _POOL, _POOL_SIZE
    _FORKED = True
    _LOCK = threading.Lock()  # the parent's may have been held by another thread
    _POOL, _POOL_SIZE = None, 0  # its threads did not survive the fork
    for kernels in _MODULES:
        _apply(kernels, 1, -1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_count(n: object, name: str) -> int:
    if isinstance(n, bool):
        value = None
    else:
        try:
            value = operator.index(n)  # type: ignore[arg-type]
        except TypeError:
            value = None
    if value is None:
        raise TypeError(f"{name} must be a positive integer or None; got "
                        f"{type(n).__name__} {n!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer or None; got {value}")
    return value


def set_num_threads(n: int | None) -> None:
    """Set how many threads the compiled kernels use for one model, process-wide.

    Parameters
    ----------
    n : int or None
        A positive number of threads; None goes back to the default (OpenMP's:
        ``OMP_NUM_THREADS``, else the CPUs available, lowered by threadpoolctl).

    Notes
    -----
    Results do not depend on the count: the batch is cut into fixed chunks whose
    gradients are added in a fixed order (the BLAS route's chunks are fixed when the
    process starts: ``OMP_NUM_THREADS=1`` then, or one CPU, keeps its batches whole). Without OpenMP in the compiled module
    (``elman.get_num_threads`` is then 1) and on the NumPy backend the setting is
    accepted and has no effect; in a child process made by fork the count stays
    1 (see ``elman._threading``). BLAS threads are the BLAS library's own (see
    threadpoolctl).
    """
    global _PROCESS_REQUEST
    value = 0 if n is None else _check_count(n, "n")
    with _LOCK:
        _PROCESS_REQUEST = value
        for kernels in _MODULES:
            _apply(kernels, value, -1)


def count_for(kernels: object) -> int:
    """The number of threads ``kernels`` would use now, in this thread: 1 for the
    NumPy twin and for a compiled module built without OpenMP."""
    counter = getattr(kernels, "max_threads", None)
    return 1 if counter is None else int(counter())


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Run the enclosed block with ``n`` threads per model, then restore the
    previous setting (process-wide, like threadpoolctl's limits).

    Parameters
    ----------
    n : int or None
        As for :func:`set_num_threads`.
    """
    value = 0 if n is None else _check_count(n, "n")
    previous = _PROCESS_REQUEST
    set_num_threads(value or None)
    try:
        yield
    finally:
        set_num_threads(previous or None)


@contextlib.contextmanager
def single_threaded_here() -> Iterator[None]:
    """Run the enclosed block's kernels on the calling thread only (other threads
    keep their setting): for workers that already run one model per core."""
    previous = getattr(_THIS_THREAD, "request", 0)
    _THIS_THREAD.request = 1
    _set_this_thread(1)
    try:
        yield
    finally:
        _THIS_THREAD.request = previous
        _set_this_thread(previous)


def _set_this_thread(value: int) -> None:
    with _LOCK:
        modules = list(_MODULES)
    for kernels in modules:
        _apply(kernels, -1, value)


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    with _LOCK:
        if _POOL is None or _POOL_SIZE < workers:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="elman")
            _POOL_SIZE = workers
        return _POOL


def run_in_threads(tasks: Sequence[Callable[[], None]]) -> None:
    """Run the callables of ``tasks`` at once: the first on the calling thread, each
    other one on a worker thread of a pool kept for the process. Returns when all are
    done; an exception of the first task, or else of the first failing worker task,
    is raised then.

    For work that releases the GIL (BLAS products, compiled loops): the tasks of a
    call may share a worker when other calls use the pool at the same time, so a
    task must never wait for another.
    """
    if len(tasks) == 1:
        tasks[0]()
        return
    futures = [_pool(len(tasks) - 1).submit(task) for task in tasks[1:]]
    try:
        tasks[0]()
    finally:
        wait(futures)
    for future in futures:
        future.result()
