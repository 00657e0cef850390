"""The gradients are the derivatives of the loss, and the loss is the model's formula.

Three independent anchors, each run on both backends:

* central finite differences of ``loss_and_grad``'s loss (float64), on every
  coordinate at small sizes and on a few random coordinates at large ones,
  including saturated tanh, many-to-one, three layers, a nonzero h0 and ragged
  batches whose padded targets are NaN;
* a forward pass written here as a plain per-step loop over the model's formulas
  (a_t = Wxh x_t + Whh h_{t-1} + bh, h_t = tanh(a_t), y_t = Why h_t + by) and the
  loss mean((y_hat - y)**2), sharing no code with elman;
* backpropagation through time written here, per sequence and per step, from the
  recurrence dh_t = Why^T dy_t + Whh^T da_{t+1}, da_t = dh_t (1 - h_t**2).
"""

import numpy as np
import pytest

import elman
from elman import _engine


# --------------------------------------------------------------- references
def reference_forward(weights, X, h0, lengths, num_layers, many_to_many):
    """Outputs, per-layer states and final states, one sequence and one step at a time.

    Returns (outputs, states, h_last): outputs[b] is a list of y_t for the valid
    steps (many-to-many) or [y_T] (many-to-one); states[b][l] is the list of h_t
    of layer l, starting with h_0; h_last (L, B, H).
    """
    Why, by = weights["Why"], weights["by"]
    batch = X.shape[0]
    outputs, states = [], []
    h_last = np.zeros_like(h0)
    for b in range(batch):
        seq_states = [[h0[layer, b]] for layer in range(num_layers)]
        ys = []
        for t in range(lengths[b]):
            x = X[b, t]
            for layer in range(num_layers):
                Wxh = weights[f"layers.{layer}.Wxh"]
                Whh = weights[f"layers.{layer}.Whh"]
                bh = weights[f"layers.{layer}.bh"]
                h = np.tanh(Wxh @ x + Whh @ seq_states[layer][-1] + bh)
                seq_states[layer].append(h)
                x = h
            ys.append(Why @ x + by)
        outputs.append(ys if many_to_many else [ys[-1]])
        states.append(seq_states)
        for layer in range(num_layers):
            h_last[layer, b] = seq_states[layer][-1]
    return outputs, states, h_last


def reference_loss(outputs, Y, many_to_many):
    """mean((y_hat - y)**2) over every valid target element."""
    errors = []
    for b, ys in enumerate(outputs):
        targets = Y[b, :len(ys)] if many_to_many else Y[b][None]
        errors.append((np.array(ys) - targets).ravel())
    return float(np.mean(np.concatenate(errors) ** 2))


def reference_gradients(weights, X, Y, h0, lengths, num_layers, many_to_many):
    """Exact gradients by backpropagation through time, one sequence at a time."""
    outputs, states, _ = reference_forward(weights, X, h0, lengths, num_layers,
                                           many_to_many)
    count = sum(len(ys) for ys in outputs) * weights["by"].shape[0]
    grads = {name: np.zeros_like(value) for name, value in weights.items()}
    Why = weights["Why"]
    for b, ys in enumerate(outputs):
        steps = int(lengths[b])
        # Gradient reaching each top-layer h_t from the head (zero where no output).
        external = [np.zeros_like(h0[0, b]) for _ in range(steps)]
        for k, y in enumerate(ys):
            t = k if many_to_many else steps - 1
            target = Y[b, t] if many_to_many else Y[b]
            dy = 2.0 * (y - target) / count
            grads["Why"] += np.outer(dy, states[b][-1][t + 1])
            grads["by"] += dy
            external[t] = Why.T @ dy
        for layer in range(num_layers - 1, -1, -1):
            Wxh = weights[f"layers.{layer}.Wxh"]
            Whh = weights[f"layers.{layer}.Whh"]
            hs = states[b][layer]  # hs[t + 1] is h_t; hs[0] is h_0
            below = [np.zeros_like(h0[0, b]) for _ in range(steps)] if layer else None
            da_next = np.zeros_like(h0[0, b])
            for t in range(steps - 1, -1, -1):
                dh = external[t] + Whh.T @ da_next
                da = dh * (1.0 - hs[t + 1] ** 2)
                layer_input = X[b, t] if layer == 0 else states[b][layer - 1][t + 1]
                grads[f"layers.{layer}.Wxh"] += np.outer(da, layer_input)
                grads[f"layers.{layer}.Whh"] += np.outer(da, hs[t])
                grads[f"layers.{layer}.bh"] += da
                if layer:
                    below[t] = Wxh.T @ da
                da_next = da
            external = below
    return grads


