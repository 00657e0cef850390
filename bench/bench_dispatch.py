"""Where the compiled backend should switch from its fused loops to BLAS.

    python bench/bench_dispatch.py [--quick] [--time 20] [--input 4]

The compiled backend has two ways to compute a training step's loss and gradient:

* ``fused``: ``_kernels.loss_and_grad``, one compiled call doing everything in loops
  (projection, recurrence, head, loss, BPTT, gradient sums);
* ``gemm``: ``_gemm_path.loss_and_grad`` with the compiled recurrences, i.e. BLAS
  products from Python for everything that is not recurrent, around
  ``_kernels.recurrence_forward`` / ``recurrence_backward``.

This script times both, interleaved, across batch x hidden (float64 and float32,
BLAS on one thread) and prints gemm/fused: above 1 the fused loops win. The rule in
``elman.rnn._use_fused_loops`` (batch == 1, or batch * hidden**2 at most
``FUSED_MAX_BATCH_HIDDEN2``) is set from this table; the last column says what the
rule picks, so a wrong choice shows as a ratio on the wrong side of 1.
"""

import argparse
import sys

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

from _common import (add_clock_argument, apply_clock_argument, machine_line,  # noqa: E402
                     print_table, time_interleaved)
from elman import _backend, _gemm_path  # noqa: E402
from elman.rnn import FUSED_MAX_BATCH_HIDDEN2, _recurrences, _use_fused_loops  # noqa: E402

BATCHES = [1, 2, 4, 8, 16, 32, 64]
HIDDENS = [8, 16, 32, 64, 128, 256]


def make_cases(kernels, I, H, T, B, dtype):
    rng = np.random.default_rng(0)
    O, L = 1, 1
    P = _gemm_path.parameter_count(I, H, O, L)
    theta = (rng.uniform(-1, 1, size=P) / np.sqrt(H)).astype(dtype)
    X = rng.normal(size=(B, T, I)).astype(dtype)
    Y = rng.normal(size=(B, T, O)).astype(dtype)
    h0 = np.zeros((L, B, H), dtype=dtype)
    lengths = np.full(B, T, dtype=np.intp)
    grad = np.empty_like(theta)
    recurrences = _recurrences(kernels)

    def fused(n):
        for _ in range(n):
            kernels.loss_and_grad(theta, I, H, O, L, True, X, Y, h0, lengths, grad)

    def gemm(n):
        for _ in range(n):
            _gemm_path.loss_and_grad(recurrences, theta, I, H, O, L, True, X, Y, h0, lengths,
                                     grad)

    return {"fused": (fused, 1), "gemm": (gemm, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--time", type=int, default=20)
    parser.add_argument("--input", type=int, default=4)
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--threads", type=int, default=1)
    add_clock_argument(parser)
    args = parser.parse_args(argv)
    clock = apply_clock_argument(args)
    rounds = args.rounds or (3 if args.quick else 9)
    target = 0.002 if args.quick else 0.01
    batches = [1, 16] if args.quick else BATCHES
    hiddens = [8, 64] if args.quick else HIDDENS
    kernels = _backend.get_kernels("cython")
    print(f"# bench_dispatch: fused loops vs BLAS (_gemm_path) around the compiled "
          f"recurrences; loss_and_grad, input {args.input}, time {args.time}, output 1")
    print(f"# {machine_line()}; BLAS threads {args.threads}; {rounds} interleaved rounds, "
          f"medians of {clock} time; FUSED_MAX_BATCH_HIDDEN2 = {FUSED_MAX_BATCH_HIDDEN2}")
    for dtype in args.dtypes.split(","):
        cases = {}
        for B in batches:
            for H in hiddens:
                for kind, case in make_cases(kernels, args.input, H, args.time, B,
                                             dtype).items():
                    cases[(B, H, kind)] = case
        medians = time_interleaved(cases, rounds, target)
        rows = []
        for B in batches:
            row = [B]
            for H in hiddens:
                ratio = medians[(B, H, "gemm")] / medians[(B, H, "fused")]
                picked = "F" if _use_fused_loops(kernels, B, H) else "G"
                row.append(f"{ratio:.2f} {picked}")
            rows.append(row)
        print(f"\n{dtype}: gemm time / fused time (>1: fused loops faster); "
              f"F/G = what _use_fused_loops picks")
        print_table(["batch \\ hidden"] + [str(H) for H in hiddens], rows)
        rows = []
        for B in batches:
            rows.append([B] + [f"{medians[(B, H, 'fused')] * 1e6:.0f}/"
                               f"{medians[(B, H, 'gemm')] * 1e6:.0f}" for H in hiddens])
        print(f"\n{dtype}: microseconds fused/gemm")
        print_table(["batch \\ hidden"] + [str(H) for H in hiddens], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
