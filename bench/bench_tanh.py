"""ns per element of the compiled kernels' tanh beside the previous release's formulas.

    python bench/bench_tanh.py [--rounds N] [--lengths 50,4096] [--exhaustive]

Compiles ``bench_tanh.c`` (which includes ``src/elman/_kernels.h`` and
``tanh_previous.h``) with the C compiler Python was built with, twice: with the flags
of the baseline module and with those of the AVX2 module (setup.py), and runs it.
Per build, dtype and row length it prints the time per element of the current tanh
and of the previous one (float64: one division instead of three; float32: a float32
formula instead of the float64 one rounded), and the worst error in ulp of each
against libm's tanh: float32 on 2^16 values of every binade, or, with
``--exhaustive``, on every positive float32 (about a minute per build); float64 on
2^16 values of every binade from 2^-61 up and on [0, 25].

Needs a C compiler and Python's headers (the kernels' header includes Python.h).
"""

import argparse
import os
import subprocess
import sysconfig
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "bench_tanh.c")
KERNELS = os.path.join(HERE, os.pardir, "src", "elman")
# setup.py's _compile_args() and _avx2_args()
BUILDS = {"baseline": ["-O3", "-g0", "-fno-trapping-math"],
          "avx2": ["-O3", "-g0", "-fno-trapping-math", "-mavx2", "-mfma"]}


def build(flags, out):
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    subprocess.run(cc + flags + ["-I", sysconfig.get_paths()["include"], "-I", KERNELS,
                                 "-I", HERE, SOURCE, "-o", out, "-lm"], check=True)


def run(binary, length, rounds, exhaustive):
    args = [binary, str(length), str(rounds)] + (["exhaustive"] if exhaustive else [])
    lines = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    values = {}
    for line in lines.splitlines():
        kind, dtype, _, new, _, old = line.split()[:6]
        values[(kind, dtype)] = (float(new), float(old))
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--lengths", default="50,4096",
                        help="row lengths to time (hidden sizes), comma-separated")
    parser.add_argument("--exhaustive", action="store_true",
                        help="check float32 on every positive float")
    args = parser.parse_args(argv)
    lengths = [int(v) for v in args.lengths.split(",")]
    print("| build | dtype | row | new ns/elem | previous ns/elem | previous/new | "
          "new max ulp | previous max ulp |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in BUILDS.items():
            binary = os.path.join(tmp, f"bench_tanh_{name}")
            build(flags, binary)
            for i, length in enumerate(lengths):
                values = run(binary, length, args.rounds, args.exhaustive and i == 0)
                if i == 0:
                    ulps = {dtype: values[("ulps", dtype)] for dtype in ("float64", "float32")}
                for dtype in ("float64", "float32"):
                    new, old = values[("time", dtype)]
                    print(f"| {name} | {dtype} | {length} | {new:.2f} | {old:.2f} | "
                          f"{old / new:.2f}x | {ulps[dtype][0]:.0f} | {ulps[dtype][1]:.0f} |")


if __name__ == "__main__":
    main()
