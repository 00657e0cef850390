"""Weights to and from PyTorch's nn.RNN + nn.Linear state dicts.

The round trips run on plain NumPy arrays, without torch. With torch installed,
the weights are loaded into torch.nn.RNN(batch_first=True, nonlinearity="tanh") and
nn.Linear in float64 and the outputs compared with elman's forward to 1e-12.
"""

import numpy as np
import pytest

import elman
from elman.interop import from_torch_state_dict, to_torch_state_dict


def random_model(num_layers=2, return_sequences=True, dtype="float64", seed=0):
    model = elman.RNN(3, 5, 2, num_layers=num_layers, return_sequences=return_sequences,
                      dtype=dtype, seed=seed)
    # Non-trivial biases everywhere (the default init already draws them uniformly).
    return model


def test_export_keys_shapes_and_folded_bias():
    model = random_model()
    state = model.to_torch_state_dict()
    assert list(state) == [
        "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
        "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1",
        "fc.weight", "fc.bias"]
    weights = model.get_weights()
    assert state["rnn.weight_ih_l0"].shape == (5, 3)
    assert state["rnn.weight_ih_l1"].shape == (5, 5)
    np.testing.assert_array_equal(state["rnn.bias_ih_l1"], weights["layers.1.bh"])
    np.testing.assert_array_equal(state["rnn.bias_hh_l0"], np.zeros(5))
    np.testing.assert_array_equal(state["fc.weight"], weights["Why"])
    np.testing.assert_array_equal(state["fc.bias"], weights["by"])
    # Copies: changing them leaves the model alone.
    state["fc.bias"][:] = 99
    assert not np.any(model.get_weights()["by"] == 99)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_without_torch(dtype):
    model = random_model(dtype=dtype)
    again = elman.RNN.from_torch_state_dict(model.to_torch_state_dict())
    assert again.get_config()["dtype"] == dtype
    assert (again.input_size, again.hidden_size, again.output_size, again.num_layers) == \
        (3, 5, 2, 2)
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(again.get_weights()[name], value)
    X = np.random.default_rng(1).normal(size=(4, 6, 3))
    np.testing.assert_array_equal(again.forward(X), model.forward(X))


def test_biases_are_summed_on_import():
    state = random_model(num_layers=1).to_torch_state_dict()
    state["rnn.bias_hh_l0"] = np.full(5, 0.25)
    model = from_torch_state_dict(state)
    np.testing.assert_allclose(model.get_weights()["layers.0.bh"],
                               state["rnn.bias_ih_l0"] + 0.25, rtol=0, atol=1e-15)


def test_custom_prefixes_and_extra_keys_ignored():
    model = random_model(num_layers=1)
    state = to_torch_state_dict(model, rnn_prefix="encoder.cell.", head_prefix="head.")
    assert "encoder.cell.weight_ih_l0" in state and "head.weight" in state
    state["embedding.weight"] = np.ones((7, 3))  # another module of a larger network
    again = from_torch_state_dict(state, rnn_prefix="encoder.cell.", head_prefix="head.",
                                  return_sequences=False)
    assert again.return_sequences is False
    np.testing.assert_array_equal(again.get_weights()["Why"], model.get_weights()["Why"])
    bare = to_torch_state_dict(model, rnn_prefix="", head_prefix="linear.")
    assert "weight_ih_l0" in bare
    assert from_torch_state_dict(bare, rnn_prefix="", head_prefix="linear.").hidden_size == 5


