"""Every compiled build (instruction-set level) agrees with the NumPy twin.

The suite's ``backend`` fixture uses whichever compiled build the loader picks (the
AVX2+FMA one on a CPU that has both). This file calls each build that can run on
this CPU directly, so the portable baseline build is exercised too, and checks how
``ELMAN_ISA`` chooses between them.
"""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

from elman import _backend
from elman._layout import parameter_count
from elman import _kernels_numpy as twin

RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def _available_builds():
    if os.environ.get("ELMAN_BACKEND", "").strip().lower() == "numpy":
        return []
    builds = []
    for name in ("elman._kernels", "elman._kernels_avx2"):
        if name.endswith("_avx2") and not _backend.cpu_has_avx2_fma():
            continue
        try:
            builds.append(importlib.import_module(name))
        except ImportError:
            continue
    return builds


BUILDS = _available_builds()
pytestmark = pytest.mark.skipif(not BUILDS, reason="no compiled build in this run")


def _close(actual, expected, dtype):
    scale = max(1.0, float(np.max(np.abs(expected))) if np.size(expected) else 1.0)
    assert float(np.max(np.abs(np.asarray(actual) - expected), initial=0.0)) <= \
        RTOL[dtype] * scale


def _case(seed, dtype, I, H, O, L, B, T):
    rng = np.random.default_rng(seed)
    P = parameter_count(I, H, O, L)
    theta = rng.uniform(-0.6, 0.6, P).astype(dtype)
    X = rng.normal(size=(B, T, I)).astype(dtype)
    Y = rng.normal(size=(B, T, O)).astype(dtype)
    h0 = (0.5 * rng.normal(size=(L, B, H))).astype(dtype)
    lengths = rng.integers(1, T + 1, B).astype(np.intp)
    return theta, X, Y, h0, lengths


SHAPES = [  # (I, H, O, L, B, T): tutorial sizes, odd sizes, and a larger hidden
    (3, 4, 1, 1, 1, 7), (1, 50, 1, 1, 1, 10), (2, 7, 3, 2, 3, 5), (5, 33, 2, 3, 4, 6),
    (1, 130, 1, 1, 2, 4),
]


@pytest.mark.parametrize("build", BUILDS, ids=lambda m: m.INSTRUCTION_SET)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_build_agrees_with_twin(build, dtype, shape):
    I, H, O, L, B, T = shape
    theta, X, Y, h0, lengths = _case(sum(shape), dtype, I, H, O, L, B, T)
    for many_to_many in (True, False):
        Yk = Y if many_to_many else np.ascontiguousarray(Y[:, :1])
        out = []
        for kernels in (build, twin):
            grad = np.empty_like(theta)
            loss = kernels.loss_and_grad(theta, I, H, O, L, 0, many_to_many, X, Yk, h0,
                                         lengths, grad)
            Yo = np.empty_like(Yk)
            hl = np.empty_like(h0)
            kernels.forward(theta, I, H, O, L, 0, many_to_many, X, h0, lengths, Yo, hl)
            out.append((loss, grad, Yo, hl))
        (la, ga, ya, ha), (lb, gb, yb, hb) = out
        _close(la, lb, dtype)
        _close(ga, gb, dtype)
        _close(ya, yb, dtype)
        _close(ha, hb, dtype)


@pytest.mark.parametrize("build", BUILDS, ids=lambda m: m.INSTRUCTION_SET)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_build_training_steps_and_forecast_agree_with_twin(build, dtype):
    I, H, O, L, B, T = 2, 9, 2, 2, 10, 6
    theta0, X, Y, _, lengths = _case(5, dtype, I, H, O, L, B, T)
    order = np.random.default_rng(1).permutation(B).astype(np.intp)
    hyper = np.array([0.01, 0.9, 0.999, 1e-8, 0.01])
    results = []
    for kernels in (build, twin):
        theta = theta0.copy()
        state = np.zeros((2, theta.size), dtype=dtype)
        step = np.zeros(1, dtype=np.int64)
        losses = np.empty(4)
        done = kernels.train_steps(theta, I, H, O, L, 0, True, X, Y, lengths, order, 3, 1,
                                   hyper, state, step, 0.5, 1.0, losses)
        assert done == 4
        results.append((theta, state, losses))
    for a, b in zip(*results):
        _close(a, b, dtype)

    future = np.random.default_rng(2).normal(size=(B, 3, I)).astype(dtype)
    feedback = np.array([1, -1], dtype=np.intp)
    h0 = np.zeros((L, B, H), dtype=dtype)
    forecasts = []
    for kernels in (build, twin):
        Yf = np.empty((B, 4, O), dtype=dtype)
        hl = np.empty((L, B, H), dtype=dtype)
        kernels.forecast(theta0, I, H, O, L, 0, X, h0, feedback, future, Yf, hl)
        forecasts.append((Yf, hl))
    _close(forecasts[0][0], forecasts[1][0], dtype)
    _close(forecasts[0][1], forecasts[1][1], dtype)


@pytest.mark.parametrize("build", BUILDS, ids=lambda m: m.INSTRUCTION_SET)
def test_build_names_its_instruction_set(build):
    expected = "avx2+fma" if build.__name__.endswith("_avx2") else "baseline"
    assert build.INSTRUCTION_SET == expected


def _chosen(isa):
    env = dict(os.environ)
    env.pop("ELMAN_BACKEND", None)
    env["ELMAN_ISA"] = isa
    return subprocess.run(
        [sys.executable, "-c",
         "from elman import _backend; print(_backend.get_kernels('cython').__name__)"],
        env=env, capture_output=True, text=True, timeout=60)


def test_elman_isa_baseline_forces_the_portable_build():
    """The baseline build is what a CPU without AVX2 gets: forcing it must work."""
    result = _chosen("baseline")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "elman._kernels"


def test_elman_isa_unset_picks_the_best_build():
    result = _chosen("")
    assert result.returncode == 0, result.stderr
    names = [m.__name__ for m in BUILDS]
    expected = "elman._kernels_avx2" if "elman._kernels_avx2" in names else "elman._kernels"
    assert result.stdout.strip() == expected


def test_elman_isa_rejects_unknown_levels():
    result = _chosen("avx512")
    assert result.returncode != 0
    assert "ELMAN_ISA" in result.stderr
