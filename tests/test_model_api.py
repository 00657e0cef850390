"""The public API of elman.RNN and elman.optimizers: shapes, copies, validation,
seeds, initialisation schemes, prediction, forecasts, pickling, optimizer steps and
gradient clipping. Expected values are computed here, independently of elman."""

import copy
import math
import pickle

import numpy as np
import pytest

import elman
from elman import optimizers

SIZES = dict(input_size=3, hidden_size=5, output_size=2)


def make_model(num_layers=1, return_sequences=True, dtype="float64", seed=0, **kwargs):
    return elman.RNN(SIZES["input_size"], SIZES["hidden_size"], SIZES["output_size"],
                     num_layers=num_layers, return_sequences=return_sequences, dtype=dtype,
                     seed=seed, **kwargs)


def weights_equal(a, b):
    return set(a) == set(b) and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------- shapes
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_shapes_and_dtypes_of_every_return(num_layers, return_sequences, dtype, backend):
    B, T, I, H, O, L = 4, 6, 3, 5, 2, num_layers
    model = make_model(num_layers, return_sequences, dtype)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(B, T, I))  # float64 input into a float32 model too
    per_step = (T, O) if return_sequences else (O,)

    Y = model.forward(X)
    assert Y.shape == (B,) + per_step and Y.dtype == np.dtype(dtype)
    Y, h = model.forward(X, return_state=True)
    assert Y.shape == (B,) + per_step and h.shape == (L, B, H) and h.dtype == np.dtype(dtype)
    Y1, h1 = model.forward(X[0], return_state=True)
    assert Y1.shape == per_step and h1.shape == (L, H)
    assert model.forward(X[0]).shape == per_step

    targets = rng.normal(size=(B,) + per_step)
    loss, grads = model.loss_and_grad(X, targets)
    assert type(loss) is float
    weights = model.get_weights()
    assert list(grads) == list(weights)
    for name in weights:
        assert grads[name].shape == weights[name].shape
        assert grads[name].dtype == weights[name].dtype == np.dtype(dtype)
    loss1, grads1 = model.loss_and_grad(X[0], targets[0])
    assert type(loss1) is float and {k: v.shape for k, v in grads1.items()} == \
        {k: v.shape for k, v in weights.items()}

    assert model.predict(X).shape == (B,) + per_step
    assert model.predict(X[0]).shape == per_step

    F, hf = model.forecast(X, 4, feedback=[0, 1], return_state=True,
                              future=rng.normal(size=(B, 3, I)))
    assert F.shape == (B, 4, O) and hf.shape == (L, B, H) and F.dtype == np.dtype(dtype)
    F1 = model.forecast(X[0], 4, feedback=[0, 1], future=rng.normal(size=(3, I)))
    assert F1.shape == (4, O)


def test_weight_names_and_shapes():
    model = elman.RNN(3, 5, 2, num_layers=3)
    expected = {"Why": (2, 5), "by": (2,)}
    for layer in range(3):
        expected[f"layers.{layer}.Wxh"] = (5, 3 if layer == 0 else 5)
        expected[f"layers.{layer}.Whh"] = (5, 5)
        expected[f"layers.{layer}.bh"] = (5,)
    assert {k: v.shape for k, v in model.get_weights().items()} == expected
    assert model.n_params == sum(math.prod(s) for s in expected.values())


def test_empty_batch(backend):
    model = make_model(num_layers=2)
    X = np.empty((0, 4, 3))
    Y, h = model.forward(X, return_state=True)
    assert Y.shape == (0, 4, 2) and h.shape == (2, 0, 5)
    assert model.predict(X).shape == (0, 4, 2)
    with pytest.raises(ValueError, match="batch"):
        model.loss_and_grad(X, np.empty((0, 4, 2)))


