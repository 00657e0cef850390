"""``RNN(nonlinearity="relu")``: h_t = max(0, a_t), on every route and call.

Checked against a per-step loop written here, against finite differences of
``loss_and_grad`` (float64), the compiled backend against the twin for fit,
forecast and truncated BPTT, the configuration (get_config, repr, model files,
errors), the pairing with ``init="identity"`` (IRNN), and the torch interop,
including a GRU or LSTM state dict and, where torch is installed,
``torch.nn.RNN(nonlinearity="relu")`` itself.
"""

import numpy as np
import pytest

import elman
from elman.model_file import ModelFileError, load, save
from test_gradients import finite_difference_check
from test_model_file import with_header


def relu_reference_forward(weights, X, h0, num_layers):
    """Outputs (B, T, O) by a plain loop over h_t = max(0, Wxh x_t + Whh h_{t-1} + bh)."""
    batch, steps, _ = X.shape
    Y = np.zeros((batch, steps, weights["by"].shape[0]))
    for b in range(batch):
        h = [h0[layer, b] for layer in range(num_layers)]
        for t in range(steps):
            x = X[b, t]
            for layer in range(num_layers):
                a = (weights[f"layers.{layer}.Wxh"] @ x + weights[f"layers.{layer}.Whh"]
                     @ h[layer] + weights[f"layers.{layer}.bh"])
                h[layer] = x = np.maximum(a, 0.0)
            Y[b, t] = weights["Why"] @ x + weights["by"]
    return Y


