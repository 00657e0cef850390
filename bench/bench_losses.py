"""What each loss costs in a training step, against mean squared error.

    python bench/bench_losses.py [--quick] [--rounds N] [--shapes "I,H,T,B;..."]

For every loss (``mse``, ``mae``, ``huber``, ``cross_entropy``, ``gaussian_nll``) and
shape (input, hidden, time, batch) it times one training step as ``fit`` runs it:
a whole epoch of ``model.fit`` (SGD, clipping by value 5.0) divided by its steps, on
the compiled backend (one ``train_steps`` call per chunk of steps: the loss is
computed by the compiled per-row loss of the fused loops, or by ``_gemm_path`` for
large batches). Every model has 4 outputs, so the head costs the same for every
loss (cross_entropy: 4 classes; gaussian_nll: 2 means and 2 log-variances). The
cases run interleaved in one process (see ``_common``); the table gives medians
and each loss's ratio to mse (>1: slower than mse).
"""

import argparse
import sys

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

import elman  # noqa: E402
from elman._losses import LOSSES  # noqa: E402
from _common import (add_clock_argument, apply_clock_argument, format_seconds,  # noqa: E402
                     machine_line, print_table, time_interleaved)

SHAPES = [(1, 50, 10, 1), (3, 4, 7, 1), (8, 64, 50, 32)]
OUTPUTS = 4
FIT_SEQUENCES = 128


def targets(loss, rng, n, steps):
    """Targets of ``loss`` for n sequences of ``steps`` steps (many-to-many)."""
    if loss == "cross_entropy":
        return rng.integers(0, OUTPUTS, size=(n, steps))
    width = OUTPUTS // 2 if loss == "gaussian_nll" else OUTPUTS
    return rng.normal(size=(n, steps, width))


def make_case(loss, shape):
    I, H, T, B = shape
    rng = np.random.default_rng(0)
    n = max(FIT_SEQUENCES, 4 * B)
    X = rng.normal(size=(n, T, I))
    Y = targets(loss, rng, n, T)
    model = elman.RNN(I, H, OUTPUTS, seed=0, loss=loss)
    steps = -(-n // B)

    def run(repeats):
        for _ in range(repeats):
            model.fit(X, Y, epochs=1, batch_size=B, optimizer="sgd", lr=1e-4,
                      clip_value=5.0, shuffle=False)

    return run, steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--shapes", default=None, help='e.g. "1,50,10,1;3,4,7,1"')
    add_clock_argument(parser)
    args = parser.parse_args(argv)
    apply_clock_argument(args)
    shapes = SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";")]
    rounds = args.rounds or (1 if args.quick else 7)
    target = 0 if args.quick else 0.05
    if not elman.compiled_available():
        sys.exit("bench_losses times the compiled kernels; build them first")
    print(machine_line())
    rows = []
    with elman.use_backend("cython"):
        for shape in shapes:
            cases = {loss: make_case(loss, shape) for loss in LOSSES}
            times = time_interleaved(cases, rounds, target)
            for loss, seconds in times.items():
                rows.append((str(shape), loss, format_seconds(seconds),
                             f"{seconds / times['mse']:.2f}x"))
    print(f"\n## training step by loss: medians of {rounds} interleaved rounds; "
          f"ratio = time / mse time")
    print_table(["(I, H, T, B)", "loss", "step", "vs mse"], rows)


if __name__ == "__main__":
    main()