# --------------------------------------------------------------- unbatched
@pytest.mark.parametrize("return_sequences", [True, False])
def test_unbatched_is_exactly_a_batch_of_one(return_sequences, backend):
    model = make_model(num_layers=2, return_sequences=return_sequences, seed=3)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(7, 3))
    h0 = rng.normal(size=(2, 5)) * 0.5
    Y = rng.normal(size=(7, 2) if return_sequences else (2,))

    out1, state1 = model.forward(X, h0, return_state=True)
    outB, stateB = model.forward(X[None], h0[:, None], return_state=True)
    assert np.array_equal(out1, outB[0]) and np.array_equal(state1, stateB[:, 0])

    out1 = model.forward(X, h0, lengths=[4])
    outB = model.forward(X[None], h0[:, None], lengths=[4])
    assert np.array_equal(out1, outB[0])

    loss1, grads1 = model.loss_and_grad(X, Y, h0)
    lossB, gradsB = model.loss_and_grad(X[None], Y[None], h0[:, None])
    assert loss1 == lossB
    assert all(np.array_equal(grads1[k], gradsB[k]) for k in grads1)

    assert np.array_equal(model.predict(X), model.predict(X[None])[0])
    future = rng.normal(size=(3, 3))
    assert np.array_equal(model.forecast(X, 4, h0=h0, feedback=[0, 2], future=future),
                          model.forecast(X[None], 4, h0=h0[:, None], feedback=[0, 2],
                                         future=future[None])[0])


# ------------------------------------------------------------- weights I/O
def test_get_weights_returns_copies(backend):
    model = make_model(num_layers=2, seed=4)
    X = np.random.default_rng(0).normal(size=(2, 5, 3))
    before_weights, before_out = model.get_weights(), model.forward(X)
    for value in model.get_weights().values():
        value[...] = 7.0
    _, grads = model.loss_and_grad(X, np.zeros((2, 5, 2)))
    for value in grads.values():
        value[...] = 7.0
    assert weights_equal(model.get_weights(), before_weights)
    assert np.array_equal(model.forward(X), before_out)
    # The flat view cannot be written either.
    with pytest.raises(ValueError):
        model.parameters[0] = 1.0


def test_set_weights_copies_and_casts(backend):
    model = make_model(dtype="float32", seed=1)
    rng = np.random.default_rng(5)
    new = {k: rng.normal(size=v.shape) for k, v in model.get_weights().items()}
    model.set_weights(new)
    got = model.get_weights()
    assert all(got[k].dtype == np.float32 and np.array_equal(got[k], new[k].astype(np.float32))
               for k in new)
    for value in new.values():
        value[...] = 0.0
    assert weights_equal(model.get_weights(), got)
    # Lists and integer arrays are accepted.
    model.set_weights({k: np.ones(v.shape, dtype=int).tolist() for k, v in got.items()})
    assert all(np.array_equal(v, np.ones_like(v)) for v in model.get_weights().values())


def _corrupt(name, bad_value):
    def build(weights):
        # Every other weight changes too, so that a partial update would show.
        changed = {k: v + 1.0 for k, v in weights.items()}
        if bad_value is _MISSING:
            del changed[name]
        else:
            changed[name] = bad_value(changed[name]) if callable(bad_value) else bad_value
        return changed
    return build


_MISSING = object()


@pytest.mark.parametrize("build, error, match", [
    (_corrupt("by", _MISSING), ValueError, r"missing \['by'\]"),
    (lambda w: {**{k: v + 1 for k, v in w.items()}, "layers.1.Wxh": np.zeros((5, 5))},
     ValueError, r"unexpected \['layers.1.Wxh'\]"),
    (_corrupt("layers.0.Wxh", lambda v: v.T), ValueError, r"weights\['layers.0.Wxh'\].*\(5, 3\)"),
    (_corrupt("by", lambda v: v[:1]), ValueError, r"weights\['by'\].*\(2,\)"),
    (_corrupt("layers.0.bh", lambda v: v[None]), ValueError, r"weights\['layers.0.bh'\]"),
    (_corrupt("by", lambda v: np.array([np.nan, 0.0])), ValueError, r"weights\['by'\].*NaN"),
    (_corrupt("Why", lambda v: np.full_like(v, np.inf)), ValueError, r"weights\['Why'\]"),
    (_corrupt("by", lambda v: np.array(["a", "b"])), TypeError, r"weights\['by'\]"),
    (_corrupt("by", lambda v: v + 1j), TypeError, r"weights\['by'\]"),
    (lambda w: list(w.values()), TypeError, "weights"),
])
def test_set_weights_validates_and_leaves_model_unchanged(build, error, match, backend):
    model = make_model(seed=2)
    X = np.random.default_rng(0).normal(size=(2, 4, 3))
    before_weights, before_out = model.get_weights(), model.forward(X)
    with pytest.raises(error, match=match):
        model.set_weights(build(model.get_weights()))
    assert weights_equal(model.get_weights(), before_weights)
    assert np.array_equal(model.forward(X), before_out)


