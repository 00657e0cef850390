"""elman.diagnostics: the gradient reaching each hidden state, and the gradient check.

gradient_flow is checked against finite differences of a forward pass written out
here, in which every hidden state can be nudged: the derivative of the loss with
respect to a nudge added to h_t is exactly dL/dh_t. gradcheck must pass on the
model's own gradients and fail on a deliberately wrong one.
"""

import numpy as np
import pytest

import elman
from elman.diagnostics import GradcheckResult, gradcheck, gradient_flow

DTYPES = ["float64", "float32"]
LOSSES = ["mse", "mae", "huber", "cross_entropy", "gaussian_nll"]


def loss_elements(loss, outputs, targets):
    """The loss of each target element, PyTorch's definitions written out: outputs
    (m, O), targets (m, O), (m,) class indices, or (m, O // 2)."""
    if loss == "mse":
        return (outputs - targets) ** 2
    if loss == "mae":
        return np.abs(outputs - targets)
    if loss == "huber":
        d = np.abs(outputs - targets)
        return np.where(d < 1.0, 0.5 * d ** 2, d - 0.5)
    if loss == "cross_entropy":
        top = outputs.max(axis=1, keepdims=True)
        logsumexp = np.log(np.exp(outputs - top).sum(axis=1)) + top[:, 0]
        return logsumexp - outputs[np.arange(len(targets)), targets.astype(int)]
    k = outputs.shape[1] // 2
    variance = np.maximum(np.exp(outputs[:, k:]), 1e-6)
    return 0.5 * (np.log(variance) + (outputs[:, :k] - targets) ** 2 / variance)


def make_targets(loss, shape, outputs, seed=1):
    """Targets for ``loss`` of a model with ``outputs`` outputs: shape + (width,), or
    shape for class indices."""
    rng = np.random.default_rng(seed)
    if loss == "cross_entropy":
        return rng.integers(0, outputs, size=shape)
    width = outputs // 2 if loss == "gaussian_nll" else outputs
    return rng.normal(size=shape + (width,))


def nudged_loss(model, X, Y, lengths, nudge):
    """The loss of ``model`` on X, written out in float64, with
    ``nudge[l, t, b]`` added to layer l's state at step t of sequence b (valid steps
    only; a padded step holds the state, so a nudge there changes nothing)."""
    weights = {k: v.astype(np.float64) for k, v in model.get_weights().items()}
    f = np.tanh if model.nonlinearity == "tanh" else (lambda a: np.maximum(a, 0.0))
    batch, steps, _ = X.shape
    layer_input = X
    for layer in range(model.num_layers):
        Wxh, Whh, bh = (weights[f"layers.{layer}.{name}"] for name in ("Wxh", "Whh", "bh"))
        h = np.zeros((batch, model.hidden_size))
        states = []
        for t in range(steps):
            candidate = f(layer_input[:, t] @ Wxh.T + h @ Whh.T + bh) + nudge[layer, t]
            h = np.where((t < lengths)[:, None], candidate, h)
            states.append(h)
        layer_input = np.stack(states, axis=1)
    outputs = layer_input @ weights["Why"].T + weights["by"]
    if model.return_sequences:
        valid = np.arange(steps)[None, :] < lengths[:, None]
        outputs, Y = outputs[valid], Y[valid]
    else:
        outputs = outputs[np.arange(batch), lengths - 1]
    return float(np.mean(loss_elements(model.loss, outputs, Y)))


def numeric_flow(model, X, Y, lengths, eps=1e-6):
    """(batch, layers, time) norms of dL/dh_t by central differences of nudged_loss."""
    batch, steps, _ = X.shape
    shape = (model.num_layers, steps, batch, model.hidden_size)
    grad = np.zeros(shape)
    for index in np.ndindex(*shape):
        nudge = np.zeros(shape)
        nudge[index] = eps
        plus = nudged_loss(model, X, Y, lengths, nudge)
        nudge[index] = -eps
        minus = nudged_loss(model, X, Y, lengths, nudge)
        grad[index] = (plus - minus) / (2 * eps)
    return np.sqrt(np.sum(grad ** 2, axis=3)).transpose(2, 0, 1)


