"""Threads and elman: one model on two threads, and two models on two threads.

    python bench/bench_threads.py [--rounds 15] [--target 0.3]
    python bench/bench_threads.py --chunk-cost [--rounds 15]
    python bench/bench_threads.py --two-models [--hidden 50] [--epochs 3] [--repeats 3]

Default: one model, a training step (``model.fit`` with ``batch_size`` = B, SGD,
clipping by value, as ``bench_suite.py`` times a step) at (I, H, T, B) =
(8, 64, 50, 32) and (32, 256, 100, 64), on 1 thread and on 2 (elman's threads,
``elman.num_threads``, and BLAS's, ``threadpoolctl``, set together), timed
interleaved: each round times 1 thread, then 2, so that both see the same load;
the minimum over rounds is kept (wall clock). It prints the speed-up and the
step's rate as a fraction of the GEMM rate on the same threads (NumPy's 1024 x 1024
matmul, timed in the same rounds, with the flops ``bench_suite.py`` counts:
6 (I H + H^2 + H O) per sequence step). Where the gemm route cuts the batch into
chunks it also times the step on one thread with the batch whole (no chunks, as a
process started with ``OMP_NUM_THREADS=1`` runs it) and the two-thread speed-up
over that.

``--chunk-cost``: what cutting a batch into chunks (so that the chunks can run on
threads with results independent of the thread count) costs on one thread: the
fused loss and gradient at small shapes, chunked as the kernels do against one
chunk, and the gemm route's at large shapes, cut as ``elman._gemm_path`` does
against whole; interleaved, minimum over rounds of process CPU time (one thread,
so a loaded machine's waits do not count).

``--two-models``: two ``fit`` calls on two models, one after the other and then
in two Python threads (each model on one thread).

On a shared machine the 2-thread times depend on what else runs: the script
prints the load average before and after.
"""

import argparse
import os
import statistics
import sys
import threading
import time

from _common import pin_threads

pin_threads(default=1)
# elman's default thread count is left to the CPUs, not pinned to one: a process
# started with OMP_NUM_THREADS=1 runs the large-batch route whole, never in chunks
# (elman._gemm_path), and the one-model cases set their threads themselves.
os.environ.pop("OMP_NUM_THREADS", None)

import numpy as np  # noqa: E402

import elman  # noqa: E402
from _common import machine_line  # noqa: E402
from elman import _backend, _engine, _gemm_path  # noqa: E402
from elman._losses import LOSSES  # noqa: E402

SHAPES = [(8, 64, 50, 32), (32, 256, 100, 64)]
OUTPUT = 1
CLIP = 5.0
LR = 1e-3


def step_flops(I, H, T, B, O=OUTPUT):
    return 6.0 * B * T * (I * H + H * H + H * O)


def _blas_limits(threads):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        sys.exit("bench_threads needs threadpoolctl (pip install threadpoolctl) to set "
                 "the BLAS threads at run time")
    return threadpool_limits(threads, user_api="blas")


def _load_line():
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def _minimum_interleaved(cases, rounds, clock=time.perf_counter):
    """Minimum seconds per unit of each case over interleaved rounds; cases maps a
    name to (run, units, threads), run(n) doing the work n times."""
    reps = {}
    for name, (run, units, threads) in cases.items():
        with _blas_limits(threads), elman.num_threads(threads):
            run(1)  # warm up
            started = time.perf_counter()
            run(1)
            once = time.perf_counter() - started
        reps[name] = max(1, int(ARGS.target / max(once, 1e-9)))
    best = {name: float("inf") for name in cases}
    for _ in range(rounds):
        for name, (run, units, threads) in cases.items():
            with _blas_limits(threads), elman.num_threads(threads):
                started = clock()
                run(reps[name])
                elapsed = clock() - started
            best[name] = min(best[name], elapsed / (reps[name] * units))
    return best