# ------------------------------------------------------- seeds and schemes
@pytest.mark.parametrize("init, extra", [
    ("uniform", {}), ("normal", {}), ("orthogonal", {"init_scale": 0.7}),
    ("identity", {}), ("uniform", {"spectral_radius": 0.9}),
    ("orthogonal", {"spectral_radius": 1.1}),
])
def test_seed_reproducibility(init, extra):
    kwargs = dict(num_layers=2, init=init, **extra)
    a = make_model(seed=123, **kwargs).get_weights()
    b = make_model(seed=123, **kwargs).get_weights()
    assert weights_equal(a, b)
    c = make_model(seed=124, **kwargs).get_weights()
    assert not np.array_equal(a["layers.0.Wxh"], c["layers.0.Wxh"])
    single = make_model(seed=123, dtype="float32", **kwargs).get_weights()
    assert weights_equal(single, {k: v.astype(np.float32) for k, v in a.items()})
    # Without a seed, two models differ.
    d = make_model(seed=None, **kwargs).get_weights()
    e = make_model(seed=None, **kwargs).get_weights()
    assert not np.array_equal(d["layers.0.Wxh"], e["layers.0.Wxh"])


def test_uniform_init_bounds():
    H = 60
    weights = elman.RNN(4, H, 3, num_layers=2, seed=0).get_weights()
    bound = 1 / math.sqrt(H)
    values = np.concatenate([v.ravel() for v in weights.values()])
    assert np.all(np.abs(values) <= bound)
    assert np.max(values) > 0.98 * bound and np.min(values) < -0.98 * bound
    # Every array is filled, biases included (PyTorch's default).
    for name, value in weights.items():
        assert np.std(value) > 0.4 * bound, name
    assert abs(np.std(values) - bound / math.sqrt(3)) < 0.03 * bound


@pytest.mark.parametrize("scale", [None, 0.3])
def test_normal_init(scale):
    H = 120
    kwargs = {} if scale is None else {"init_scale": scale}
    weights = elman.RNN(30, H, 20, num_layers=2, init="normal", seed=1, **kwargs).get_weights()
    expected = 0.01 if scale is None else scale
    for name, value in weights.items():
        if name.endswith("bh") or name == "by":
            assert not np.any(value), name
        else:
            assert abs(np.std(value) / expected - 1) < 0.05, name
            assert abs(np.mean(value)) < 0.05 * expected, name


@pytest.mark.parametrize("scale", [None, 0.5])
def test_orthogonal_init(scale):
    H = 16
    kwargs = {} if scale is None else {"init_scale": scale}
    weights = elman.RNN(3, H, 2, num_layers=2, init="orthogonal", seed=2, **kwargs).get_weights()
    s = 1.0 if scale is None else scale
    for layer in range(2):
        Whh = weights[f"layers.{layer}.Whh"]
        np.testing.assert_allclose(Whh.T @ Whh, s * s * np.eye(H), rtol=0, atol=1e-12)
        np.testing.assert_allclose(Whh @ Whh.T, s * s * np.eye(H), rtol=0, atol=1e-12)
    assert np.all(np.abs(weights["layers.0.Wxh"]) <= 1 / math.sqrt(H))