# ------------------------------------------------------------------ problems
def make_problem(seed, batch, steps, inputs, hidden, outputs, layers, many_to_many,
                 nonzero_h0=False, ragged=False, weight_scale=1.0, **model_kwargs):
    rng = np.random.default_rng(seed)
    model = elman.RNN(inputs, hidden, outputs, num_layers=layers,
                      return_sequences=many_to_many, seed=seed, **model_kwargs)
    if weight_scale != 1.0:
        model.set_weights({k: weight_scale * v for k, v in model.get_weights().items()})
    X = rng.normal(size=(batch, steps, inputs))
    if ragged:
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[0] = steps
        lengths[-1] = max(1, steps // 2)
    else:
        lengths = np.full(batch, steps)
    if many_to_many:
        Y = rng.normal(size=(batch, steps, outputs))
        Y[np.arange(steps)[None, :] >= lengths[:, None]] = np.nan
    else:
        Y = rng.normal(size=(batch, outputs))
    h0 = rng.uniform(-0.8, 0.8, size=(layers, batch, hidden)) if nonzero_h0 else None
    return model, X, Y, h0, (lengths if ragged else None)


def _h0_array(model, X, h0):
    if h0 is not None:
        return h0
    return np.zeros((model.num_layers, X.shape[0], model.hidden_size))


def _lengths_array(X, lengths):
    return np.full(X.shape[0], X.shape[1]) if lengths is None else lengths


PROBLEMS = {
    "m2m-1layer": dict(seed=1, batch=3, steps=5, inputs=2, hidden=4, outputs=2, layers=1,
                       many_to_many=True),
    "m2o-2layers-h0": dict(seed=2, batch=2, steps=6, inputs=3, hidden=3, outputs=2,
                           layers=2, many_to_many=False, nonzero_h0=True),
    "m2m-3layers-h0-ragged": dict(seed=3, batch=4, steps=5, inputs=2, hidden=3, outputs=1,
                                  layers=3, many_to_many=True, nonzero_h0=True,
                                  ragged=True),
    "m2o-ragged": dict(seed=4, batch=3, steps=7, inputs=1, hidden=4, outputs=1, layers=2,
                       many_to_many=False, ragged=True),
    "saturated-weights-x10": dict(seed=5, batch=2, steps=6, inputs=2, hidden=4, outputs=2,
                                  layers=2, many_to_many=True, nonzero_h0=True,
                                  weight_scale=10.0),
    "saturated-init-scale": dict(seed=6, batch=3, steps=5, inputs=2, hidden=5, outputs=1,
                                 layers=1, many_to_many=False, init="normal",
                                 init_scale=3.0),
    "unit-sizes": dict(seed=7, batch=1, steps=1, inputs=1, hidden=1, outputs=1, layers=1,
                       many_to_many=True, nonzero_h0=True),
}


# ------------------------------------------------------- finite differences
FD_STEP = 1e-5
# Central differences: truncation error ~ FD_STEP**2 * |f'''| ~ 1e-10 and rounding
# ~ 1e-16 * |loss| / FD_STEP ~ 1e-11, against gradients of order 1e-2 to 1: a
# relative tolerance of 1e-6 of each array's largest entry, plus 1e-9 absolute for
# arrays whose gradient is almost zero (saturated units).
FD_RTOL = 1e-6
FD_ATOL = 1e-9


def finite_difference_check(model, X, Y, h0=None, lengths=None, coordinates=None, seed=0):
    """Compare loss_and_grad's gradient with central differences of its loss.

    ``coordinates``: how many random entries to test per weight array (all when None).
    Returns the number of coordinates checked.
    """
    rng = np.random.default_rng(seed)
    loss, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
    assert np.isfinite(loss)
    weights = model.get_weights()
    checked = 0
    try:
        for name, gradient in grads.items():
            W = weights[name]
            if coordinates is None or coordinates >= W.size:
                indices = range(W.size)
            else:
                indices = rng.choice(W.size, size=coordinates, replace=False)
            numeric = []
            for i in indices:
                original = W.flat[i]
                values = []
                for sign in (1.0, -1.0):
                    W.flat[i] = original + sign * FD_STEP
                    model.set_weights(weights)
                    values.append((W.flat[i], model.loss_and_grad(X, Y, h0, lengths=lengths)[0]))
                W.flat[i] = original
                (x_plus, f_plus), (x_minus, f_minus) = values
                numeric.append((f_plus - f_minus) / (x_plus - x_minus))
            analytic = gradient.ravel()[list(indices)]
            numeric = np.array(numeric)
            error = np.max(np.abs(numeric - analytic))
            scale = np.max(np.abs(gradient))
            assert error <= FD_RTOL * scale + FD_ATOL, (
                f"{name}: max |finite difference - gradient| = {error:.3g}, largest "
                f"gradient entry {scale:.3g}")
            checked += len(numeric)
    finally:
        model.set_weights(weights)
    return checked


@pytest.mark.parametrize("problem", list(PROBLEMS), ids=str)
def test_gradient_matches_finite_differences(problem, backend):
    model, X, Y, h0, lengths = make_problem(**PROBLEMS[problem])
    _, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
    # Not a vacuous comparison: every array has a gradient clearly above FD noise.
    for name, gradient in grads.items():
        assert np.max(np.abs(gradient)) > 1e-5, name
    checked = finite_difference_check(model, X, Y, h0, lengths)
    assert checked == model.n_params


def test_saturated_problems_are_saturated():
    for problem in ("saturated-weights-x10", "saturated-init-scale"):
        model, X, Y, h0, lengths = make_problem(**PROBLEMS[problem])
        _, states, _ = reference_forward(model.get_weights(), X, _h0_array(model, X, h0),
                                         _lengths_array(X, lengths), model.num_layers,
                                         model.return_sequences)
        hs = np.array([h for seq in states for layer in seq for h in layer[1:]])
        assert np.mean(np.abs(hs) > 0.99) > 0.4, problem


@pytest.mark.parametrize("many_to_many", [True, False])
def test_gradient_at_gemm_path_sizes(many_to_many, backend):
    """batch * hidden**2 above the fused-loop threshold, a few coordinates per array."""
    model, X, Y, h0, lengths = make_problem(
        seed=11, batch=40, steps=4, inputs=3, hidden=128, outputs=2, layers=2,
        many_to_many=many_to_many, nonzero_h0=True, ragged=True, weight_scale=1.5)
    if backend == "cython":
        assert _engine.route(40, 128).name == "gemm"
    checked = finite_difference_check(model, X, Y, h0, lengths, coordinates=3)
    assert checked == sum(min(3, w.size) for w in model.get_weights().values())


def test_padded_targets_are_ignored(backend):
    model, X, Y, h0, lengths = make_problem(**PROBLEMS["m2m-3layers-h0-ragged"])
    padded = np.isnan(Y)
    assert padded.any()
    loss_nan, grads_nan = model.loss_and_grad(X, Y, h0, lengths=lengths)
    Y_other = Y.copy()
    Y_other[padded] = 1e6
    loss_other, grads_other = model.loss_and_grad(X, Y_other, h0, lengths=lengths)
    assert np.isfinite(loss_nan)
    assert loss_nan == loss_other
    for name in grads_nan:
        assert np.isfinite(grads_nan[name]).all()
        assert np.array_equal(grads_nan[name], grads_other[name]), name


# ---------------------------------------------------------- the formulas
@pytest.mark.parametrize("problem", list(PROBLEMS), ids=str)
def test_forward_and_loss_match_reference(problem, backend, assert_close):
    model, X, Y, h0, lengths = make_problem(**PROBLEMS[problem])
    weights = model.get_weights()
    h0_full = _h0_array(model, X, h0)
    lengths_full = _lengths_array(X, lengths)
    outputs, _, h_last_ref = reference_forward(weights, X, h0_full, lengths_full,
                                               model.num_layers, model.return_sequences)
    loss_ref = reference_loss(outputs, Y, model.return_sequences)

    Y_hat, h_last = model.forward(X, h0, return_state=True, lengths=lengths)
    for b, ys in enumerate(outputs):
        if model.return_sequences:
            assert_close(Y_hat[b, :len(ys)], np.array(ys), what=f"outputs of sequence {b}")
            assert not np.any(Y_hat[b, len(ys):]), "outputs at padded steps must be zero"
        else:
            assert_close(Y_hat[b], ys[0], what=f"output of sequence {b}")
    assert_close(h_last, h_last_ref, what="final states")
    loss, _ = model.loss_and_grad(X, Y, h0, lengths=lengths)
    assert_close(loss, loss_ref, what="loss")


def test_loss_is_torch_mse_on_a_full_batch(backend):
    """No padding: the loss is literally np.mean((forward(X) - Y)**2)."""
    rng = np.random.default_rng(0)
    for many_to_many in (True, False):
        model = elman.RNN(3, 5, 2, num_layers=2, return_sequences=many_to_many, seed=1)
        X = rng.normal(size=(4, 6, 3))
        Y = rng.normal(size=(4, 6, 2) if many_to_many else (4, 2))
        loss, _ = model.loss_and_grad(X, Y)
        expected = np.mean((model.forward(X) - Y) ** 2)
        assert abs(loss - expected) <= 1e-13 * expected
        # And it is not the sum, nor the mean over the batch only.
        assert abs(loss - np.sum((model.forward(X) - Y) ** 2)) > 1e-3


@pytest.mark.parametrize("problem", ["m2m-1layer", "m2o-2layers-h0",
                                     "m2m-3layers-h0-ragged", "saturated-weights-x10"])
def test_gradient_matches_reference_bptt(problem, backend, assert_close):
    model, X, Y, h0, lengths = make_problem(**PROBLEMS[problem])
    expected = reference_gradients(model.get_weights(), X, Y, _h0_array(model, X, h0),
                                   _lengths_array(X, lengths), model.num_layers,
                                   model.return_sequences)
    _, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
    assert set(grads) == set(expected)
    for name in expected:
        assert_close(grads[name], expected[name], what=f"gradient {name}")


def test_reference_bptt_matches_finite_differences():
    """The test-local BPTT is itself right (so the comparison above means something)."""
    model, X, Y, h0, lengths = make_problem(**PROBLEMS["m2m-3layers-h0-ragged"])
    weights = model.get_weights()
    args = (X, Y, h0, lengths, model.num_layers, True)
    grads = reference_gradients(weights, *args)

    def loss_of(w):
        outputs, _, _ = reference_forward(w, X, h0, lengths, model.num_layers, True)
        return reference_loss(outputs, Y, True)

    for name in ("layers.0.Wxh", "layers.1.Whh", "layers.2.bh", "Why", "by"):
        W = weights[name]
        for i in range(0, W.size, max(1, W.size // 4)):
            original = W.flat[i]
            W.flat[i] = original + FD_STEP
            f_plus = loss_of(weights)
            W.flat[i] = original - FD_STEP
            f_minus = loss_of(weights)
            W.flat[i] = original
            numeric = (f_plus - f_minus) / (2 * FD_STEP)
            assert abs(numeric - grads[name].flat[i]) <= 1e-6 * np.max(np.abs(grads[name])) \
                + 1e-9, (name, i)