def make_relu_problem(seed, batch=3, steps=6, layers=2, many_to_many=True, ragged=False,
                      dtype="float64"):
    rng = np.random.default_rng(seed)
    model = elman.RNN(2, 5, 2, num_layers=layers, return_sequences=many_to_many,
                      nonlinearity="relu", seed=seed, dtype=dtype)
    model.set_weights({k: 1.5 * v for k, v in model.get_weights().items()})
    X = rng.normal(size=(batch, steps, 2))
    h0 = rng.uniform(0.0, 0.8, size=(layers, batch, 5))
    lengths = None
    if ragged:
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[0], lengths[-1] = steps, max(1, steps // 2)
    if many_to_many:
        Y = rng.normal(size=(batch, steps, 2))
        if ragged:
            Y[np.arange(steps)[None, :] >= lengths[:, None]] = np.nan
    else:
        Y = rng.normal(size=(batch, 2))
    return model, X, Y, h0, lengths


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_relu_forward_is_the_formula(dtype, forced_route, assert_route, assert_close):
    model, X, _, h0, _ = make_relu_problem(1, dtype=dtype)
    assert_route(forced_route, X.shape[0], model.hidden_size)
    expected = relu_reference_forward(model.get_weights(), X, h0, model.num_layers)
    Y, h_last = model.forward(X, h0, return_state=True)
    assert_close(Y, expected.astype(dtype), rtol=1e-12 if dtype == "float64" else 1e-5,
                 what="relu outputs")
    # The formula is not tanh's: the same weights under tanh give other outputs.
    tanh = elman.RNN(2, 5, 2, num_layers=2, dtype=dtype)
    tanh.set_weights(model.get_weights())
    assert np.max(np.abs(tanh.forward(X, h0) - Y)) > 0.1
    assert np.any(h_last == 0) and np.all(h_last >= 0)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("many_to_many", [True, False], ids=["m2m", "m2o"])
@pytest.mark.parametrize("ragged", [False, True], ids=["whole", "padded"])
def test_relu_loss_and_grad_matches_finite_differences(layers, many_to_many, ragged,
                                                       forced_route):
    model, X, Y, h0, lengths = make_relu_problem(10 * layers + 2 * many_to_many + ragged,
                                                 layers=layers, many_to_many=many_to_many,
                                                 ragged=ragged)
    _, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
    for name, gradient in grads.items():
        assert np.max(np.abs(gradient)) > 1e-5, name
    assert finite_difference_check(model, X, Y, h0, lengths) == model.n_params


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_fit_on_every_route_agrees_with_the_twin(nonlinearity, forced_route, assert_route,
                                                 assert_close):
    """Whole epochs (train_steps of the route) against the twin's, relu and tanh
    training to different weights."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12, 6, 2))
    Y = np.cumsum(X[..., :1], axis=1) * 0.3

    def train(name):
        model = elman.RNN(2, 6, 1, nonlinearity=name, seed=4)
        history = model.fit(X, Y, epochs=3, batch_size=4, lr=0.01, seed=0)
        return model.parameters.copy(), np.array(history.loss)

    assert_route(forced_route, 4, 6)
    theta, losses = train(nonlinearity)
    with elman.use_backend("numpy"):
        twin_theta, twin_losses = train(nonlinearity)
        other_theta, _ = train("tanh" if nonlinearity == "relu" else "relu")
    assert_close(theta, twin_theta, what="trained weights")
    assert_close(losses, twin_losses, what="losses")
    assert losses[-1] < losses[0]
    assert np.max(np.abs(other_theta - twin_theta)) > 1e-4


def test_relu_truncated_bptt_and_forecast_agree(both_backends, assert_close):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 12, 1))
    Y = np.roll(X, -1, axis=1)

    def run():
        model = elman.RNN(1, 6, 1, nonlinearity="relu", init="identity", seed=5)
        model.fit(X, Y, epochs=2, batch_size=5, lr=0.01, tbptt=4, seed=0)
        return model.parameters.copy(), model.forecast(X[:2], 5)

    compiled, twin = both_backends(run)
    assert_close(compiled[0], twin[0], what="weights after truncated BPTT")
    assert_close(compiled[1], twin[1], what="relu forecasts")


def test_forecast_one_step_is_the_last_output(backend, assert_close):
    model, X, _, h0, _ = make_relu_problem(4)
    model = elman.RNN(2, 5, 2, num_layers=2, nonlinearity="relu", seed=4)
    assert_close(model.forecast(X, 1, h0=h0, feedback=[0, 1])[:, 0],
                 model.forward(X, h0)[:, -1], what="first forecast")


def test_identity_init_with_relu_keeps_a_pulse(backend):
    """IRNN: with Whh = I, biases 0 and relu, a positive state survives any number of
    zero inputs unchanged, where tanh shrinks it step by step."""
    X = np.zeros((1, 200, 1))
    X[0, 0, 0] = 1000.0  # the input weights are N(0, 0.001**2): a state of order 1
    relu = elman.RNN(1, 8, 1, nonlinearity="relu", init="identity", seed=0)
    tanh = elman.RNN(1, 8, 1, init="identity", seed=0)
    _, h_relu = relu.forward(X, return_state=True)
    first = np.maximum(1000.0 * relu.get_weights()["layers.0.Wxh"][:, 0], 0.0)
    assert np.max(first) > 0.5
    np.testing.assert_allclose(h_relu[0, 0], first, rtol=1e-12, atol=0)
    _, h_tanh = tanh.forward(X, return_state=True)
    assert np.max(np.abs(h_tanh)) < 0.9 * np.max(np.abs(np.tanh(first)))


# ------------------------------------------------------------------ configuration
def test_configuration_and_errors():
    model = elman.RNN(2, 3, 1, nonlinearity="relu")
    assert model.nonlinearity == "relu" and model.get_config()["nonlinearity"] == "relu"
    assert repr(model) == "RNN(2, 3, 1, nonlinearity='relu')"
    assert elman.RNN(2, 3, 1).nonlinearity == "tanh" and "nonlinearity" not in repr(
        elman.RNN(2, 3, 1))
    for bad in ("sigmoid", "ReLU", None, 1):
        with pytest.raises(ValueError, match=r"nonlinearity must be one of \('tanh', 'relu'\)"):
            elman.RNN(2, 3, 1, nonlinearity=bad)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_relu_model_file_round_trip(tmp_path, dtype, backend):
    model, X, _, h0, _ = make_relu_problem(5, dtype=dtype)
    save(model, tmp_path / "relu.npz")
    loaded = load(tmp_path / "relu.npz")
    assert loaded.nonlinearity == "relu" and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.forward(X, h0), model.forward(X, h0))


def test_files_written_without_a_nonlinearity_load_as_tanh(tmp_path):
    model = elman.RNN(2, 4, 1, seed=0)
    save(model, tmp_path / "new.npz")

    def drop(header):
        del header["model"]["config"]["nonlinearity"]
    old = with_header(tmp_path / "new.npz", tmp_path / "old.npz", drop)
    loaded = load(old)
    assert loaded.nonlinearity == "tanh"
    X = np.random.default_rng(0).normal(size=(2, 3, 2))
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))


@pytest.mark.parametrize("value", ["sigmoid", None, 1])
def test_model_file_with_an_unknown_nonlinearity_is_refused(tmp_path, value):
    save(elman.RNN(2, 4, 1), tmp_path / "model.npz")

    def edit(header):
        header["model"]["config"]["nonlinearity"] = value
    bad = with_header(tmp_path / "model.npz", tmp_path / "bad.npz", edit)
    with pytest.raises(ModelFileError, match="nonlinearity"):
        load(bad)


def test_pickles_keep_the_nonlinearity_and_old_ones_are_tanh():
    import pickle

    model = elman.RNN(2, 3, 1, nonlinearity="relu", seed=0)
    assert pickle.loads(pickle.dumps(model)).nonlinearity == "relu"
    state = model.__getstate__()  # as a model pickled before relu existed holds it
    del state["nonlinearity"], state["_activation"]
    old = elman.RNN.__new__(elman.RNN)
    old.__setstate__(state)
    assert old.nonlinearity == "tanh"
    X = np.random.default_rng(0).normal(size=(2, 4, 2))
    tanh = elman.RNN(2, 3, 1)
    tanh.set_weights(model.get_weights())
    np.testing.assert_array_equal(old.forward(X), tanh.forward(X))


# ---------------------------------------------------------------------- interop
def test_state_dict_round_trip_keeps_the_nonlinearity_given(backend):
    model, X, _, h0, _ = make_relu_problem(6)
    state = model.to_torch_state_dict()
    back = elman.RNN.from_torch_state_dict(state, nonlinearity="relu")
    assert back.nonlinearity == "relu"
    np.testing.assert_allclose(back.forward(X, h0), model.forward(X, h0), rtol=1e-12)
    as_tanh = elman.RNN.from_torch_state_dict(state)
    assert as_tanh.nonlinearity == "tanh"
    assert np.max(np.abs(as_tanh.forward(X, h0) - model.forward(X, h0))) > 0.01
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        elman.RNN.from_torch_state_dict(state, nonlinearity="gelu")


@pytest.mark.parametrize("gates, name", [(3, "nn.GRU"), (4, "nn.LSTM")])
def test_gru_and_lstm_state_dicts_are_named(gates, name):
    H, I = 5, 3
    rng = np.random.default_rng(0)
    state = {"rnn.weight_ih_l0": rng.normal(size=(gates * H, I)),
             "rnn.weight_hh_l0": rng.normal(size=(gates * H, H)),
             "rnn.bias_ih_l0": rng.normal(size=gates * H),
             "rnn.bias_hh_l0": rng.normal(size=gates * H),
             "fc.weight": rng.normal(size=(1, H)), "fc.bias": rng.normal(size=1)}
    with pytest.raises(ValueError, match=rf"state dict of an {name} .*elman imports "
                                         r"nn.RNN weights only") as info:
        elman.RNN.from_torch_state_dict(state)
    assert "must have shape" not in str(info.value)


# ------------------------------------------------------------------------ torch
@pytest.mark.parametrize("layers", [1, 2])
def test_matches_torch_relu_rnn_outputs_and_gradients(layers, backend):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 6, num_layers=layers, nonlinearity="relu", batch_first=True,
                       dtype=torch.float64)
    fc = torch.nn.Linear(6, 2, dtype=torch.float64)
    state = {f"rnn.{k}": v.detach().numpy() for k, v in rnn.state_dict().items()}
    state.update({f"fc.{k}": v.detach().numpy() for k, v in fc.state_dict().items()})
    model = elman.RNN.from_torch_state_dict(state, nonlinearity="relu")

    rng = np.random.default_rng(layers)
    X = rng.normal(size=(4, 7, 3))
    h0 = rng.uniform(0, 0.5, size=(layers, 4, 6))
    Y = rng.normal(size=(4, 7, 2))
    Xt = torch.tensor(X, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    outputs = fc(rnn(Xt, h0t)[0])
    np.testing.assert_allclose(model.forward(X, h0), outputs.detach().numpy(),
                               rtol=1e-12, atol=1e-13)
    # The elman import of the same weights as tanh computes something else.
    as_tanh = elman.RNN.from_torch_state_dict(state)
    assert np.max(np.abs(as_tanh.forward(X, h0) - outputs.detach().numpy())) > 1e-3

    loss = torch.nn.functional.mse_loss(outputs, torch.tensor(Y))
    loss.backward()
    value, grads = model.loss_and_grad(X, Y, h0)
    np.testing.assert_allclose(value, loss.item(), rtol=1e-12)
    for layer in range(layers):
        torch_grads = {"Wxh": getattr(rnn, f"weight_ih_l{layer}").grad,
                       "Whh": getattr(rnn, f"weight_hh_l{layer}").grad,
                       "bh": getattr(rnn, f"bias_ih_l{layer}").grad}
        for name, expected in torch_grads.items():
            np.testing.assert_allclose(grads[f"layers.{layer}.{name}"], expected.numpy(),
                                       rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["Why"], fc.weight.grad.numpy(), rtol=1e-10, atol=1e-12)

    # backward's dX and dh0 are autograd's gradients of the same loss.
    dY = (2 * (outputs.detach().numpy() - Y) / Y.size)
    _, dX, dh0 = model.backward(X, dY, h0)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dh0, h0t.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_backward_matches_torch_autograd_many_to_one(nonlinearity, backend):
    """A vector-Jacobian product with an arbitrary dY, many-to-one, float32."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    rnn = torch.nn.RNN(2, 5, num_layers=2, nonlinearity=nonlinearity, batch_first=True)
    fc = torch.nn.Linear(5, 3)
    state = {f"rnn.{k}": v for k, v in rnn.state_dict().items()}
    state.update({f"fc.{k}": v for k, v in fc.state_dict().items()})
    model = elman.RNN.from_torch_state_dict(state, return_sequences=False,
                                            nonlinearity=nonlinearity)
    assert model.dtype == np.float32
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3, 6, 2)).astype(np.float32)
    dY = rng.normal(size=(3, 3)).astype(np.float32)
    Xt = torch.tensor(X, requires_grad=True)
    out = fc(rnn(Xt)[0][:, -1])
    out.backward(torch.tensor(dY))
    grads, dX, dh0 = model.backward(X, dY)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["layers.1.Whh"], rnn.weight_hh_l1.grad.numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["by"], fc.bias.grad.numpy(), rtol=1e-4, atol=1e-5)
    assert dh0.shape == (2, 3, 5)