@pytest.mark.parametrize("scale", [None, 0.8])
def test_identity_init(scale):
    H = 100
    kwargs = {} if scale is None else {"init_scale": scale}
    weights = elman.RNN(50, H, 40, num_layers=2, init="identity", seed=3, **kwargs).get_weights()
    s = 1.0 if scale is None else scale
    for layer in range(2):
        assert np.array_equal(weights[f"layers.{layer}.Whh"], s * np.eye(H))
        assert not np.any(weights[f"layers.{layer}.bh"])
        assert abs(np.std(weights[f"layers.{layer}.Wxh"]) / 0.001 - 1) < 0.05
    assert not np.any(weights["by"])
    assert abs(np.std(weights["Why"]) / 0.001 - 1) < 0.05


@pytest.mark.parametrize("init", ["uniform", "normal", "orthogonal", "identity"])
@pytest.mark.parametrize("radius", [0.5, 1.2])
def test_spectral_radius_is_achieved(init, radius):
    weights = elman.RNN(2, 12, 1, num_layers=2, init=init, spectral_radius=radius,
                        seed=4).get_weights()
    for layer in range(2):
        eigenvalues = np.linalg.eigvals(weights[f"layers.{layer}.Whh"])
        assert abs(np.max(np.abs(eigenvalues)) - radius) < 1e-10 * radius


# --------------------------------------------------------- forward semantics
def test_default_h0_is_zeros_and_state_streams(backend, assert_close):
    model = make_model(num_layers=2, seed=5)
    X = np.random.default_rng(2).normal(size=(3, 9, 3))
    full, h_full = model.forward(X, return_state=True)
    zeros, h_zeros = model.forward(X, np.zeros((2, 3, 5)), return_state=True)
    assert np.array_equal(full, zeros) and np.array_equal(h_full, h_zeros)
    first, h = model.forward(X[:, :4], return_state=True)
    second, h = model.forward(X[:, 4:], h, return_state=True)
    assert_close(np.concatenate([first, second], axis=1), full, what="streamed outputs")
    assert_close(h, h_full, what="streamed state")


@pytest.mark.parametrize("return_sequences", [True, False])
def test_lengths_equal_truncated_sequences(return_sequences, backend, assert_close):
    model = make_model(num_layers=2, return_sequences=return_sequences, seed=6)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 6, 3))
    h0 = rng.normal(size=(2, 4, 5)) * 0.5
    lengths = np.array([6, 1, 3, 5])
    out, h = model.forward(X, h0, return_state=True, lengths=lengths)
    for b, n in enumerate(lengths):
        out_b, h_b = model.forward(X[b, :n], h0[:, b], return_state=True)
        if return_sequences:
            assert_close(out[b, :n], out_b, what=f"outputs of sequence {b}")
            assert not np.any(out[b, n:])
        else:
            assert_close(out[b], out_b, what=f"output of sequence {b}")
        assert_close(h[:, b], h_b, what=f"state of sequence {b}")
    # Inputs at padded steps do not matter.
    X2 = X.copy()
    X2[np.arange(6)[None, :] >= lengths[:, None]] = 99.0
    out2, h2 = model.forward(X2, h0, return_state=True, lengths=lengths)
    assert np.array_equal(out2, out) and np.array_equal(h2, h)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_predict_in_batches_equals_forward(return_sequences, backend, assert_close):
    model = make_model(num_layers=2, return_sequences=return_sequences, seed=7)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(10, 5, 3))
    lengths = rng.integers(1, 6, size=10)
    for batch_size in (1, 3, 10, 4096):
        assert_close(model.predict(X, batch_size=batch_size), model.forward(X),
                     what=f"predict batch_size={batch_size}")
        assert_close(model.predict(X, batch_size=batch_size, lengths=lengths),
                     model.forward(X, lengths=lengths), what="predict with lengths")


