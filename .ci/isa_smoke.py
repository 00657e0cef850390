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
print(f"build {build!r} chosen and run on a CPU without AVX; forward pass agrees with "
      f"the NumPy twin to {error:.1e}")
