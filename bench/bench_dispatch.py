"""Where the route table should send a call: the measurements behind ``elman._engine``.

    python bench/bench_dispatch.py [--quick] [--call loss_and_grad|forecast]
                                   [--recurrences] [--time 20] [--input 4]

The compiled backend has two routes for a call (``elman._engine.route``):

* ``fused``: one compiled call doing everything in loops (projection, recurrence,
  head, loss, BPTT, gradient sums; or the closed-loop steps of ``forecast``);
* ``gemm``: ``_gemm_path``, BLAS products from Python for everything that is not
  recurrent, around the recurrences the table picks for the shape.

This script times both, interleaved, across batch x hidden (float64 and float32,
BLAS on one thread) and prints gemm/fused: above 1 the fused loops win. The last
letter of a cell says what the route table picks (F fused, G gemm), so a wrong
choice shows as a ratio on the wrong side of 1.

``--recurrences`` compares the two recurrences of the gemm route instead, on
``loss_and_grad``: the compiled per-sequence loops against one BLAS product per
step with the compiled elementwise step kernels (ratio loops/blas-steps: above 1,
BLAS steps win; B = what the table picks, L = loops).

The thresholds in ``elman._engine`` come from these tables; bench/RESULTS.md has
the last run of each.
"""

import argparse
import sys

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

from _common import (add_clock_argument, apply_clock_argument, machine_line,  # noqa: E402
                     print_table, time_interleaved)
from elman import _backend, _engine, _gemm_path  # noqa: E402
from elman._layout import parameter_count  # noqa: E402

BATCHES = [1, 2, 4, 8, 16, 32, 64]
HIDDENS = [8, 16, 32, 64, 128, 256]
FORECAST_STEPS = 10


def make_cases(kernels, call, I, H, T, B, dtype, compare_recurrences):
    rng = np.random.default_rng(0)
    O, L = 1, 1
    theta = (rng.uniform(-1, 1, size=parameter_count(I, H, O, L)) / np.sqrt(H)).astype(dtype)
    X = rng.normal(size=(B, T, I)).astype(dtype)
    Y = rng.normal(size=(B, T, O)).astype(dtype)
    h0 = np.zeros((L, B, H), dtype=dtype)
    lengths = np.full(B, T, dtype=np.intp)
    grad = np.empty_like(theta)
    feedback = np.zeros(O, dtype=np.intp)
    future = rng.normal(size=(B, FORECAST_STEPS - 1, I)).astype(dtype)
    Y_out = np.empty((B, FORECAST_STEPS, O), dtype=dtype)
    h_last = np.empty((L, B, H), dtype=dtype)

    def runner(function):
        if call == "forecast":
            def run(n):
                for _ in range(n):
                    function(theta, I, H, O, L, 0, X, h0, feedback, future, Y_out, h_last)
        else:
            def run(n):
                for _ in range(n):
                    function(theta, I, H, O, L, 0, True, X, Y, h0, lengths, grad)
        return run

    if compare_recurrences:
        loops = _gemm_path.Recurrences("compiled loops", kernels.recurrence_forward,
                                       kernels.recurrence_backward)
        blas = _engine.recurrences(_engine.BLAS_STEPS_MIN_BATCH,
                                   _engine.BLAS_STEPS_MIN_HIDDEN, kernels)
        gemm = getattr(_gemm_path, call)
        return {"loops": (runner(lambda *a: gemm(loops, *a)), 1),
                "blas": (runner(lambda *a: gemm(blas, *a)), 1)}
    chosen = _engine.recurrences(B, H, kernels)
    gemm = getattr(_gemm_path, call)
    return {"fused": (runner(getattr(kernels, call)), 1),
            "gemm": (runner(lambda *a: gemm(chosen, *a)), 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--time", type=int, default=20)
    parser.add_argument("--input", type=int, default=4)
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--call", choices=["loss_and_grad", "forecast"],
                        default="loss_and_grad")
    parser.add_argument("--recurrences", action="store_true",
                        help="compare the gemm route's two recurrences instead")
    add_clock_argument(parser)
    args = parser.parse_args(argv)
    clock = apply_clock_argument(args)
    rounds = args.rounds or (3 if args.quick else 9)
    target = 0.002 if args.quick else 0.01
    batches = [1, 16] if args.quick else BATCHES
    hiddens = [8, 64] if args.quick else HIDDENS
    kernels = _backend.get_kernels("cython")
    slow, fast = ("loops", "blas") if args.recurrences else ("gemm", "fused")
    what = ("compiled loops vs BLAS steps inside the gemm route" if args.recurrences
            else "fused loops vs BLAS (_gemm_path)")
    print(f"# bench_dispatch: {what}; {args.call}, input {args.input}, time {args.time}, "
          f"output 1" + (f", {FORECAST_STEPS} forecast steps" if args.call == "forecast"
                         else ""))
    print(f"# {machine_line()}; BLAS threads {args.threads}; {rounds} interleaved rounds, "
          f"medians of {clock} time; FUSED_MAX_BATCH_HIDDEN2 = "
          f"{_engine.FUSED_MAX_BATCH_HIDDEN2}, BLAS steps from batch "
          f"{_engine.BLAS_STEPS_MIN_BATCH}, hidden {_engine.BLAS_STEPS_MIN_HIDDEN}")
    for dtype in args.dtypes.split(","):
        cases = {}
        for B in batches:
            for H in hiddens:
                for kind, case in make_cases(kernels, args.call, args.input, H, args.time,
                                             B, dtype, args.recurrences).items():
                    cases[(B, H, kind)] = case
        medians = time_interleaved(cases, rounds, target)
        rows = []
        for B in batches:
            row = [B]
            for H in hiddens:
                ratio = medians[(B, H, slow)] / medians[(B, H, fast)]
                if args.recurrences:
                    picked = "B" if _engine.uses_blas_steps(B, H) else "L"
                else:
                    picked = "F" if _engine.route(B, H, kernels).name == "fused" else "G"
                row.append(f"{ratio:.2f} {picked}")
            rows.append(row)
        print(f"\n{dtype}: {slow} time / {fast} time (>1: {fast} faster); "
              f"letter = what the route table picks")
        print_table(["batch \\ hidden"] + [str(H) for H in hiddens], rows)
        rows = []
        for B in batches:
            rows.append([B] + [f"{medians[(B, H, fast)] * 1e6:.0f}/"
                               f"{medians[(B, H, slow)] * 1e6:.0f}" for H in hiddens])
        print(f"\n{dtype}: microseconds {fast}/{slow}")
        print_table(["batch \\ hidden"] + [str(H) for H in hiddens], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