def one_model(rounds):
    print(f"# bench_threads: one model, training step (fit, batch_size = B, SGD, "
          f"clip_value {CLIP}) on 1 and 2 threads; backend {elman.BACKEND}, "
          f"OpenMP {getattr(_backend.get_kernels(), 'OPENMP', False)}")
    print(f"# {machine_line()}; {_load_line()} before")
    print(f"# minimum of {rounds} interleaved rounds, wall clock")
    n = 1024
    A = np.random.default_rng(0).normal(size=(n, n))
    Bm = np.random.default_rng(1).normal(size=(n, n))
    out = np.empty((n, n))

    def gemm(reps):
        for _ in range(reps):
            np.matmul(A, Bm, out=out)

    cases = {("gemm", t): (gemm, 1, t) for t in (1, 2)}
    for shape in SHAPES:
        I, H, T, B = shape
        steps = max(2, int(2e8 // step_flops(*shape)))
        rng = np.random.default_rng(0)
        X = rng.normal(size=(B * steps, T, I))
        Y = rng.normal(size=(B * steps, T, OUTPUT))
        model = elman.RNN(I, H, OUTPUT, seed=0)
        opt = elman.optimizers.SGD(lr=LR)

        def step(reps, model=model, X=X, Y=Y, B=B, opt=opt):
            for _ in range(reps):
                model.fit(X, Y, epochs=1, batch_size=B, optimizer=opt, clip_value=CLIP,
                          shuffle=False)

        for t in (1, 2):
            cases[(shape, t)] = (step, steps, t)
        if _chunked(B, H, T):
            cases[(shape, "whole")] = (_whole_batch(step), steps, 1)
    best = _minimum_interleaved(cases, rounds)
    gemm_rate = {t: 2.0 * n ** 3 / best[("gemm", t)] for t in (1, 2)}
    print(f"GEMM rate (NumPy {n}x{n} matmul, float64): 1 thread "
          f"{gemm_rate[1] / 1e9:.1f} GFLOP/s, 2 threads {gemm_rate[2] / 1e9:.1f} GFLOP/s "
          f"({gemm_rate[2] / gemm_rate[1]:.2f}x)")
    print("| (I,H,T,B) | route | 1 thread | 2 threads | speed-up | 1 thread % GEMM(1) "
          "| 2 threads % GEMM(2) | 1 thread, batch whole | speed-up over it |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        I, H, T, B = shape
        route = _engine.route(B, H)
        name = route.name + ("" if route.recurrences is None
                             else f", {route.recurrences.name}")
        if _chunked(B, H, T):
            name += f", {len(_gemm_path.batch_chunks(B, H, T))} chunks"
        one, two = best[(shape, 1)], best[(shape, 2)]
        flops = step_flops(*shape)
        whole = best.get((shape, "whole"))
        whole_cells = ("- | -" if whole is None
                       else f"{whole * 1e3:.3f} ms | {whole / two:.2f}x")
        print(f"| {shape} | {name} | {one * 1e3:.3f} ms | {two * 1e3:.3f} ms | "
              f"{one / two:.2f}x | {100 * flops / one / gemm_rate[1]:.0f}% | "
              f"{100 * flops / two / gemm_rate[2]:.0f}% | {whole_cells} |")
    print("# 1 thread, batch whole: the gemm route on one thread without chunks, as a "
          "process started with OMP_NUM_THREADS=1 runs it")
    print(f"# {_load_line()} after")


def _chunked(batch, hidden, steps):
    """True when the route cuts this batch into chunks in this process."""
    route = _engine.route(batch, hidden)
    return (route.recurrences is not None
            and _gemm_path._chunks(route.recurrences, batch, hidden, steps) is not None)


def _whole_batch(run):
    """run, with the gemm route's batches kept whole (no chunks)."""
    def whole(reps):
        chunks = _gemm_path._chunks
        _gemm_path._chunks = lambda *args: None
        try:
            run(reps)
        finally:
            _gemm_path._chunks = chunks
    return whole


def chunk_cost(rounds):
    kernels = _backend.get_kernels()
    if not hasattr(kernels, "_set_fused_chunking"):
        sys.exit("--chunk-cost needs the compiled backend")
    split, chunk = kernels.CHUNKING["FUSED_SPLIT_MIN_BATCH"], kernels.CHUNKING[
        "FUSED_CHUNK_SEQUENCES"]
    TANH = kernels.ACTIVATION_CODES["tanh"]
    MSE = LOSSES.index("mse")
    print(f"# bench_threads --chunk-cost: fused loss_and_grad on one thread, chunked as "
          f"the kernels do (two halves from batch {split}, chunks of {chunk} from batch "
          f"{2 * chunk}) against one chunk; backend {elman.BACKEND}")
    print(f"# {machine_line()}; {_load_line()} before")
    print(f"# minimum of {rounds} interleaved rounds, process CPU time (one thread)")
    print("| (I,H,T,B) | one chunk | chunked | chunked / one |")
    print("|---|---|---|---|")
    for shape in [(3, 4, 7, 8), (1, 16, 10, 8), (1, 50, 10, 8), (3, 4, 7, 16),
                  (1, 50, 10, 16), (8, 64, 50, 8), (8, 64, 50, 32), (1, 128, 20, 16),
                  (1, 32, 20, 64)]:
        I, H, T, B = shape
        rng = np.random.default_rng(0)
        P = H * I + H * H + H + OUTPUT * H + OUTPUT
        theta = rng.normal(scale=0.2, size=P)
        X = rng.normal(size=(B, T, I))
        Y = rng.normal(size=(B, T, OUTPUT))
        h0 = np.zeros((1, B, H))
        lengths = np.full(B, T, dtype=np.intp)
        grad = np.empty(P)

        def run(reps, one_chunk, theta=theta, X=X, Y=Y, h0=h0, lengths=lengths, grad=grad,
                I=I, H=H):
            previous = kernels._set_fused_chunking(10 ** 9 if one_chunk else split, chunk)
            try:
                for _ in range(reps):
                    kernels.loss_and_grad(theta, I, H, OUTPUT, 1, TANH, True, MSE, X, Y,
                                          h0, lengths, grad)
            finally:
                kernels._set_fused_chunking(*previous)

        cases = {name: ((lambda reps, one=one, run=run: run(reps, one)), 1, 1)
                 for name, one in (("one", True), ("chunked", False))}
        best = _minimum_interleaved(cases, rounds, clock=time.process_time)
        print(f"| {shape} | {best['one'] * 1e6:.2f} us | {best['chunked'] * 1e6:.2f} us | "
              f"{best['chunked'] / best['one']:.3f} |")
    print()
    print("# the gemm route's loss_and_grad on one thread: the batch whole against cut "
          "into chunks (elman._gemm_path.batch_chunks)")
    print("| (I,H,T,B) | chunks | whole | chunked | chunked / whole |")
    print("|---|---|---|---|---|")
    for shape in [(32, 256, 100, 64), (32, 256, 100, 128), (8, 128, 50, 256),
                  (8, 512, 50, 64)]:
        I, H, T, B = shape
        if not _chunked(B, H, T):
            print(f"| {shape} | not cut in this process | - | - | - |")
            continue
        rng = np.random.default_rng(0)
        X = rng.normal(size=(B, T, I))
        Y = rng.normal(size=(B, T, OUTPUT))
        model = elman.RNN(I, H, OUTPUT, seed=0)

        def run(reps, model=model, X=X, Y=Y):
            for _ in range(reps):
                model.loss_and_grad(X, Y)

        cases = {"whole": (_whole_batch(run), 1, 1), "chunked": (run, 1, 1)}
        best = _minimum_interleaved(cases, rounds, clock=time.process_time)
        print(f"| {shape} | {len(_gemm_path.batch_chunks(B, H, T))} | "
              f"{best['whole'] * 1e3:.2f} ms | {best['chunked'] * 1e3:.2f} ms | "
              f"{best['chunked'] / best['whole']:.3f} |")
    print(f"# {_load_line()} after")


def two_models(args):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.sequences, args.steps, 1))
    Y = rng.normal(size=(args.sequences, args.steps, 1))
    models = [elman.RNN(1, args.hidden, 1, seed=s) for s in range(2)]

    def train(model):
        model.fit(X, Y, epochs=args.epochs, batch_size=1, optimizer="sgd", lr=1e-3,
                  clip_value=5.0, seed=0)

    train(models[0])  # warm up
    serial, parallel = [], []
    with elman.num_threads(1):
        for _ in range(args.repeats):
            started = time.perf_counter()
            for model in models:
                train(model)
            serial.append(time.perf_counter() - started)
            threads = [threading.Thread(target=train, args=(m,)) for m in models]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            parallel.append(time.perf_counter() - started)
    s, p = statistics.median(serial), statistics.median(parallel)
    print(f"# bench_threads --two-models: two models (1, {args.hidden}, 1), fit "
          f"batch_size=1, {args.epochs} epochs x {args.sequences} sequences of "
          f"{args.steps} steps each, one thread per model; backend {elman.BACKEND}")
    print(f"# {machine_line()}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"one after the other: {s:.3f} s   two threads: {p:.3f} s   speed-up {s / p:.2f}x "
          f"(medians of {args.repeats}, wall clock)")


def main(argv=None):
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--two-models", action="store_true",
                        help="two models in two Python threads instead")
    parser.add_argument("--chunk-cost", action="store_true",
                        help="the one-thread cost of chunking the fused loops instead")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--target", type=float, default=0.3,
                        help="seconds per case per round (default 0.3)")
    parser.add_argument("--hidden", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sequences", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads at start (the one-model cases set their own)")
    ARGS = parser.parse_args(argv)
    if ARGS.two_models:
        two_models(ARGS)
    elif ARGS.chunk_cost:
        chunk_cost(ARGS.rounds)
    else:
        one_model(ARGS.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
