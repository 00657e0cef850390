"""Two models trained in two threads: do the compiled kernels use both cores?

    python bench/bench_threads.py [--hidden 50] [--epochs 3] [--repeats 3]

The compiled ``train_steps`` runs without the GIL, so two ``fit`` calls on two
models in two threads should take about as long as one, given two free cores. This
times (wall clock) the two fits one after the other and then concurrently, and
prints the speed-up (2.0 is perfect scaling). BLAS is pinned to one thread so that
only the two Python threads compete for the cores. On a shared machine the result
depends on what else is running; the script prints the load average with it.
"""

import argparse
import os
import statistics
import sys
import threading
import time

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

import elman  # noqa: E402
from _common import machine_line  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sequences", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.sequences, args.steps, 1))
    Y = rng.normal(size=(args.sequences, args.steps, 1))
    models = [elman.RNN(1, args.hidden, 1, seed=s) for s in range(2)]

    def train(model):
        model.fit(X, Y, epochs=args.epochs, batch_size=1, optimizer="sgd", lr=1e-3,
                  clip_value=5.0, seed=0)

    train(models[0])  # warm up
    serial, parallel = [], []
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
    print(f"# bench_threads: two models (1, {args.hidden}, 1), fit batch_size=1, "
          f"{args.epochs} epochs x {args.sequences} sequences of {args.steps} steps each; "
          f"backend {elman.BACKEND}")
    print(f"# {machine_line()}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"one after the other: {s:.3f} s   two threads: {p:.3f} s   speed-up {s / p:.2f}x "
          f"(medians of {args.repeats}, wall clock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
