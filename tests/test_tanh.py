"""The compiled kernels' own tanh, against np.tanh in ulps.

The kernels do not call libm's tanh: they use a branch-free formula that the
compiler vectorises (see the comment above ``elman_tanh`` in ``_kernels.h``). It
must agree with a correctly rounded tanh to within a few ulp everywhere, and get the
special values exactly right.
"""

import numpy as np
import pytest

MAX_ULPS = {np.float64: 2, np.float32: 1}


def ordered(values):
    """Map floats to integers whose difference counts the representable floats between."""
    int_type = np.int64 if values.dtype == np.float64 else np.int32
    bits = values.view(int_type).astype(np.int64)
    magnitude = bits & np.int64(np.iinfo(int_type).max)
    return np.where(bits < 0, -magnitude, bits)


def ulps_apart(a, b):
    return np.abs(ordered(a) - ordered(b))


def compiled_tanh(compiled_kernels, x):
    """tanh(x) by the contract's step kernel, out = tanh(A + P_t), with P_t = -0.0:
    x + (-0.0) is x for every x, -0.0 and NaN included."""
    A = np.ascontiguousarray(x).reshape(1, -1).copy()
    out = np.empty_like(A)
    compiled_kernels.tanh_step_forward(A, np.full_like(A, -0.0), out)
    return out.reshape(np.shape(x))


def sample(dtype):
    """Values over the whole range: every binade from the smallest subnormal to the
    largest finite value, both signs, plus dense sampling where the formula changes
    (|x| = 0.625) and where tanh saturates."""
    rng = np.random.default_rng(7)
    info = np.finfo(dtype)
    exponents = np.arange(np.log2(float(info.smallest_subnormal)), np.log2(float(info.max)))
    mags = np.exp2(exponents[:, None] + rng.uniform(0, 1, size=(exponents.size, 64)))
    mags = mags.ravel()
    mags = mags[np.isfinite(mags.astype(dtype))]
    dense = np.concatenate([
        rng.uniform(0, 1, 20000), rng.uniform(0.6, 0.65, 20000), rng.uniform(1, 25, 20000),
        np.nextafter(0.625, [0, 1]), [0.625],
    ])
    x = np.concatenate([mags, dense]).astype(dtype)
    return np.concatenate([x, -x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_within_a_few_ulps_everywhere(compiled_kernels, dtype):
    x = sample(dtype)
    got = compiled_tanh(compiled_kernels, x)
    # float64 reference; np.tanh in float64 is within an ulp of exact.
    expected = np.tanh(x.astype(np.float64)).astype(dtype)
    worst = ulps_apart(got, expected)
    i = int(np.argmax(worst))
    assert worst[i] <= MAX_ULPS[dtype], f"tanh({x[i]!r}) = {got[i]!r}, expected {expected[i]!r}"


def test_float32_tanh_dense_sweep(compiled_kernels):
    """float32 has its own formula (not the float64 one rounded): check it on every
    509th positive float32 (4.2 million values, a prime stride so that every
    mantissa pattern is met) and on every float32 near the points where the formula
    changes (|x| = 0.55) or saturates (9.0 to 10.0, where tanh reaches 1 and |x| is
    clamped), both signs. bench/bench_tanh.py --exhaustive checks all of them."""
    bits = np.arange(0, 0x7F800000, 509, dtype=np.uint32)
    edges = [np.arange(np.float32(a).view(np.uint32) - 20000,
                       np.float32(a).view(np.uint32) + 20000, dtype=np.uint32)
             for a in (0.55, 9.0, 9.02, 10.0)]
    x = np.concatenate([bits] + edges).view(np.float32)
    x = np.concatenate([x, -x])
    got = compiled_tanh(compiled_kernels, x)
    expected = np.tanh(x.astype(np.float64)).astype(np.float32)
    worst = ulps_apart(got, expected)
    i = int(np.argmax(worst))
    assert worst[i] <= MAX_ULPS[np.float32], (
        f"tanh({x[i]!r}) = {got[i]!r}, expected {expected[i]!r}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_special_values(compiled_kernels, dtype):
    info = np.finfo(dtype)
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, info.max, -info.max,
                  info.smallest_subnormal, -info.smallest_subnormal, info.smallest_normal,
                  -info.smallest_normal, 22.0, -22.0, 1e4, -1e4], dtype=dtype)
    got = compiled_tanh(compiled_kernels, x)
    assert got[0] == 0 and not np.signbit(got[0])
    assert got[1] == 0 and np.signbit(got[1])
    assert got[2] == 1 and got[3] == -1
    assert np.isnan(got[4]) and np.isnan(got[5])
    assert got[6] == 1 and got[7] == -1
    # Tiny values: tanh(x) rounds to x itself, subnormals included.
    np.testing.assert_array_equal(got[8:12], x[8:12])
    np.testing.assert_array_equal(got[12:], np.sign(x[12:]))


def test_tanh_is_odd(compiled_kernels):
    x = sample(np.float64)
    x = x[x > 0]
    np.testing.assert_array_equal(compiled_tanh(compiled_kernels, -x),
                                  -compiled_tanh(compiled_kernels, x))


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 17])
def test_tanh_any_length(compiled_kernels, n):
    """Vector loops have a remainder; every element is computed the same way."""
    x = np.linspace(-3, 3, n)
    np.testing.assert_array_equal(compiled_tanh(compiled_kernels, x),
                                  np.array([compiled_tanh(compiled_kernels, v[None])[0]
                                            for v in x]))
