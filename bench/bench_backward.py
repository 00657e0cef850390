"""``RNN.backward`` beside ``RNN.loss_and_grad``: what the vector-Jacobian product costs.

    python bench/bench_backward.py [--quick] [--rounds N] [--time SECONDS]

Public calls, float64, one thread, at (I, H, T, B) = (1, 50, 10, 1) (the shape a
from-scratch tutorial trains at), (3, 4, 7, 1), and (4, 64, 20, 32), a batch; for
each nonlinearity. Both calls run the same compiled backward pass; ``backward``
also checks dY, writes dX and dh0 and recomputes nothing more, while
``loss_and_grad`` computes the loss's dY inside the kernel. Ratio: backward /
loss_and_grad (the target is at most 1.5 at (1, 50, 10, 1)). Cases run
interleaved, medians of rounds (see ``_common``), on the active backend
(``ELMAN_BACKEND``).
"""

import argparse

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

import elman  # noqa: E402
from _common import (add_clock_argument, apply_clock_argument, format_seconds,  # noqa: E402
                     machine_line, print_table, time_interleaved)

SHAPES = [(1, 50, 10, 1), (3, 4, 7, 1), (4, 64, 20, 32)]  # (I, H, T, B)
OUTPUT = 1


def cases_for(shape, nonlinearity):
    """(loss_and_grad runner, backward runner) for one shape."""
    I, H, T, B = shape
    rng = np.random.default_rng(0)
    X = rng.normal(size=(B, T, I))
    Y = rng.normal(size=(B, T, OUTPUT))
    model = elman.RNN(I, H, OUTPUT, nonlinearity=nonlinearity, seed=0)
    dY = 2 * (model.forward(X) - Y) / Y.size

    def loss_and_grad(n):
        for _ in range(n):
            model.loss_and_grad(X, Y)

    def backward(n):
        for _ in range(n):
            model.backward(X, dY)

    return loss_and_grad, backward


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, short times")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--time", type=float, default=None,
                        help="seconds per case per round (default 0.2, --quick 0.05)")
    parser.add_argument("--threads", type=int, default=1)
    add_clock_argument(parser)
    args = parser.parse_args(argv)
    clock = apply_clock_argument(args)
    rounds = args.rounds or (3 if args.quick else 9)
    seconds = args.time if args.time is not None else (0.05 if args.quick else 0.2)

    cases = {}
    for shape in SHAPES:
        for nonlinearity in ("tanh", "relu"):
            loss_and_grad, backward = cases_for(shape, nonlinearity)
            cases[(shape, nonlinearity, "loss_and_grad")] = (loss_and_grad, 1)
            cases[(shape, nonlinearity, "backward")] = (backward, 1)
    times = time_interleaved(cases, rounds, seconds)

    print(f"# bench_backward: backend {elman.BACKEND}, float64, {clock} clock, "
          f"{rounds} rounds, medians")
    print(f"# {machine_line()}")
    rows = []
    for shape in SHAPES:
        for nonlinearity in ("tanh", "relu"):
            lag = times[(shape, nonlinearity, "loss_and_grad")]
            back = times[(shape, nonlinearity, "backward")]
            rows.append(("(" + ", ".join(map(str, shape)) + ")", nonlinearity,
                         format_seconds(lag), format_seconds(back), f"{back / lag:.2f}"))
    print_table(["(I, H, T, B)", "nonlinearity", "loss_and_grad", "backward",
                 "backward / loss_and_grad"], rows)


if __name__ == "__main__":
    main()
