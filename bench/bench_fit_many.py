"""200 small models: fit_many serially, on threads and on processes.

    python bench/bench_fit_many.py [--models 200] [--rounds 3] [--workers 2]
                                   [--backend active|cython|numpy|both] [--quick]

The models have the weather shape: input 3 (tmax, tmin, rain), hidden 4, 8, 12 or
16 in turn, window 7, one output (tomorrow's tmax, many-to-one). Model ``i``
trains on its own stretch of 1,000 days of the bundled weather data, starting at
day ``60 * i`` (as if each were a station), for 5 epochs with batch 32 and Adam.

Every case makes the same ``elman.fit_many`` call, and all cases must agree
bit for bit (checked):

* ``serial``: ``n_jobs=1``, a plain loop in this process;
* ``threads``: ``joblib.parallel_backend("threading", n_jobs=W)``;
* ``processes, cold``: ``joblib.parallel_backend("loky", n_jobs=W)`` after shutting
  the worker pool down, so it includes starting W fresh interpreters that import
  NumPy and elman: what a script's first (often only) call pays;
* ``processes, warm``: the same with loky's worker pool reused from the previous
  call (the workers stay alive between calls, until they idle for 300 s);
* ``default``: ``n_jobs=W`` with no ``parallel_backend``: fit_many's own choice.

Times are wall-clock seconds (several cores work for one case), medians over
interleaved rounds (see ``_common``). BLAS is pinned to one thread per process so
that the workers, not BLAS, use the cores.
"""

import argparse
import statistics
import sys
import time

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

import elman  # noqa: E402
from _common import machine_line, print_table  # noqa: E402
from elman import _backend  # noqa: E402
from elman.datasets import load_weather  # noqa: E402
from elman.parallel import DEFAULT_PREFER, fit_many  # noqa: E402

HIDDEN_SIZES = (4, 8, 12, 16)
WINDOW = 7
DAYS = 1000
STRIDE = 60


def make_tasks(n_models):
    weather = load_weather()
    features = weather[["tmax", "tmin", "rain"]]
    target = weather["tmax_tomorrow"]
    mean, std = features.mean(axis=0), features.std(axis=0)
    features = (features - mean) / std
    target = (target - mean[0]) / std[0]
    tasks, params = [], []
    for i in range(n_models):
        start = (STRIDE * i) % (features.shape[0] - DAYS)
        tasks.append((features[start:start + DAYS], target[start:start + DAYS]))
        params.append({"hidden_size": HIDDEN_SIZES[i % len(HIDDEN_SIZES)]})
    return tasks, params


def shutdown_loky():
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default="active",
                        choices=["active", "cython", "numpy", "both"],
                        help="kernel backend(s) to time; 'active' is elman.BACKEND")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per process")
    parser.add_argument("--quick", action="store_true", help="40 models, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.models, args.rounds = 40, 1

    import joblib

    backends = {"active": [elman.BACKEND], "both": ["cython", "numpy"]}.get(
        args.backend, [args.backend])
    tasks, params = make_tasks(args.models)
    W = args.workers
    settings = dict(window=WINDOW, horizon=0, many_to_many=False, epochs=args.epochs,
                    batch_size=32, seed=0)

    print(machine_line())
    print(f"joblib {joblib.__version__}; {args.models} models of input 3, hidden "
          f"{'/'.join(map(str, HIDDEN_SIZES))}, window {WINDOW}, {DAYS - WINDOW + 1} "
          f"windows each, {args.epochs} epochs, batch 32; {W} workers; "
          f"median of {args.rounds} interleaved rounds, wall clock")

    for backend in backends:
        default_prefer = DEFAULT_PREFER[backend]

        def run(case):
            if case == "serial":
                return fit_many(tasks, params, n_jobs=1, **settings)
            if case == "default":
                return fit_many(tasks, params, n_jobs=W, **settings)
            if case == "processes, cold":
                shutdown_loky()
            joblib_backend = "threading" if case == "threads" else "loky"
            with joblib.parallel_backend(joblib_backend, n_jobs=W):
                return fit_many(tasks, params, **settings)

        cases = ["serial", "threads", "processes, cold", "processes, warm", "default"]
        samples = {case: [] for case in cases}
        reference = None
        with elman.use_backend(backend):
            for _ in range(args.rounds):
                for case in cases:
                    started = time.perf_counter()
                    result = run(case)
                    samples[case].append(time.perf_counter() - started)
                    assert result.ok, result.errors
                    assert result.backend == backend
                    params_now = [m.parameters for m in result.models]
                    if reference is None:
                        reference = params_now
                    else:
                        differ = [i for i, (a, b) in enumerate(zip(reference, params_now))
                                  if not np.array_equal(a, b)]
                        if differ:
                            # (Also what a rebuild of the kernels during the run looks
                            # like: fresh worker processes import the new build.)
                            sys.exit(f"{case}: models {differ[:10]} differ from the "
                                     f"first run's")
        serial = statistics.median(samples["serial"])
        rows = []
        for case in cases:
            seconds = statistics.median(samples[case])
            label = case
            if case == "default":
                label = f"default (n_jobs={W}: {default_prefer})"
            rows.append([label, f"{seconds:.2f} s", f"{1000 * seconds / args.models:.1f} ms",
                         f"{serial / seconds:.2f}x"])
        build = f", {_backend.instruction_set()} build" if backend == "cython" else ""
        print(f"\nkernel backend: {backend} (elman.BACKEND{build}), default for "
              f"n_jobs != 1: {default_prefer}")
        print_table(["case", "wall time", "per model", "speed-up vs serial"], rows)
    shutdown_loky()


if __name__ == "__main__":
    main()