# ----------------------------------------------------------------- forecast
def manual_forecast(model, history, steps, h0=None, feedback=None, future=None):
    """The streaming pattern: forward on the history, then one forward call per step."""
    outputs, h = model.forward(history, h0, return_state=True)
    y = outputs[:, -1] if model.return_sequences else outputs
    if feedback is None:
        feedback = list(range(model.output_size))
    forecasts = [y]
    for s in range(1, steps):
        x = (np.zeros((history.shape[0], model.input_size)) if future is None
             else future[:, s - 1].copy())
        for o, column in enumerate(feedback):
            if column is not None and column >= 0:
                x[:, column] = y[:, o]
        outputs, h = model.forward(x[:, None, :], h, return_state=True)
        y = outputs[:, -1] if model.return_sequences else outputs
        forecasts.append(y)
    return np.stack(forecasts, axis=1), h


@pytest.mark.parametrize("return_sequences", [True, False])
def test_forecast_one_step_is_last_step_of_forward(return_sequences, backend, assert_close):
    model = elman.RNN(2, 6, 2, num_layers=2, return_sequences=return_sequences, seed=8)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, 7, 2))
    h0 = rng.normal(size=(2, 3, 6)) * 0.5
    out, h = model.forward(X, h0, return_state=True)
    F, hf = model.forecast(X, 1, h0=h0, return_state=True)
    assert F.shape == (3, 1, 2)
    assert_close(F[:, 0], out[:, -1] if return_sequences else out, what="forecast(h, 1)")
    assert_close(hf, h, what="state after forecast(h, 1)")


FORECAST_CASES = {
    # input_size, output_size, num_layers, return_sequences, feedback, with future
    "univariate-default-feedback": (1, 1, 1, True, None, False),
    "exogenous-columns": (3, 1, 2, True, [0], True),
    "one-output-not-fed": (3, 2, 1, True, [2, -1], True),
    "none-means-not-fed": (2, 2, 3, True, [None, 0], True),
    "swapped-columns": (2, 2, 1, True, [1, 0], False),
    "many-to-one": (2, 2, 2, False, None, False),
}


@pytest.mark.parametrize("case", list(FORECAST_CASES))
def test_forecast_matches_streaming_loop(case, backend, assert_close):
    I, O, L, return_sequences, feedback, with_future = FORECAST_CASES[case]
    model = elman.RNN(I, 4, O, num_layers=L, return_sequences=return_sequences, seed=9)
    model.set_weights({k: 1.5 * v for k, v in model.get_weights().items()})
    rng = np.random.default_rng(6)
    B, T, S = 2, 5, 4
    history = rng.normal(size=(B, T, I))
    h0 = rng.normal(size=(L, B, 4)) * 0.5
    future = rng.normal(size=(B, S - 1, I)) if with_future else None
    if with_future:
        for column in feedback:
            if column is not None and column >= 0:
                future[:, :, column] = np.nan  # fed back: ignored
    expected, h_expected = manual_forecast(model, history, S, h0, feedback, future)
    got, h = model.forecast(history, S, h0=h0, feedback=feedback, future=future,
                            return_state=True)
    assert_close(got, expected, what="forecasts")
    assert_close(h, h_expected, what="final state")
    assert np.std(got[:, 1:]) > 1e-3  # the forecast really moves


