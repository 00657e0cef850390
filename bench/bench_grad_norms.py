"""What recording the gradient norms costs ``fit``: record_grad_norms on and off.

    python bench/bench_grad_norms.py [--rounds 7] [--seconds 0.3]
                                     [--backend active|cython|numpy|both] [--quick]

``fit`` records, for every epoch, the norm of each weight group's gradient at the
epoch's last update (``History.grad_norms``). The last batch of an epoch runs in a
call of its own. On the routes that step in Python (gemm, and the NumPy twin) a
hook sees its gradient; the compiled fused loop keeps no gradient, so there it is
computed once more: one batch's forward and backward per epoch. The cases, side by
side with the switch off:

* ``tutorial``: input 3, hidden 16, 7 steps, 64 sequences, batch 1 (64 updates an
  epoch, fused route);
* ``batch 32``: input 3, hidden 32, 20 steps, 1,024 sequences, batch 32 (32
  updates an epoch, fused route);
* ``full batch, gemm``: the same 1,024 sequences in one batch per epoch (gemm
  route: the hook, no extra pass);
* ``full batch, fused``: hidden 16, 512 sequences in one batch (fused route),
  where the extra pass doubles the work: the case ``record_grad_norms=False`` is
  for;
* ``tbptt``: truncated BPTT (chunks of 5 steps), whose updates run from Python and
  whose norms cost only the sums.

Times are CPU seconds per epoch (medians of interleaved rounds, see ``_common``),
with BLAS pinned to one thread.
"""

import argparse

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

import elman  # noqa: E402
from _common import format_seconds, machine_line, print_table, time_interleaved  # noqa: E402

CASES = {
    # name: (input, hidden, steps, sequences, batch, tbptt)
    "tutorial": (3, 16, 7, 64, 1, None),
    "batch 32": (3, 32, 20, 1024, 32, None),
    "full batch, gemm": (3, 32, 20, 1024, 1024, None),
    "full batch, fused": (3, 16, 20, 512, 512, None),
    "tbptt": (3, 32, 20, 256, 32, 5),
}


def make_run(case, record):
    inputs, hidden, steps, n, batch, tbptt = CASES[case]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, steps, inputs))
    Y = np.cumsum(X[..., :1], axis=1) * 0.3
    model = elman.RNN(inputs, hidden, 1, seed=0)

    def run(epochs):
        model.fit(X, Y, epochs=epochs, batch_size=batch, lr=1e-3, seed=0, tbptt=tbptt,
                  record_grad_norms=record)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.3,
                        help="target time of one timed repetition of a case")
    parser.add_argument("--backend", default="active",
                        choices=("active", "cython", "numpy", "both"))
    parser.add_argument("--quick", action="store_true",
                        help="one round, one repetition: a smoke run, not a measurement")
    args = parser.parse_args()
    backends = ([elman.BACKEND] if args.backend == "active" else
                ["cython", "numpy"] if args.backend == "both" else [args.backend])
    rounds, seconds = (1, 0.0) if args.quick else (args.rounds, args.seconds)
    print(machine_line())
    for backend in backends:
        with elman.use_backend(backend):
            cases = {}
            for case in CASES:
                for record in (False, True):
                    run = make_run(case, record)

                    def in_backend(epochs, run=run):
                        with elman.use_backend(backend):
                            run(epochs)

                    cases[(case, record)] = (in_backend, 1)
            times = time_interleaved(cases, rounds, seconds)
        rows = []
        for case in CASES:
            off, on = times[(case, False)], times[(case, True)]
            rows.append((case, format_seconds(off), format_seconds(on), f"{on / off:.3f}"))
        print(f"\nbackend {backend}: seconds per epoch ({rounds} rounds, median)")
        print_table(("case", "record_grad_norms=False", "True", "ratio"), rows)


if __name__ == "__main__":
    main()