def data(batch, steps, inputs, outputs, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, steps, inputs)), rng.normal(size=(batch, steps, outputs))


# -------------------------------------------------------------------- gradient_flow
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_gradient_flow_matches_finite_differences(backend, return_sequences, num_layers,
                                                  padded, loss, nonlinearity):
    model = elman.RNN(2, 4, 4, num_layers=num_layers, return_sequences=return_sequences,
                      seed=3, loss=loss, nonlinearity=nonlinearity)
    X, _ = data(3, 5, 2, 2)
    lengths = np.array([5, 2, 4]) if padded else np.full(3, 5)
    targets = make_targets(loss, (3, 5) if return_sequences else (3,), 4)
    expected = numeric_flow(model, X, targets, lengths)
    per_sequence = gradient_flow(model, X, targets, lengths=lengths if padded else None,
                                 per_sequence=True)
    assert per_sequence.shape == (3, num_layers, 5)
    np.testing.assert_allclose(per_sequence, expected, rtol=1e-6, atol=1e-10)
    total = gradient_flow(model, X, targets, lengths=lengths if padded else None)
    assert total.shape == (num_layers, 5)
    np.testing.assert_allclose(total, np.sqrt((expected ** 2).sum(axis=0)), rtol=1e-6,
                               atol=1e-10)
    if padded:  # nothing reaches the padding
        assert np.all(per_sequence[1, :, 2:] == 0) and np.all(per_sequence[2, :, 4:] == 0)
    assert np.all(per_sequence[:, :, 0] > 0)


def test_gradient_flow_with_an_initial_state_and_unbatched_input(backend):
    model = elman.RNN(3, 4, 1, num_layers=2, seed=1)
    X, Y = data(1, 6, 3, 1, seed=2)
    h0 = np.random.default_rng(5).normal(size=(2, 4)) * 0.5
    unbatched = gradient_flow(model, X[0], Y[0], h0)
    assert unbatched.shape == (2, 6)
    batched = gradient_flow(model, X, Y, h0[:, None, :])
    np.testing.assert_allclose(unbatched, batched, rtol=1e-12)
    without = gradient_flow(model, X, Y)
    assert not np.allclose(unbatched, without)   # the state is used


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_flow_agrees_across_backends_and_precisions(both_backends, dtype):
    model = elman.RNN(3, 8, 2, num_layers=3, seed=4, dtype=dtype)
    X, Y = data(5, 9, 3, 2, seed=6)
    lengths = [9, 3, 7, 9, 1]
    compiled, twin = both_backends(gradient_flow, model, X, Y, lengths=lengths,
                                   per_sequence=True)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(compiled, twin, rtol=rtol, atol=rtol * compiled.max())
    reference = elman.RNN(3, 8, 2, num_layers=3, seed=4)
    reference.set_weights({k: v.astype(np.float64) for k, v in model.get_weights().items()})
    exact = gradient_flow(reference, X, Y, lengths=lengths, per_sequence=True)
    np.testing.assert_allclose(twin, exact, rtol=1e-4 if dtype == "float32" else 1e-12,
                               atol=1e-6 * exact.max())


def test_gradient_flow_measures_a_vanishing_gradient(backend):
    """A contracting recurrence passes back a gradient that shrinks geometrically
    towards the first steps; an identity one keeps it."""
    X = np.random.default_rng(0).normal(size=(8, 40, 1))
    Y = X.sum(axis=1)
    small = elman.RNN(1, 8, 1, return_sequences=False, seed=0, init="orthogonal",
                      init_scale=0.3)
    flow = gradient_flow(small, X, Y)[0]
    assert flow[0] < 1e-12 * flow[-1]
    assert np.all(np.diff(np.log(flow)) > 0)
    identity = elman.RNN(1, 8, 1, return_sequences=False, seed=0, init="identity")
    flow = gradient_flow(identity, X, Y)[0]
    assert flow[0] > 0.5 * flow[-1]


