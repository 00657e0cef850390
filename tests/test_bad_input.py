"""Bad input: a ValueError or TypeError that names the argument, raised in Python
before any kernel runs, identically on both backends. And what is *not* bad input:
non-contiguous, integer, read-only and list inputs are converted, and the caller's
arrays are never written to."""

import warnings

import numpy as np
import pytest

import elman
from elman import _backend, optimizers

B, T, I, H, O, L = 2, 5, 3, 4, 2, 2
_rng = np.random.default_rng(0)
X_OK = _rng.normal(size=(B, T, I))
Y_OK = _rng.normal(size=(B, T, O))
H0_OK = _rng.normal(size=(L, B, H)) * 0.5
_SAVED = {"X": X_OK.copy(), "Y": Y_OK.copy(), "h0": H0_OK.copy()}


def m2m(dtype="float64"):
    return elman.RNN(I, H, O, num_layers=L, dtype=dtype, seed=0)


def m2o(dtype="float64"):
    return elman.RNN(I, H, O, num_layers=L, return_sequences=False, dtype=dtype, seed=0)


def with_value(array, index, value):
    array = np.array(array, dtype=float)
    array[index] = value
    return array


def _wrong_weight(name, shape):
    def call():
        model = m2m()
        weights = model.get_weights()
        weights[name] = np.zeros(shape)
        model.set_weights(weights)
    return call