def test_forecast_by_hand(backend):
    """One unit, weights chosen by hand, every step written out with math.tanh."""
    model = elman.RNN(1, 1, 1, seed=0)
    model.set_weights({"layers.0.Wxh": [[0.5]], "layers.0.Whh": [[-0.3]],
                       "layers.0.bh": [0.1], "Why": [[2.0]], "by": [-0.2]})
    h = 0.0
    for x in (1.0, 2.0):
        h = math.tanh(0.5 * x - 0.3 * h + 0.1)
    expected = [2.0 * h - 0.2]
    for _ in range(2):
        h = math.tanh(0.5 * expected[-1] - 0.3 * h + 0.1)
        expected.append(2.0 * h - 0.2)
    got, state = model.forecast([[1.0], [2.0]], 3, return_state=True)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(state, [[h]], rtol=1e-14, atol=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(steps=3, feedback=[0]), ValueError, r"columns \[1, 2\].*future="),
    (dict(steps=3, feedback=[0, 1]), ValueError, r"feedback must have one entry per output"),
    (dict(steps=3, feedback=[]), ValueError, r"feedback must have one entry"),
    (dict(steps=3, feedback=[0, 0], output_size=2), ValueError, r"feedback feeds one input column from two"),
    (dict(steps=3, feedback=[3]), ValueError, r"feedback\[0\] must be <= 2"),
    (dict(steps=3, feedback=[-2]), ValueError, r"feedback\[0\] must be >= -1"),
    (dict(steps=3, feedback=[1.0]), TypeError, r"feedback\[0\] must be an integer"),
    (dict(steps=3, feedback=None), ValueError, r"feedback must be given"),
    (dict(steps=3, feedback=[0], future=np.zeros((2, 3, 3))), ValueError, r"future must have shape \(2, 2, 3\)"),
    (dict(steps=3, feedback=[0], future=np.full((2, 2, 3), np.nan)), ValueError, r"future contains NaN"),
    (dict(steps=3, feedback=[0], future=np.full((2, 2, 3), "x")), TypeError, r"future"),
    (dict(steps=0, feedback=[0]), ValueError, r"steps must be >= 1"),
    (dict(steps=2.0, feedback=[0]), TypeError, r"steps must be an integer"),
])
def test_forecast_errors(kwargs, error, match, backend):
    kwargs = dict(kwargs)
    O = kwargs.pop("output_size", 1)
    model = elman.RNN(3, 4, O, seed=0)
    history = np.random.default_rng(0).normal(size=(2, 5, 3))
    steps = kwargs.pop("steps")
    with pytest.raises(error, match=match):
        model.forecast(history, steps, **kwargs)


def test_forecast_one_step_needs_no_future(backend):
    model = elman.RNN(3, 4, 1, seed=0)
    history = np.random.default_rng(0).normal(size=(2, 5, 3))
    assert model.forecast(history, 1, feedback=[0]).shape == (2, 1, 1)


# ----------------------------------------------------------------- pickling
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pickle_round_trip(dtype, backend):
    model = make_model(num_layers=2, return_sequences=False, dtype=dtype, seed=10,
                       init="orthogonal", spectral_radius=0.9)
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(3, 5, 3)), rng.normal(size=(3, 2))
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert clone.get_config() == model.get_config()
        assert weights_equal(clone.get_weights(), model.get_weights())
        assert np.array_equal(clone.predict(X), model.predict(X))
        loss, grads = clone.loss_and_grad(X, Y)
        loss0, grads0 = model.loss_and_grad(X, Y)
        assert loss == loss0 and weights_equal(grads, grads0)
        assert clone._training_lock is not model._training_lock
        assert clone._training_lock.acquire(blocking=False)
        clone._training_lock.release()


# --------------------------------------------------------------- optimizers
def _random_grads(model, rng):
    return {k: rng.normal(size=v.shape) for k, v in model.get_weights().items()}


def hand_sgd(weights, grads_seq, lr, momentum=0.0, weight_decay=0.0):
    weights = {k: v.copy() for k, v in weights.items()}
    velocity = {k: np.zeros_like(v) for k, v in weights.items()}
    for grads in grads_seq:
        for k in weights:
            g = grads[k] + weight_decay * weights[k]
            if momentum:
                velocity[k] = momentum * velocity[k] + g
                g = velocity[k]
            weights[k] = weights[k] - lr * g
    return weights


