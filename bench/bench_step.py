"""One training step, compiled kernels against their NumPy twin.

    python bench/bench_step.py [--quick] [--rounds N]

A training step is what ``fit`` does per batch: loss and exact gradient by BPTT,
clipping (by value, 5.0, as the tutorials do), one SGD update. It is timed two ways
at the tutorials' sizes (input 1, hidden 50, time 10; input 3, hidden 4, time 7;
batch 1, one output):

* ``fit``: a whole ``model.fit`` epoch of batch-1 steps, divided by its steps. On the
  compiled backend the epoch runs as one call of ``kernels.train_steps``, so this
  is the step without Python overhead: what training costs.
* ``api``: a hand-written loop step, ``model.loss_and_grad`` + ``elman.clip_gradients``
  + ``SGD.step``, three Python calls with their validation: the step as a user who
  writes their own loop sees it. At these sizes it is mostly interpreter time.

All cases run interleaved in one process (see ``_common``); each prints the median
and the twin/compiled ratio. The target is a compiled step at least 10 times
faster than the twin at both sizes; the check is on the ``fit`` step.
"""

import argparse
import sys

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

import elman  # noqa: E402
from _common import (add_clock_argument, apply_clock_argument, format_seconds,  # noqa: E402
                     machine_line, print_table, time_interleaved)

SHAPES = [(1, 50, 10, 1), (3, 4, 7, 1)]  # (input, hidden, time, batch)
FIT_SEQUENCES = 256
REQUIRED_RATIO = 10.0


def make_cases(shape, backend, dtype="float64"):
    I, H, T, B = shape
    rng = np.random.default_rng(0)
    X = rng.normal(size=(FIT_SEQUENCES, T, I)).astype(dtype)
    Y = rng.normal(size=(FIT_SEQUENCES, T, 1)).astype(dtype)
    Xb, Yb = X[:B], Y[:B]
    model = elman.RNN(I, H, 1, seed=0, dtype=dtype)
    opt = elman.optimizers.SGD(lr=1e-3)

    def api(n):
        with elman.use_backend(backend):
            for _ in range(n):
                loss, grads = model.loss_and_grad(Xb, Yb)
                elman.clip_gradients(grads, value=5.0)
                opt.step(model, grads)

    def fit(n):
        with elman.use_backend(backend):
            for _ in range(n):
                model.fit(X, Y, epochs=1, batch_size=B, optimizer=opt, clip_value=5.0,
                          shuffle=False)

    steps_per_epoch = -(-FIT_SEQUENCES // B)
    return {"api": (api, 1), "fit": (fit, steps_per_epoch)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny repeat counts (CI smoke)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    add_clock_argument(parser)
    args = parser.parse_args(argv)
    clock = apply_clock_argument(args)
    rounds = args.rounds or (3 if args.quick else 21)
    target = 0.002 if args.quick else 0.02

    backends = ["cython", "numpy"] if elman.compiled_available() else ["numpy"]
    print("# bench_step: one training step (loss_and_grad + clip + SGD), float64")
    print(f"# {machine_line()}; BLAS threads {args.threads}; {rounds} interleaved rounds, "
          f"medians of {clock} time")
    if "cython" not in backends:
        print("# the compiled module is not available: only the twin is timed")

    cases = {}
    for shape in SHAPES:
        for backend in backends:
            for kind, (fn, units) in make_cases(shape, backend).items():
                cases[(shape, backend, kind)] = (fn, units)
    medians = time_interleaved(cases, rounds, target)

    rows = []
    ok = True
    for shape in SHAPES:
        for kind in ("fit", "api"):
            compiled = medians.get((shape, "cython", kind))
            twin = medians[(shape, "numpy", kind)]
            ratio = twin / compiled if compiled else None
            row = [str(shape), kind, format_seconds(compiled), format_seconds(twin),
                   f"{ratio:.1f}x" if ratio else "-"]
            if kind == "fit" and ratio is not None:
                met = ratio >= REQUIRED_RATIO
                ok &= met
                row.append("yes" if met else "NO")
            else:
                row.append("")
            rows.append(row)
    print_table(["(I, H, T, B)", "step", "compiled", "twin", "twin/compiled",
                 f">= {REQUIRED_RATIO:.0f}x"], rows)
    print("# fit: a model.fit epoch of batch-1 steps / steps (one compiled call per chunk of "
          "steps);\n# api: model.loss_and_grad + elman.clip_gradients + SGD.step from Python.")
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