# (id, call, exception type, regex the message must match)
BAD_CALLS = [
    # --- X: dimensions, shape, empty sequence
    ("X-1d", lambda: m2m().forward(np.zeros(3)), ValueError,
     r"X must have shape \(batch, time, 3\) or \(time, 3\); got 1 dimensions, shape \(3,\)"),
    ("X-4d", lambda: m2m().forward(np.zeros((1, 2, 5, 3))), ValueError,
     r"X must have shape .*got 4 dimensions, shape \(1, 2, 5, 3\)"),
    ("X-scalar", lambda: m2m().forward(1.0), ValueError, r"X must have shape .*got 0 dim"),
    ("X-features", lambda: m2m().forward(np.zeros((B, T, 4))), ValueError,
     r"X must have 3 features .*\(input_size\); got shape \(2, 5, 4\)"),
    ("X-features-unbatched", lambda: m2m().forward(np.zeros((T, 1))), ValueError,
     r"X must have 3 features .*got shape \(5, 1\)"),
    ("X-features-loss", lambda: m2m().loss_and_grad(np.zeros((B, T, 2)), Y_OK), ValueError,
     r"X must have 3 features"),
    ("X-empty-time", lambda: m2m().forward(np.zeros((B, 0, I))), ValueError,
     r"X is an empty sequence"),
    ("X-empty-time-unbatched", lambda: m2m().forward(np.zeros((0, I))), ValueError,
     r"X is an empty sequence"),
    ("X-empty-time-loss", lambda: m2m().loss_and_grad(np.zeros((B, 0, I)),
                                                      np.zeros((B, 0, O))), ValueError,
     r"X is an empty sequence"),
    ("X-empty-time-predict", lambda: m2m().predict(np.zeros((B, 0, I))), ValueError,
     r"X is an empty sequence"),
    ("X-empty-time-forecast", lambda: m2m().forecast(np.zeros((B, 0, I)), 2,
                                                     feedback=[0, 1]), ValueError,
     r"history is an empty sequence"),
    # --- X: not real numbers
    ("X-strings", lambda: m2m().forward(np.full((B, T, I), "1.0")), TypeError,
     r"X must hold real numbers; got an array of dtype <U3"),
    ("X-object", lambda: m2m().forward(X_OK.astype(object)), TypeError,
     r"X must hold real numbers; got an array of dtype object"),
    ("X-complex", lambda: m2m().forward(X_OK + 0j), TypeError,
     r"X must hold real numbers; got an array of dtype complex128"),
    ("X-None", lambda: m2m().forward(None), TypeError, r"X must hold real numbers"),
    ("X-ragged-list", lambda: m2m().forward([[[1, 2, 3]], [[1, 2, 3], [4, 5, 6]]]),
     TypeError, r"X must be an array of real numbers with a regular shape"),
    ("X-ragged-list-unbatched", lambda: m2m().forward([[1, 2, 3], [4, 5]]), TypeError,
     r"X must be an array of real numbers with a regular shape"),
    # --- X: non-finite, overflow
    ("X-nan", lambda: m2m().forward(with_value(X_OK, (1, 2, 0), np.nan)), ValueError,
     r"X contains NaN or inf"),
    ("X-inf", lambda: m2m().forward(with_value(X_OK, (0, 4, 2), np.inf)), ValueError,
     r"X contains NaN or inf"),
    ("X-minus-inf-loss", lambda: m2m().loss_and_grad(with_value(X_OK, 0, -np.inf), Y_OK),
     ValueError, r"X contains NaN or inf"),
    ("X-nan-predict", lambda: m2m().predict(with_value(X_OK, 0, np.nan)), ValueError,
     r"X contains NaN or inf"),
    ("X-nan-forecast", lambda: m2m().forecast(with_value(X_OK, 0, np.nan), 2,
                                              feedback=[0, 1]), ValueError,
     r"history contains NaN or inf"),
    ("X-overflows-float32", lambda: m2m("float32").forward(with_value(X_OK, 0, 1e39)),
     ValueError, r"X has values too large for float32"),
    # --- Y
    ("Y-outputs", lambda: m2m().loss_and_grad(X_OK, np.zeros((B, T, 3))), ValueError,
     r"Y must have shape \(2, 5, 2\) for this model \(return_sequences=True, "
     r"output_size=2\); got \(2, 5, 3\)"),
    ("Y-time", lambda: m2m().loss_and_grad(X_OK, np.zeros((B, T + 1, O))), ValueError,
     r"Y must have shape \(2, 5, 2\).*got \(2, 6, 2\)"),
    ("Y-batch", lambda: m2m().loss_and_grad(X_OK, np.zeros((B + 1, T, O))), ValueError,
     r"Y must have shape \(2, 5, 2\).*got \(3, 5, 2\)"),
    ("Y-ndim", lambda: m2m().loss_and_grad(X_OK, np.zeros((B, O))), ValueError,
     r"Y must have shape \(2, 5, 2\).*got \(2, 2\)"),
    ("Y-many-to-one", lambda: m2o().loss_and_grad(X_OK, Y_OK), ValueError,
     r"Y must have shape \(2, 2\) for this model \(return_sequences=False.*got \(2, 5, 2\)"),
    ("Y-unbatched", lambda: m2m().loss_and_grad(X_OK[0], Y_OK), ValueError,
     r"Y must have shape \(5, 2\).*got \(2, 5, 2\)"),
    ("Y-unbatched-many-to-one", lambda: m2o().loss_and_grad(X_OK[0], np.zeros((1, O))),
     ValueError, r"Y must have shape \(2,\).*got \(1, 2\)"),
    ("Y-strings", lambda: m2m().loss_and_grad(X_OK, Y_OK.astype(str)), TypeError,
     r"Y must hold real numbers"),
    ("Y-complex", lambda: m2m().loss_and_grad(X_OK, Y_OK * 1j), TypeError,
     r"Y must hold real numbers"),
    ("Y-ragged-list", lambda: m2o().loss_and_grad(X_OK, [[1.0, 2.0], [3.0]]), TypeError,
     r"Y must be an array of real numbers with a regular shape"),
    ("Y-nan", lambda: m2m().loss_and_grad(X_OK, with_value(Y_OK, (1, 4, 1), np.nan)),
     ValueError, r"Y contains NaN or inf"),
    ("Y-inf-many-to-one", lambda: m2o().loss_and_grad(X_OK, [[0.0, np.inf], [0.0, 0.0]]),
     ValueError, r"Y contains NaN or inf"),
    ("Y-nan-at-valid-step-ragged",
     lambda: m2m().loss_and_grad(X_OK, with_value(Y_OK, (1, 2, 0), np.nan), lengths=[5, 3]),
     ValueError, r"Y contains NaN or inf at a valid step"),
    ("Y-overflows-float32", lambda: m2m("float32").loss_and_grad(X_OK, with_value(Y_OK, 0, 1e39)),
     ValueError, r"Y has values too large for float32"),
    # --- h0
    ("h0-layers", lambda: m2m().forward(X_OK, np.zeros((1, B, H))), ValueError,
     r"h0 must have shape \(2, 2, 4\) \(num_layers, batch, hidden_size\); got \(1, 2, 4\)"),
    ("h0-batch", lambda: m2m().forward(X_OK, np.zeros((L, 1, H))), ValueError,
     r"h0 must have shape \(2, 2, 4\).*got \(2, 1, 4\)"),
    ("h0-hidden", lambda: m2m().loss_and_grad(X_OK, Y_OK, np.zeros((L, B, H + 1))), ValueError,
     r"h0 must have shape \(2, 2, 4\).*got \(2, 2, 5\)"),
    ("h0-ndim", lambda: m2m().forward(X_OK, np.zeros((L, H))), ValueError,
     r"h0 must have shape \(2, 2, 4\).*got \(2, 4\)"),
    ("h0-unbatched", lambda: m2m().forward(X_OK[0], np.zeros((L, 1, H))), ValueError,
     r"h0 must have shape \(2, 4\) \(num_layers, hidden_size\); got \(2, 1, 4\)"),
    ("h0-forecast", lambda: m2m().forecast(X_OK, 2, h0=np.zeros((L, B)), feedback=[0, 1]),
     ValueError, r"h0 must have shape \(2, 2, 4\)"),
    ("h0-strings", lambda: m2m().forward(X_OK, H0_OK.astype(str)), TypeError,
     r"h0 must hold real numbers"),
    ("h0-ragged-list", lambda: m2m().forward(X_OK[0], [[0.0] * H, [0.0]]), TypeError,
     r"h0 must be an array of real numbers"),
    ("h0-nan", lambda: m2m().forward(X_OK, with_value(H0_OK, (1, 0, 3), np.nan)), ValueError,
     r"h0 contains NaN or inf"),
    ("h0-inf-loss", lambda: m2m().loss_and_grad(X_OK, Y_OK, with_value(H0_OK, 0, np.inf)),
     ValueError, r"h0 contains NaN or inf"),
    ("h0-nan-forecast", lambda: m2m().forecast(X_OK, 2, h0=with_value(H0_OK, 0, np.nan),
                                               feedback=[0, 1]),
     ValueError, r"h0 contains NaN or inf"),
    ("h0-overflows-float32", lambda: m2m("float32").forward(X_OK, with_value(H0_OK, 0, -1e39)),
     ValueError, r"h0 has values too large for float32"),
    # --- lengths
    ("lengths-shape", lambda: m2m().forward(X_OK, lengths=[5, 5, 5]), ValueError,
     r"lengths must have shape \(2,\), one per sequence; got \(3,\)"),
    ("lengths-2d", lambda: m2m().forward(X_OK, lengths=[[5, 5]]), ValueError,
     r"lengths must have shape \(2,\).*got \(1, 2\)"),
    ("lengths-zero", lambda: m2m().forward(X_OK, lengths=[5, 0]), ValueError,
     r"lengths must lie in \[1, 5\] .*got values from 0 to 5"),
    ("lengths-too-long", lambda: m2m().loss_and_grad(X_OK, Y_OK, lengths=[6, 2]), ValueError,
     r"lengths must lie in \[1, 5\]"),
    ("lengths-negative", lambda: m2m().predict(X_OK, lengths=[-1, 2]), ValueError,
     r"lengths must lie in \[1, 5\]"),
    ("lengths-unbatched", lambda: m2m().forward(X_OK[0], lengths=[1, 2]), ValueError,
     r"lengths must have shape \(1,\)"),
    ("lengths-fraction", lambda: m2m().forward(X_OK, lengths=[2.5, 5]), TypeError,
     r"lengths must hold whole numbers"),
    ("lengths-nan", lambda: m2m().forward(X_OK, lengths=[np.nan, 5]), TypeError,
     r"lengths must hold whole numbers"),
    ("lengths-bool", lambda: m2m().forward(X_OK, lengths=[True, True]), TypeError,
     r"lengths must hold whole numbers.*booleans"),
    ("lengths-strings", lambda: m2m().forward(X_OK, lengths=["5", "5"]), TypeError,
     r"lengths must hold real numbers"),
    # --- set_weights
    ("weights-Wxh-transposed", _wrong_weight("layers.0.Wxh", (I, H)), ValueError,
     r"weights\['layers.0.Wxh'\] must have shape \(4, 3\); got \(3, 4\)"),
    ("weights-upper-Wxh", _wrong_weight("layers.1.Wxh", (H, I)), ValueError,
     r"weights\['layers.1.Wxh'\] must have shape \(4, 4\); got \(4, 3\)"),
    ("weights-Whh", _wrong_weight("layers.1.Whh", (H, H, 1)), ValueError,
     r"weights\['layers.1.Whh'\] must have shape \(4, 4\); got \(4, 4, 1\)"),
    ("weights-bh", _wrong_weight("layers.0.bh", (H + 1,)), ValueError,
     r"weights\['layers.0.bh'\] must have shape \(4,\); got \(5,\)"),
    ("weights-Why", _wrong_weight("Why", (H, O)), ValueError,
     r"weights\['Why'\] must have shape \(2, 4\); got \(4, 2\)"),
    ("weights-by-scalar", _wrong_weight("by", ()), ValueError,
     r"weights\['by'\] must have shape \(2,\); got \(\)"),
    ("weights-scalar-for-one-output", lambda: elman.RNN(I, H, 1).set_weights(
        {**elman.RNN(I, H, 1).get_weights(), "by": 0.5}), ValueError,
     r"weights\['by'\] must have shape \(1,\); got \(\)"),
    ("weights-nan", lambda: m2m().set_weights(
        {k: v * np.nan for k, v in m2m().get_weights().items()}), ValueError,
     r"weights\['layers.0.Wxh'\] contains NaN or inf"),
    ("weights-overflow-float32", lambda: m2m("float32").set_weights(
        {k: v * 1e40 for k, v in m2m().get_weights().items()}), ValueError,
     r"weights\['layers.0.Wxh'\] has values too large for float32"),
    ("weights-not-a-dict", lambda: m2m().set_weights(None), TypeError,
     r"weights must be a dict of arrays; got NoneType"),
    # --- constructor
    ("input_size-zero", lambda: elman.RNN(0, H, O), ValueError, r"input_size must be >= 1; got 0"),
    ("hidden_size-negative", lambda: elman.RNN(I, -3, O), ValueError,
     r"hidden_size must be >= 1; got -3"),
    ("output_size-zero", lambda: elman.RNN(I, H, 0), ValueError, r"output_size must be >= 1"),
    ("num_layers-zero", lambda: elman.RNN(I, H, O, num_layers=0), ValueError,
     r"num_layers must be >= 1"),
    ("hidden_size-float", lambda: elman.RNN(I, 4.0, O), TypeError,
     r"hidden_size must be an integer; got float 4.0"),
    ("input_size-bool", lambda: elman.RNN(True, H, O), TypeError,
     r"input_size must be an integer; got bool True"),
    ("output_size-string", lambda: elman.RNN(I, H, "2"), TypeError,
     r"output_size must be an integer; got str"),
    ("num_layers-float", lambda: elman.RNN(I, H, O, num_layers=1.5), TypeError,
     r"num_layers must be an integer"),
    ("dtype-int32", lambda: elman.RNN(I, H, O, dtype="int32"), TypeError,
     r"dtype must be float32 or float64; got int32"),
    ("dtype-float16", lambda: elman.RNN(I, H, O, dtype="float16"), TypeError,
     r"dtype must be float32 or float64; got float16"),
    ("dtype-numpy-int", lambda: elman.RNN(I, H, O, dtype=np.int64), TypeError,
     r"dtype must be float32 or float64; got int64"),
    ("dtype-complex", lambda: elman.RNN(I, H, O, dtype=np.complex128), TypeError,
     r"dtype must be float32 or float64"),
    ("dtype-nonsense", lambda: elman.RNN(I, H, O, dtype="double-ish"), TypeError,
     r"dtype must be float32 or float64; got 'double-ish'"),
    ("init-unknown", lambda: elman.RNN(I, H, O, init="xavier"), ValueError,
     r"init must be one of \('uniform', 'normal', 'orthogonal', 'identity'\); got 'xavier'"),
    ("init-none", lambda: elman.RNN(I, H, O, init=None), ValueError, r"init must be one of"),
    ("init_scale-zero", lambda: elman.RNN(I, H, O, init="normal", init_scale=0.0), ValueError,
     r"init_scale must be > 0"),
    ("init_scale-nan", lambda: elman.RNN(I, H, O, init="normal", init_scale=np.nan),
     ValueError, r"init_scale must be finite"),
    ("init_scale-bool", lambda: elman.RNN(I, H, O, init="normal", init_scale=True), TypeError,
     r"init_scale must be a real number"),
    ("spectral_radius-negative", lambda: elman.RNN(I, H, O, spectral_radius=-1.0), ValueError,
     r"spectral_radius must be > 0"),
    ("spectral_radius-string", lambda: elman.RNN(I, H, O, spectral_radius="1"), TypeError,
     r"spectral_radius must be a real number"),
    ("return_sequences-int", lambda: elman.RNN(I, H, O, return_sequences=1), TypeError,
     r"return_sequences must be True or False"),
    ("seed-negative", lambda: elman.RNN(I, H, O, seed=-1), ValueError, r"seed must be >= 0"),
    ("seed-float", lambda: elman.RNN(I, H, O, seed=1.5), TypeError, r"seed must be an integer"),
    # --- other arguments
    ("predict-batch_size-zero", lambda: m2m().predict(X_OK, batch_size=0), ValueError,
     r"batch_size must be >= 1"),
    ("predict-batch_size-float", lambda: m2m().predict(X_OK, batch_size=2.0), TypeError,
     r"batch_size must be an integer"),
]