def hand_adam(weights, grads_seq, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    weights = {k: v.copy() for k, v in weights.items()}
    m = {k: np.zeros_like(v) for k, v in weights.items()}
    v = {k: np.zeros_like(w) for k, w in weights.items()}
    for t, grads in enumerate(grads_seq, start=1):
        for k in weights:
            g = grads[k] + weight_decay * weights[k]
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            m_hat = m[k] / (1 - beta1 ** t)
            v_hat = v[k] / (1 - beta2 ** t)
            weights[k] = weights[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return weights


OPTIMIZER_CASES = {
    "sgd": (lambda: optimizers.SGD(lr=0.1), lambda w, g: hand_sgd(w, g, 0.1)),
    "sgd-decay": (lambda: optimizers.SGD(lr=0.05, weight_decay=0.01),
                  lambda w, g: hand_sgd(w, g, 0.05, weight_decay=0.01)),
    "momentum": (lambda: optimizers.SGD(lr=0.1, momentum=0.9),
                 lambda w, g: hand_sgd(w, g, 0.1, momentum=0.9)),
    "momentum-decay": (lambda: optimizers.SGD(lr=0.02, momentum=0.5, weight_decay=0.1),
                       lambda w, g: hand_sgd(w, g, 0.02, momentum=0.5, weight_decay=0.1)),
    "adam": (lambda: optimizers.Adam(lr=0.01), lambda w, g: hand_adam(w, g, 0.01)),
    "adam-options": (lambda: optimizers.Adam(lr=0.003, betas=(0.8, 0.99), eps=1e-3,
                                             weight_decay=0.05),
                     lambda w, g: hand_adam(w, g, 0.003, 0.8, 0.99, 1e-3, 0.05)),
}


@pytest.mark.parametrize("n_steps", [1, 4])
@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_optimizer_steps_match_formulas(case, n_steps, assert_close):
    make_optimizer, formula = OPTIMIZER_CASES[case]
    model = make_model(num_layers=2, seed=11)
    rng = np.random.default_rng(8)
    grads_seq = [_random_grads(model, rng) for _ in range(n_steps)]
    start = model.get_weights()
    expected = formula(start, grads_seq)

    # On a model, on a dict of arrays, and on one flat array.
    optimizer = make_optimizer()
    for grads in grads_seq:
        optimizer.step(model, grads)
    assert int(optimizer.step_count[0]) == n_steps
    params = {k: v.copy() for k, v in start.items()}
    dict_optimizer = make_optimizer()
    for grads in grads_seq:
        dict_optimizer.step(params, grads)
    keys = sorted(start)
    flat = np.concatenate([start[k].ravel() for k in keys])
    flat_optimizer = make_optimizer()
    for grads in grads_seq:
        flat_optimizer.step(flat, np.concatenate([grads[k].ravel() for k in keys]))
    flat_result, offset = {}, 0
    for k in keys:
        flat_result[k] = flat[offset:offset + start[k].size].reshape(start[k].shape)
        offset += start[k].size

    got = model.get_weights()
    for name in expected:
        assert not np.allclose(expected[name], start[name])  # the step did something
        assert_close(got[name], expected[name], what=f"model {name}")
        assert_close(params[name], expected[name], what=f"dict {name}")
        assert_close(flat_result[name], expected[name], what=f"flat {name}")


def test_optimizer_step_on_float32_model(assert_close):
    model = make_model(dtype="float32", seed=12)
    rng = np.random.default_rng(9)
    grads_seq = [_random_grads(model, rng) for _ in range(3)]
    start = {k: v.astype(np.float64) for k, v in model.get_weights().items()}
    optimizer = optimizers.Adam(lr=0.01, weight_decay=0.01)
    for grads in grads_seq:
        optimizer.step(model, grads)
    got = model.get_weights()
    expected = hand_adam(start, grads_seq, 0.01, weight_decay=0.01)
    for name in expected:
        assert got[name].dtype == np.float32
        assert_close(got[name], expected[name], np.float32, what=name)


def test_optimizer_does_not_mutate_grads():
    model = make_model(seed=13)
    grads = _random_grads(model, np.random.default_rng(10))
    saved = {k: v.copy() for k, v in grads.items()}
    optimizers.SGD(lr=0.1, momentum=0.9, weight_decay=0.1).step(model, grads)
    assert weights_equal(grads, saved)


# ----------------------------------------------------------------- clipping
def _grads_dict(rng, scale):
    return {"a": scale * rng.normal(size=(3, 4)), "b": scale * rng.normal(size=(5,)),
            "c": scale * rng.normal(size=(2, 2))}


def _global_norm(grads):
    return math.sqrt(sum(float(np.sum(v ** 2)) for v in grads.values()))


def test_clip_by_value():
    grads = _grads_dict(np.random.default_rng(0), 3.0)
    expected = {k: np.minimum(np.maximum(v, -2.5), 2.5) for k, v in grads.items()}
    assert any(np.any(np.abs(v) > 2.5) for v in grads.values())
    total = elman.clip_gradients(grads, value=2.5)
    for k in grads:
        assert np.array_equal(grads[k], expected[k])
    assert abs(total - _global_norm(expected)) <= 1e-12 * total


@pytest.mark.parametrize("scale, max_norm", [(5.0, 1.0), (0.01, 1.0), (1.0, 0.3)])
def test_clip_by_norm_matches_torch_definition(scale, max_norm):
    grads = _grads_dict(np.random.default_rng(1), scale)
    original = {k: v.copy() for k, v in grads.items()}
    norm = _global_norm(original)
    # torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied if < 1.
    coef = max_norm / (norm + 1e-6)
    total = elman.clip_gradients(grads, norm=max_norm)
    assert abs(total - norm) <= 1e-12 * norm
    for k in grads:
        expected = original[k] * coef if coef < 1 else original[k]
        np.testing.assert_allclose(grads[k], expected, rtol=1e-14, atol=0)
    if coef >= 1:
        assert weights_equal(grads, original)


def test_clip_norm_exactly_at_max_still_scales_by_eps():
    """At norm == max_norm the coefficient is max/(max + 1e-6) < 1, as in PyTorch."""
    grads = _grads_dict(np.random.default_rng(2), 1.0)
    norm = _global_norm(grads)
    original = {k: v.copy() for k, v in grads.items()}
    elman.clip_gradients(grads, norm=norm)
    for k in grads:
        np.testing.assert_allclose(grads[k], original[k] * norm / (norm + 1e-6),
                                   rtol=1e-14, atol=0)
        assert np.all(np.abs(grads[k]) <= np.abs(original[k]))
    assert _global_norm(grads) < norm


def test_clip_value_then_norm_and_flat_arrays():
    rng = np.random.default_rng(3)
    grads = _grads_dict(rng, 4.0)
    flat = np.concatenate([grads[k].ravel() for k in sorted(grads)])
    clipped = {k: np.clip(v, -3.0, 3.0) for k, v in grads.items()}
    norm = _global_norm(clipped)
    coef = 2.0 / (norm + 1e-6)
    assert coef < 1
    total = elman.clip_gradients(grads, value=3.0, norm=2.0)
    assert abs(total - norm) <= 1e-12 * norm
    for k in grads:
        np.testing.assert_allclose(grads[k], clipped[k] * coef, rtol=1e-14, atol=0)
    total_flat = elman.clip_gradients(flat, value=3.0, norm=2.0)
    assert abs(total_flat - norm) <= 1e-12 * norm
    np.testing.assert_allclose(
        flat, np.concatenate([clipped[k].ravel() * coef for k in sorted(clipped)]),
        rtol=1e-14, atol=0)


def test_clip_gradients_of_a_model(backend):
    model = make_model(num_layers=2, seed=14)
    rng = np.random.default_rng(4)
    _, grads = model.loss_and_grad(rng.normal(size=(2, 5, 3)), 50 * rng.normal(size=(2, 5, 2)))
    norm = _global_norm(grads)
    assert norm > 1.0
    elman.clip_gradients(grads, norm=1.0)
    assert abs(_global_norm(grads) - norm / (norm + 1e-6)) < 1e-12


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(value=0.0), ValueError, "value"),
    (dict(value=-1.0), ValueError, "value"),
    (dict(norm=float("nan")), ValueError, "norm"),
    (dict(norm="1"), TypeError, "norm"),
])
def test_clip_gradients_rejects_bad_thresholds(kwargs, error, match):
    grads = {"a": np.ones(3)}
    with pytest.raises(error, match=match):
        elman.clip_gradients(grads, **kwargs)
    assert np.array_equal(grads["a"], np.ones(3))