def test_gradient_flow_errors():
    model = elman.RNN(2, 3, 1, seed=0)
    X, Y = data(2, 4, 2, 1)
    with pytest.raises(TypeError, match="elman.RNN"):
        gradient_flow(object(), X, Y)
    with pytest.raises(ValueError, match="Y must have shape"):
        gradient_flow(model, X, Y[:, :3])
    with pytest.raises(ValueError, match="X must"):
        gradient_flow(model, X[..., :1], Y)
    with pytest.raises(TypeError, match="per_sequence"):
        gradient_flow(model, X, Y, per_sequence=1)
    with pytest.raises(ValueError, match="batch size 0"):
        gradient_flow(model, X[:0], Y[:0])


# ------------------------------------------------------------------------ gradcheck
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_gradcheck_passes_on_the_models_gradient(backend, dtype, return_sequences, loss,
                                                 nonlinearity):
    model = elman.RNN(2, 5, 4, num_layers=2, return_sequences=return_sequences, seed=1,
                      dtype=dtype, loss=loss, nonlinearity=nonlinearity)
    X, _ = data(4, 6, 2, 2, seed=3)
    Y = make_targets(loss, (4, 6) if return_sequences else (4,), 4)
    before = model.parameters.copy()
    result = gradcheck(model, X, Y, lengths=[6, 2, 5, 6])
    assert isinstance(result, GradcheckResult)
    assert result.passed, str(result)
    assert set(result.checked) == set(model.get_weights())
    assert result.checked == {k: v.size for k, v in model.get_weights().items()}
    assert sum(result.failed.values()) == 0 and result.worst is None
    assert max(result.max_rel_error.values()) < 1e-4
    unbatched = gradcheck(model, X[1], Y[1], np.full((2, 5), 0.3))
    assert unbatched.passed, str(unbatched)
    assert unbatched.loss != result.loss
    # The model itself is untouched: same dtype, same weights.
    assert model.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(model.parameters, before)


class WrongBiasGradient(elman.RNN):
    """A variant whose hand-written gradient has a mistake in one group."""

    def loss_and_grad(self, X, Y, h0=None, *, lengths=None):
        loss, grads = super().loss_and_grad(X, Y, h0, lengths=lengths)
        grads["layers.0.bh"] *= 1.001
        return loss, grads


class ScaledLoss(elman.RNN):
    """A variant with its own (correct) loss: three times the mean squared error."""

    def loss_and_grad(self, X, Y, h0=None, *, lengths=None):
        loss, grads = super().loss_and_grad(X, Y, h0, lengths=lengths)
        return 3.0 * loss, {name: 3.0 * value for name, value in grads.items()}


def test_gradcheck_finds_a_wrong_gradient(backend):
    model = WrongBiasGradient(2, 5, 1, seed=2)
    X, Y = data(3, 5, 2, 1)
    result = gradcheck(model, X, Y)
    assert not result.passed
    assert result.failed["layers.0.bh"] > 0
    assert all(count == 0 for name, count in result.failed.items() if name != "layers.0.bh")
    assert result.worst[0] == "layers.0.bh"
    assert 5e-4 < result.max_rel_error["layers.0.bh"] < 2e-3
    assert "FAILED" in str(result) and "layers.0.bh" in str(result)


def test_gradcheck_uses_the_subclass_loss(backend):
    X, Y = data(3, 5, 2, 1)
    model = ScaledLoss(2, 5, 1, seed=2)
    result = gradcheck(model, X, Y)
    assert result.passed, str(result)
    plain = gradcheck(elman.RNN(2, 5, 1, seed=2), X, Y)
    assert result.loss == pytest.approx(3 * plain.loss, rel=1e-12)