@pytest.fixture
def kernel_calls(monkeypatch):
    """Records every request for a kernel module made while the test runs."""
    calls = []
    original = _backend.get_kernels

    def spy(name=None):
        calls.append(name)
        return original(name)

    monkeypatch.setattr(_backend, "get_kernels", spy)
    return calls


@pytest.mark.parametrize("case_id, call, error, match", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_rejected_before_the_kernels(case_id, call, error, match, backend,
                                                  kernel_calls):
    with warnings.catch_warnings():
        # No warning on the way to the error: under -W error it would replace it.
        warnings.simplefilter("error")
        with pytest.raises(error, match=match) as info:
            call()
    # Exactly the promised type (ValueError subclasses like UnicodeError would not do).
    assert type(info.value) is error
    assert kernel_calls == [], "a kernel was reached before the input was rejected"
    for name, value in (("X", X_OK), ("Y", Y_OK), ("h0", H0_OK)):
        assert np.array_equal(value, _SAVED[name]), f"{name} was modified"


def test_kernel_spy_sees_good_calls(backend, kernel_calls):
    """The spy above is not blind: a valid call does reach the kernels."""
    m2m().forward(X_OK)
    assert kernel_calls


def test_both_backends_reject_alike(both_backends):
    def outcomes():
        results = []
        for _, call, _, _ in BAD_CALLS:
            try:
                call()
            except (ValueError, TypeError) as exc:
                results.append((type(exc), str(exc)))
            else:
                results.append(None)
        return results

    compiled, twin = both_backends(outcomes)
    assert None not in twin
    assert compiled == twin


# -------------------------------------------------- inputs that are accepted
def _variants(array, rng):
    """The same values as non-contiguous, Fortran-order, reversed and read-only arrays."""
    reversed_source = np.ascontiguousarray(array[..., ::-1])
    padded = np.zeros(array.shape[:-1] + (3 * array.shape[-1],))
    padded[..., ::3] = array
    read_only = array.copy()
    read_only.flags.writeable = False
    return {
        "strided": padded[..., ::3],
        "fortran": np.asfortranarray(array),
        "negative-stride": reversed_source[..., ::-1],
        "transposed-view": np.ascontiguousarray(np.moveaxis(array, -1, 0)).transpose(
            tuple(range(1, array.ndim)) + (0,)),
        "read-only": read_only,
        "list": array.tolist(),
    }


def test_layout_variants_give_the_contiguous_result(backend):
    rng = np.random.default_rng(1)
    model = m2m()
    lengths = np.array([5, 3])
    expected_out, expected_h = model.forward(X_OK, H0_OK, return_state=True, lengths=lengths)
    expected_loss, expected_grads = model.loss_and_grad(X_OK, Y_OK, H0_OK, lengths=lengths)
    future = rng.normal(size=(B, 3, I))
    expected_forecast = model.forecast(X_OK, 4, h0=H0_OK, feedback=[0, 1], future=future)
    variants = {name: (x, y, h, f) for (name, x), y, h, f in zip(
        _variants(X_OK, rng).items(), _variants(Y_OK, rng).values(),
        _variants(H0_OK, rng).values(), _variants(future, rng).values())}
    for name, (X, Y, h0, fut) in variants.items():
        if name != "list":
            assert np.array_equal(X, X_OK) and np.array_equal(h0, H0_OK)
            assert not (X.flags.c_contiguous and X.flags.writeable)
        out, h = model.forward(X, h0, return_state=True, lengths=lengths)
        assert np.array_equal(out, expected_out) and np.array_equal(h, expected_h), name
        loss, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
        assert loss == expected_loss, name
        assert all(np.array_equal(grads[k], expected_grads[k]) for k in grads), name
        assert np.array_equal(model.predict(X, lengths=lengths),
                              model.predict(X_OK, lengths=lengths)), name
        assert np.array_equal(model.forecast(X, 4, h0=h0, feedback=[0, 1], future=fut),
                              expected_forecast), name


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_, np.float32])
def test_integer_and_other_real_arrays_are_converted(dtype, backend):
    rng = np.random.default_rng(2)
    X = rng.integers(0, 3, size=(B, T, I)).astype(dtype)
    Y = rng.integers(0, 3, size=(B, T, O)).astype(dtype)
    h0 = rng.integers(0, 2, size=(L, B, H)).astype(dtype)
    lengths = np.array([4, 5], dtype=np.int32 if dtype != np.float32 else np.float32)
    model = m2m()
    as_float = (X.astype(np.float64), Y.astype(np.float64), h0.astype(np.float64))
    out = model.forward(X, h0, lengths=lengths)
    assert out.dtype == np.float64
    assert np.array_equal(out, model.forward(as_float[0], as_float[2], lengths=[4, 5]))
    loss, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
    loss_f, grads_f = model.loss_and_grad(*as_float, lengths=[4, 5])
    assert loss == loss_f and all(np.array_equal(grads[k], grads_f[k]) for k in grads)