def test_no_bias_modules():
    state = random_model(num_layers=1).to_torch_state_dict()
    for key in ("rnn.bias_ih_l0", "rnn.bias_hh_l0", "fc.bias"):
        del state[key]
    model = from_torch_state_dict(state)
    assert not model.get_weights()["layers.0.bh"].any()
    assert not model.get_weights()["by"].any()


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("rnn.weight_hh_l1"), "missing rnn.weight_hh_l1"),
    (lambda s: s.pop("rnn.bias_hh_l1"), "some nn.RNN biases"),
    (lambda s: s.update({"rnn.weight_ih_l0_reverse": s["rnn.weight_ih_l0"]}), "bidirectional"),
    (lambda s: s.update({"rnn.weight_hr_l0": np.ones((2, 5))}), "proj_size"),
    (lambda s: s.update({"rnn.weight_hh_l1": np.ones((5, 4))}), r"shape \(5, 5\)"),
    (lambda s: s.update({"fc.weight": np.ones((2, 4))}), "fc.weight"),
    (lambda s: s.pop("fc.weight"), "no fc.weight"),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith("rnn.")], "no nn.RNN weights"),
    (lambda s: s.update({"rnn.weight_ih_l3": np.ones((5, 5))}), r"numbered 0 \.\. L-1"),
    (lambda s: s["fc.bias"].__setitem__(0, np.nan), "NaN"),
])
def test_import_errors(change, message):
    state = random_model().to_torch_state_dict()
    change(state)
    with pytest.raises(ValueError, match=message):
        from_torch_state_dict(state)


def test_type_errors():
    with pytest.raises(TypeError, match="mapping"):
        from_torch_state_dict([("rnn.weight_ih_l0", np.ones((2, 2)))])
    with pytest.raises(TypeError, match="elman.RNN"):
        to_torch_state_dict("model")
    state = random_model().to_torch_state_dict()
    state["fc.bias"] = np.array(["a", "b"])
    with pytest.raises(TypeError, match="real numbers"):
        from_torch_state_dict(state)


# ------------------------------------------------------------------------ torch
@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    return torch


def torch_network(torch, input_size, hidden, output, layers):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(input_size, hidden, layers, batch_first=True,
                                    nonlinearity="tanh", dtype=torch.float64)
            self.fc = torch.nn.Linear(hidden, output, dtype=torch.float64)

        def forward(self, x):
            return self.fc(self.rnn(x)[0])

    return Net()


@pytest.mark.parametrize("layers", [1, 2])
def test_elman_to_torch_matches_forward(torch, backend, layers):
    model = elman.RNN(3, 6, 2, num_layers=layers, seed=4)
    net = torch_network(torch, 3, 6, 2, layers)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in
                         model.to_torch_state_dict().items()})
    X = np.random.default_rng(0).normal(size=(5, 9, 3))
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    got = model.forward(X)
    assert np.max(np.abs(got - expected)) <= 1e-12 * max(1.0, np.max(np.abs(expected)))


@pytest.mark.parametrize("layers", [1, 3])
def test_torch_to_elman_matches_forward_and_back(torch, backend, layers):
    torch.manual_seed(layers)
    net = torch_network(torch, 2, 5, 3, layers)  # torch's own init: bias_hh is not zero
    assert net.rnn.bias_hh_l0.abs().sum() > 0
    model = elman.RNN.from_torch_state_dict(net.state_dict())
    assert model.dtype == np.float64 and model.num_layers == layers
    X = np.random.default_rng(1).normal(size=(4, 7, 2))
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    got = model.forward(X)
    assert np.max(np.abs(got - expected)) <= 1e-12 * max(1.0, np.max(np.abs(expected)))
    # Many-to-one reads the head at the last step only.
    last = elman.RNN.from_torch_state_dict(net.state_dict(), return_sequences=False)
    np.testing.assert_allclose(last.forward(X), expected[:, -1, :], rtol=0, atol=1e-12)
    # And back into a fresh torch network: the same function.
    again = torch_network(torch, 2, 5, 3, layers)
    again.load_state_dict({k: torch.from_numpy(v) for k, v in
                           model.to_torch_state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(again(torch.from_numpy(X)).numpy(), expected, rtol=0,
                                   atol=1e-12)


def test_float32_tensors_give_a_float32_model(torch):
    net = torch.nn.RNN(4, 3, batch_first=True)
    state = {f"rnn.{k}": v for k, v in net.state_dict().items()}
    state["fc.weight"] = torch.zeros(1, 3)
    model = elman.RNN.from_torch_state_dict(state)
    assert model.dtype == np.float32 and model.input_size == 4