def test_gradcheck_finds_a_transposed_recurrent_gradient(backend):
    class Transposed(elman.RNN):
        def loss_and_grad(self, X, Y, h0=None, *, lengths=None):
            loss, grads = super().loss_and_grad(X, Y, h0, lengths=lengths)
            grads = dict(grads)
            grads["layers.0.Whh"] = grads["layers.0.Whh"].T.copy()
            return loss, grads

    X, Y = data(3, 5, 2, 1)
    result = gradcheck(Transposed(2, 4, 1, seed=0), X, Y)
    assert not result.passed and set(name for name, n in result.failed.items() if n) == {
        "layers.0.Whh"}


def test_gradcheck_samples_large_groups(backend):
    model = elman.RNN(3, 20, 1, seed=0)
    X, Y = data(2, 4, 3, 1)
    result = gradcheck(model, X, Y, max_per_group=30, seed=1)
    assert result.passed, str(result)
    assert result.checked == {"layers.0.Wxh": 30, "layers.0.Whh": 30, "layers.0.bh": 20,
                              "Why": 20, "by": 1}


def test_gradcheck_errors():
    model = elman.RNN(2, 3, 1, seed=0)
    X, Y = data(2, 4, 2, 1)
    with pytest.raises(TypeError, match="elman.RNN"):
        gradcheck("model", X, Y)
    with pytest.raises(ValueError, match="eps"):
        gradcheck(model, X, Y, eps=0.0)
    with pytest.raises(ValueError, match="max_per_group"):
        gradcheck(model, X, Y, max_per_group=0)
    with pytest.raises(ValueError, match="Y must have shape"):
        gradcheck(model, X, Y[:, :2])


# ------------------------------------------------------------ against PyTorch autograd
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_gradient_flow_matches_torch_autograd(backend, loss, return_sequences, nonlinearity):
    """||h_t.grad|| of a hand-written torch loop with the same weights and loss."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    f = torch.tanh if nonlinearity == "tanh" else torch.relu
    model = elman.RNN(3, 5, 4, num_layers=2, return_sequences=return_sequences, seed=7,
                      loss=loss, nonlinearity=nonlinearity)
    X, _ = data(4, 6, 3, 1, seed=8)
    Y = make_targets(loss, (4, 6) if return_sequences else (4,), 4, seed=9)
    weights = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
               for k, v in model.get_weights().items()}
    layer_input = torch.tensor(X)
    states = []
    for layer in range(2):
        h = torch.zeros(4, 5, dtype=torch.float64)
        outputs = []
        for t in range(6):
            h = f(layer_input[:, t] @ weights[f"layers.{layer}.Wxh"].T
                           + h @ weights[f"layers.{layer}.Whh"].T
                           + weights[f"layers.{layer}.bh"])
            h.retain_grad()
            states.append(h)
            outputs.append(h)
        layer_input = torch.stack(outputs, dim=1)
    head = layer_input @ weights["Why"].T + weights["by"]
    if not return_sequences:
        head = head[:, -1]
    head = head.reshape(-1, 4)
    target = torch.tensor(Y).reshape(head.shape[0], -1)
    if loss == "mse":
        value = functional.mse_loss(head, target)
    elif loss == "mae":
        value = functional.l1_loss(head, target)
    elif loss == "huber":
        value = functional.huber_loss(head, target, delta=1.0)
    elif loss == "cross_entropy":
        value = functional.cross_entropy(head, target[:, 0].long())
    else:
        value = functional.gaussian_nll_loss(head[:, :2], target, head[:, 2:].exp())
    value.backward()
    expected = np.array([[states[layer * 6 + t].grad.norm().item() for t in range(6)]
                         for layer in range(2)])
    np.testing.assert_allclose(gradient_flow(model, X, Y), expected, rtol=1e-10)
