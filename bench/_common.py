"""Shared helpers for the bench/ scripts: thread pinning, interleaved timing, tables.

Import this module before NumPy: ``pin_threads(n)`` must set the BLAS thread
variables before the BLAS library is loaded.

Why interleaved medians: these machines are shared and noisy. Every case is timed
once per round, the rounds cycle through all cases, and each case reports the median
of its rounds, so a burst of load elsewhere hits every case alike and the ratios
printed side by side stay meaningful even when the absolute times wander.
"""

import os
import statistics
import sys
import time

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def pin_threads(argv=None, default=1):
    """Read ``--threads N`` from argv and set every BLAS thread variable to N.

    Must run before NumPy is imported; returns N.
    """
    argv = sys.argv if argv is None else argv
    threads = default
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
        elif arg.startswith("--threads="):
            threads = int(arg.split("=", 1)[1])
    if "numpy" in sys.modules:
        raise RuntimeError("pin_threads must run before numpy is imported")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    return threads


# Which clock times the cases. "cpu" (time.process_time, CPU seconds used by this
# process) is the default for single-threaded runs: on a shared, oversubscribed
# machine wall time also counts the time spent waiting for a core, which is noise
# here. "wall" (time.perf_counter) is used when several threads work for one case
# (--threads 2), where CPU seconds would add the threads up.
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = time.process_time


def set_clock(name):
    """Select the clock ("cpu" or "wall") for calibrate and time_interleaved."""
    global _clock
    _clock = CLOCKS[name]


def add_clock_argument(parser):
    parser.add_argument("--clock", choices=sorted(CLOCKS), default=None,
                        help="cpu: process CPU seconds (default with 1 thread); "
                             "wall: elapsed seconds (default with more threads)")


def apply_clock_argument(args):
    """Set the clock from parsed --clock/--threads; returns its name."""
    name = args.clock or ("cpu" if getattr(args, "threads", 1) == 1 else "wall")
    set_clock(name)
    return name


def calibrate(run, target_seconds):
    """n such that run(n) takes about target_seconds (at least 1)."""
    run(1)  # warm up (first-call allocations, lazy imports)
    reps = 1
    while True:
        started = _clock()
        run(reps)
        elapsed = _clock() - started
        if elapsed >= target_seconds / 4 or reps >= 1 << 20:
            break
        reps *= 4
    return max(1, int(round(reps * target_seconds / max(elapsed, 1e-9))))


def time_interleaved(cases, rounds, target_seconds, statistic=None, settle=0.0):
    """Median (or ``statistic``, e.g. ``min``) seconds per call of every case,
    timed in interleaved rounds.

    cases: dict name -> (run, units) where run(n) repeats the measured work n times
    (its own loop, so that a context such as ``elman.use_backend`` is entered once,
    outside the repetitions) and one repetition does ``units`` of it, so the result
    is seconds per unit. ``settle``: seconds to sleep before each timed case, so
    that the threads the previous case woke have gone back to sleep (OpenBLAS's
    spin for about 0.1 s after a threaded call; while they spin they take a core
    from the next case), followed by one untimed repetition of the case, which
    wakes the cores the sleep let go idle (a virtual machine's idle CPUs can take
    tens of milliseconds to come back to speed). Returns dict name -> seconds.
    """
    if target_seconds:
        reps = {name: calibrate(run, target_seconds) for name, (run, _) in cases.items()}
    else:  # smoke runs: one repetition per round, no warm-up
        reps = {name: 1 for name in cases}
    samples = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (run, units) in cases.items():
            n = reps[name]
            if settle:
                time.sleep(settle)
                run(1)
            started = _clock()
            run(n)
            samples[name].append((_clock() - started) / (n * units))
    statistic = statistic or statistics.median
    return {name: statistic(values) for name, values in samples.items()}


def format_seconds(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def print_table(headers, rows, stream=None):
    """A plain Markdown table (pastes into issues and READMEs as is)."""
    stream = sys.stdout if stream is None else stream
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |"
    stream.write(line + "\n")
    stream.write("|" + "|".join("-" * (w + 2) for w in widths) + "|\n")
    for row in rows:
        stream.write("| " + " | ".join(str(c).rjust(w) for c, w in zip(row, widths)) + " |\n")
    stream.flush()


def machine_line():
    import platform

    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}; {os.cpu_count()} logical CPUs; Python {platform.python_version()}; "
            f"NumPy {np.__version__}")
