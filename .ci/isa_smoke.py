"""Run the installed elman on an emulated CPU without AVX (check 6's dynamic half).

    qemu-x86_64 -cpu Nehalem VENV/bin/python .ci/isa_smoke.py

Nehalem is x86-64-v2 (SSE4.2, POPCNT) with no AVX, AVX2 or FMA: the oldest CPU
model current NumPy still runs on. On it the dispatcher must pick the portable
build, and a forward pass through it must agree with the NumPy twin.
Prints one line; exits non-zero on any disagreement (a SIGILL kills it first).
"""

import sys

import numpy as np

import elman
from elman import _backend

if _backend.cpu_has_avx2_fma():
    sys.exit("this CPU reports AVX2 and FMA: run under an emulated CPU without them")
build = _backend.instruction_set()
if build != "baseline":
    sys.exit(f"the compiled build in use is {build!r}, expected 'baseline'")

rng = np.random.default_rng(0)
X = rng.standard_normal((4, 25, 3))
outputs = {}
for backend in ("cython", "numpy"):
    with elman.use_backend(backend):
        model = elman.RNN(3, 16, 2, seed=0)
        outputs[backend] = np.asarray(model.forward(X))
error = float(np.max(np.abs(outputs["cython"] - outputs["numpy"])))
if not error <= 1e-12:
    sys.exit(f"baseline build and NumPy twin disagree by {error:.3g}")
# Two threads (the bundled OpenMP runtime, when the build has one): the same bits.
Y = rng.standard_normal((13, 25, 2))
X = rng.standard_normal((13, 25, 3))
model = elman.RNN(3, 16, 2, seed=0)
results = []
for threads in (1, 2):
    with elman.use_backend("cython"), elman.num_threads(threads):
        used = elman.get_num_threads()
        loss, grads = model.loss_and_grad(X, Y)
        results.append((used, loss, np.concatenate([g.ravel() for g in grads.values()])))
openmp = _backend.get_kernels("cython").OPENMP
if openmp and results[1][0] != 2:
    sys.exit(f"built with OpenMP, but {results[1][0]} thread(s) ran when 2 were asked for")
if results[0][1] != results[1][1] or not np.array_equal(results[0][2], results[1][2]):
    sys.exit("loss_and_grad on 2 threads differs from 1 thread")
print(f"build {build!r} chosen and run on a CPU without AVX; forward pass agrees with "
      f"the NumPy twin to {error:.1e}; loss_and_grad on {results[1][0]} thread(s) "
      f"(OpenMP {openmp}) equals 1 thread bit for bit")