def test_float64_input_into_float32_model(backend):
    model = m2m("float32")
    out = model.forward(X_OK, H0_OK)
    assert out.dtype == np.float32
    assert np.array_equal(out, model.forward(X_OK.astype(np.float32), H0_OK.astype(np.float32)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("hidden", [4, 64])  # both compiled dispatch regimes (batch 24)
def test_callers_arrays_are_never_mutated(hidden, dtype, backend):
    rng = np.random.default_rng(3)
    batch = 24
    model = elman.RNN(I, hidden, O, num_layers=L, seed=1, dtype=dtype)
    # C-contiguous, in the model's dtype: the arrays elman could use without copying.
    X = rng.normal(size=(batch, T, I)).astype(dtype)
    Y = rng.normal(size=(batch, T, O)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=batch).astype(np.intp)
    Y[np.arange(T)[None, :] >= lengths[:, None]] = np.nan
    Y_m2o = rng.normal(size=(batch, O)).astype(dtype)
    h0 = (rng.normal(size=(L, batch, hidden)) * 0.5).astype(dtype)
    future = rng.normal(size=(batch, 3, I)).astype(dtype)
    future[:, :, 0] = np.nan  # fed back, so ignored
    weights = model.get_weights()
    grads_in = {k: rng.normal(size=v.shape).astype(dtype) for k, v in weights.items()}
    inputs = dict(X=X, Y=Y, Y_m2o=Y_m2o, lengths=lengths, h0=h0, future=future,
                  **{f"weights[{k}]": v for k, v in weights.items()},
                  **{f"grads[{k}]": v for k, v in grads_in.items()})
    saved = {k: v.copy() for k, v in inputs.items()}

    model.forward(X, h0, return_state=True, lengths=lengths)
    model.forward(X[0], h0[:, 0], return_state=True)
    model.loss_and_grad(X, Y, h0, lengths=lengths)
    model.predict(X, batch_size=5, lengths=lengths)
    model.forecast(X, 4, h0=h0, feedback=[0, -1], future=future, return_state=True)
    model.set_weights(weights)
    optimizers.Adam(lr=0.1).step(model, grads_in)
    many_to_one = elman.RNN(I, hidden, O, num_layers=L, return_sequences=False, seed=1,
                            dtype=dtype)
    many_to_one.loss_and_grad(X, Y_m2o, h0, lengths=lengths)

    for name, value in inputs.items():
        assert np.array_equal(value, saved[name], equal_nan=True), f"{name} was modified"
