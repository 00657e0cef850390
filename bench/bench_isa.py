"""The compiled builds side by side: portable baseline against AVX2+FMA.

    python bench/bench_isa.py [--quick] [--rounds N]

Times, interleaved in one run, a training step as ``fit`` runs it (many batch-1
steps per ``train_steps`` call, so no Python in between) and a forward pass, for
each compiled build this CPU can run, and prints the baseline/AVX2 ratio. This is
the measurement behind building the kernels twice (setup.py) and picking the AVX2
build at import when the CPU has it (elman._backend).
"""

import argparse
import importlib
import sys

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

from _common import (add_clock_argument, apply_clock_argument, format_seconds,  # noqa: E402
                     machine_line, print_table, time_interleaved)
from elman import _backend  # noqa: E402
from elman._layout import parameter_count  # noqa: E402

SHAPES = [(3, 4, 7), (1, 5, 3), (1, 20, 5), (1, 50, 10), (1, 128, 50), (8, 256, 100)]
STEPS = 64  # batch-1 training steps per train_steps call


def builds():
    found = {"baseline": importlib.import_module("elman._kernels")}
    if _backend.cpu_has_avx2_fma():
        try:
            found["avx2+fma"] = importlib.import_module("elman._kernels_avx2")
        except ImportError:
            pass
    return found


def make_cases(kernels, shape):
    I, H, T = shape
    O, L = 1, 1
    rng = np.random.default_rng(0)
    theta0 = rng.uniform(-0.3, 0.3, parameter_count(I, H, O, L))
    X = rng.normal(size=(STEPS, T, I))
    Y = rng.normal(size=(STEPS, T, O))
    lengths = np.full(STEPS, T, dtype=np.intp)
    order = np.arange(STEPS, dtype=np.intp)
    hyper = np.array([1e-3, 0.0, 0.0, 0.0, 0.0])
    losses = np.empty(STEPS)

    def train(n):
        for _ in range(n):
            theta = theta0.copy()
            state = np.zeros((2, theta.size))
            kernels.train_steps(theta, I, H, O, L, 0, True, X, Y, lengths, order, 1, 0, hyper,
                                state, np.zeros(1, dtype=np.int64), 5.0, 0.0, losses)

    Xf = X[:1]
    h0 = np.zeros((L, 1, H))
    Yf = np.empty((1, T, O))
    hl = np.empty((L, 1, H))

    def forward(n):
        for _ in range(n):
            kernels.forward(theta0, I, H, O, L, 0, True, Xf, h0, lengths[:1], Yf, hl)

    return {"train step": (train, STEPS), "forward": (forward, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny repeat counts (CI smoke)")
    parser.add_argument("--rounds", type=int, default=None)
    add_clock_argument(parser)
    args = parser.parse_args(argv)
    args.threads = 1
    clock = apply_clock_argument(args)
    rounds = args.rounds or (3 if args.quick else 15)
    target = 0.002 if args.quick else 0.02
    available = builds()
    print("# bench_isa: compiled builds side by side, float64, batch 1")
    print(f"# {machine_line()}; {rounds} interleaved rounds, medians of {clock} time")
    cases = {}
    for shape in SHAPES:
        for name, kernels in available.items():
            for kind, case in make_cases(kernels, shape).items():
                cases[(shape, name, kind)] = case
    medians = time_interleaved(cases, rounds, target)
    rows = []
    for shape in SHAPES:
        for kind in ("train step", "forward"):
            base = medians[(shape, "baseline", kind)]
            avx2 = medians.get((shape, "avx2+fma", kind))
            rows.append([str(shape), kind, format_seconds(base), format_seconds(avx2),
                         f"{base / avx2:.2f}x" if avx2 else "-"])
    print_table(["(I, H, T)", "what", "baseline", "avx2+fma", "baseline/avx2"], rows)
    if "avx2+fma" not in available:
        print("# no AVX2 build usable on this machine: only the baseline is timed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
