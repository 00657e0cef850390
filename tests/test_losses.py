"""Every loss: its value, its exact gradient on every route, and what predict makes of it.

* ``elman._losses.value_and_gradient`` against the formulas written out here per
  element (PyTorch's definitions), sharing no code with elman;
* central finite differences of the loss of each route's ``loss_and_grad`` (the
  fused compiled loops, ``_gemm_path`` around the compiled per-sequence loops,
  ``_gemm_path`` around BLAS steps, the NumPy twin), one and two layers, many-to-many
  and many-to-one, with padded sequences whose targets are NaN;
* the routes against each other (compiled against the twin, float32 and float64),
  and ``train_steps`` against one SGD step from ``loss_and_grad``;
* PyTorch autograd, where torch is installed;
* fit lowers each loss; predict, predict_proba and return_std; model files; bad
  input.
"""

import math
from functools import partial

import numpy as np
import pytest

import elman
from elman import _engine, _gemm_path, _losses, _validation
from elman.exceptions import ModelFileError

LOSSES = _losses.LOSSES
# Outputs per step for each loss: 3 classes, a Gaussian head of two means.
OUTPUTS = {"mse": 3, "mae": 3, "huber": 3, "cross_entropy": 3, "gaussian_nll": 4}


# ----------------------------------------------------------------- problems
def make_targets(rng, loss, O, batch, steps, many_to_many, lengths):
    """Targets as the public API takes them, NaN at padded steps."""
    if loss == "cross_entropy":
        Y = rng.integers(0, O, size=(batch, steps) if many_to_many else (batch,))
        Y = Y.astype(np.float64)
        if many_to_many:
            Y[np.arange(steps)[None, :] >= lengths[:, None]] = np.nan
        return Y
    width = O // 2 if loss == "gaussian_nll" else O
    # Spread so that huber sees both of its pieces (|d| below and above 1).
    Y = 2.0 * rng.normal(size=(batch, steps, width) if many_to_many else (batch, width))
    if many_to_many:
        Y[np.arange(steps)[None, :] >= lengths[:, None]] = np.nan
    return Y


def make_problem(loss, layers, many_to_many, dtype="float64", batch=3, steps=4, inputs=2,
                 hidden=3, seed=0, ragged=True):
    rng = np.random.default_rng(seed)
    O = OUTPUTS[loss]
    model = elman.RNN(inputs, hidden, O, num_layers=layers, return_sequences=many_to_many,
                      dtype=dtype, seed=seed, loss=loss)
    # Larger weights than the default: outputs of order 1, so that every loss has a
    # gradient well above finite-difference noise.
    model.set_weights({k: 1.5 * v for k, v in model.get_weights().items()})
    X = rng.normal(size=(batch, steps, inputs))
    lengths = np.full(batch, steps)
    if ragged:
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[0] = steps
        lengths[-1] = max(1, steps // 2)
    Y = make_targets(rng, loss, O, batch, steps, many_to_many, lengths)
    h0 = 0.5 * rng.normal(size=(layers, batch, hidden))
    return model, X, Y, h0, lengths


def kernel_arrays(model, X, Y, h0, lengths):
    """The arrays of the kernel contract, as the model would pass them."""
    width, classes, about = model._target_size()
    Yk = _validation.check_targets(Y, width, classes, model.return_sequences,
                                   X.shape[0], X.shape[1], False,
                                         np.asarray(lengths, dtype=np.intp), model.dtype,
                                         about)
    return (np.ascontiguousarray(X, dtype=model.dtype), Yk,
            np.ascontiguousarray(h0, dtype=model.dtype),
            np.ascontiguousarray(lengths, dtype=np.intp))


ROUTES = ["fused", "gemm loops", "gemm blas steps", "twin"]


def route_functions(route, request):
    """(loss_and_grad, train_steps) of one route, with the contract's signatures."""
    twin = elman._backend.get_kernels("numpy")
    if route == "twin":
        return twin.loss_and_grad, twin.train_steps
    compiled = request.getfixturevalue("compiled_kernels")
    if route == "fused":
        return compiled.loss_and_grad, compiled.train_steps
    if route == "gemm loops":
        recurrences = _gemm_path.Recurrences("compiled loops", compiled.recurrence_forward,
                                             compiled.recurrence_backward)
    else:
        recurrences = _engine.recurrences(_engine.BLAS_STEPS_MIN_BATCH,
                                          _engine.BLAS_STEPS_MIN_HIDDEN, compiled)
        assert recurrences.name == "blas steps"
    return (partial(_gemm_path.loss_and_grad, recurrences),
            partial(_gemm_path.train_steps, recurrences))


def call_loss_and_grad(function, model, theta, X, Y, h0, lengths):
    grad = np.full(theta.shape, np.nan, dtype=theta.dtype)
    loss = function(theta, *model._sizes(), model.return_sequences, model._loss_code,
                    X, Y, h0, lengths, grad)
    return loss, grad


# ------------------------------------------------------- the definitions
def elementwise_reference(loss, outputs, targets):
    """Mean loss over rows of outputs (n, O) and targets, one element at a time."""
    values = []
    for y, t in zip(outputs, targets):
        if loss == "mse":
            values += [(a - b) ** 2 for a, b in zip(y, t)]
        elif loss == "mae":
            values += [abs(a - b) for a, b in zip(y, t)]
        elif loss == "huber":
            values += [0.5 * (a - b) ** 2 if abs(a - b) < 1 else abs(a - b) - 0.5
                       for a, b in zip(y, t)]
        elif loss == "cross_entropy":
            c = int(t[0])
            values.append(math.log(sum(math.exp(v) for v in y)) - y[c])
        else:
            k = len(y) // 2
            for j in range(k):
                var = max(math.exp(y[k + j]), 1e-6)
                values.append(0.5 * (math.log(var) + (y[j] - t[j]) ** 2 / var))
    return sum(values) / len(values)


@pytest.mark.parametrize("loss", LOSSES)
def test_value_and_gradient_match_the_formulas(loss):
    rng = np.random.default_rng(1)
    O = OUTPUTS[loss]
    outputs = 2.0 * rng.normal(size=(7, O))
    targets = make_targets(rng, loss, O, 7, 1, False, None)
    targets = targets[:, None] if targets.ndim == 1 else targets
    valid = np.ones((7, 1), dtype=bool)
    valid[2] = False
    targets[2] = np.nan  # an invalid row's target is never read
    value, gradient = _losses.value_and_gradient(_losses.loss_code(loss), outputs, targets,
                                                 valid)
    keep = valid[:, 0]
    assert value == pytest.approx(elementwise_reference(loss, outputs[keep], targets[keep]),
                                  rel=1e-13)
    assert np.all(gradient[2] == 0)
    # The gradient by central differences of the formula written out above.
    step = 1e-6
    for i in np.ndindex(outputs.shape):
        if not keep[i[0]]:
            continue
        plus, minus = outputs.copy(), outputs.copy()
        plus[i] += step
        minus[i] -= step
        numeric = (elementwise_reference(loss, plus[keep], targets[keep])
                   - elementwise_reference(loss, minus[keep], targets[keep])) / (2 * step)
        assert gradient[i] == pytest.approx(numeric, abs=1e-8), i


def test_gaussian_variance_clamp_is_pytorchs():
    """Below the clamp the value uses var = 1e-6, and the gradient is PyTorch's:
    0.5 (1/eps - d**2/eps**2) exp(s), not the clamped function's derivative (zero)."""
    outputs = np.array([[0.3, -0.2, -20.0, 0.1]])
    targets = np.array([[0.1, 0.4]])
    value, gradient = _losses.value_and_gradient(_losses.GAUSSIAN_NLL, outputs, targets)
    assert value == pytest.approx(elementwise_reference("gaussian_nll", outputs, targets),
                                  rel=1e-13)
    d = 0.3 - 0.1
    assert gradient[0, 0] == pytest.approx(d / 1e-6 / 2, rel=1e-12)
    expected = 0.5 * (1 / 1e-6 - d * d / 1e-12) * math.exp(-20.0) / 2
    assert gradient[0, 2] == pytest.approx(expected, rel=1e-12)


def test_huber_problems_reach_both_pieces():
    model, X, Y, h0, lengths = make_problem("huber", 1, True)
    diff = model.forward(X, h0, lengths=lengths) - Y
    valid = np.abs(diff[np.arange(X.shape[1])[None, :] < lengths[:, None]])
    assert (valid < 1).any() and (valid > 1).any()


# ------------------------------------------------ finite differences, every route
FD_STEP = 1e-6


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("many_to_many", [True, False], ids=["m2m", "m2o"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_matches_finite_differences(loss, layers, many_to_many, route, request):
    loss_and_grad, _ = route_functions(route, request)
    model, X, Y, h0, lengths = make_problem(loss, layers, many_to_many)
    X, Yk, h0, lengths = kernel_arrays(model, X, Y, h0, lengths)
    theta = model.parameters.copy()
    value, grad = call_loss_and_grad(loss_and_grad, model, theta, X, Yk, h0, lengths)
    assert np.isfinite(value) and np.isfinite(grad).all()
    numeric = np.empty_like(grad)
    for i in range(theta.size):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += FD_STEP
        minus[i] -= FD_STEP
        numeric[i] = (call_loss_and_grad(loss_and_grad, model, plus, X, Yk, h0, lengths)[0]
                      - call_loss_and_grad(loss_and_grad, model, minus, X, Yk, h0,
                                           lengths)[0]) / (2 * FD_STEP)
    # Every weight group has a gradient clearly above the differences' noise.
    for name, view in model._views(grad).items():
        assert np.max(np.abs(view)) > 1e-4, name
    error = np.max(np.abs(numeric - grad))
    assert error <= 1e-6 * np.max(np.abs(grad)) + 1e-9, error


# ------------------------------------------------------ routes agree with each other
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("route", ["fused", "gemm loops", "gemm blas steps"])
@pytest.mark.parametrize("loss", LOSSES)
def test_compiled_routes_match_twin(loss, route, dtype, request, assert_close):
    loss_and_grad, _ = route_functions(route, request)
    twin_loss_and_grad, _ = route_functions("twin", request)
    for layers, many_to_many in ((1, True), (2, False), (2, True)):
        model, X, Y, h0, lengths = make_problem(loss, layers, many_to_many, dtype,
                                                batch=5, steps=6, hidden=7, seed=3)
        arrays = kernel_arrays(model, X, Y, h0, lengths)
        theta = model.parameters
        value, grad = call_loss_and_grad(loss_and_grad, model, theta, *arrays)
        expected, expected_grad = call_loss_and_grad(twin_loss_and_grad, model, theta,
                                                     *arrays)
        assert_close(value, expected, dtype, what=f"{route} loss")
        assert grad.dtype == np.dtype(dtype)
        assert_close(grad, expected_grad, dtype, what=f"{route} gradient")


@pytest.mark.parametrize("loss", LOSSES)
def test_float32_agrees_with_float64(loss, backend):
    results = {}
    for dtype in ("float64", "float32"):
        model, X, Y, h0, lengths = make_problem(loss, 2, True, dtype)
        value, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
        results[dtype] = value, grads.flat.astype(np.float64)
    assert results["float32"][0] == pytest.approx(results["float64"][0], rel=1e-5)
    scale = np.max(np.abs(results["float64"][1]))
    assert np.max(np.abs(results["float32"][1] - results["float64"][1])) <= 1e-5 * scale


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("loss", LOSSES)
def test_train_steps_is_sgd_on_loss_and_grad(loss, route, request):
    """Two batches of train_steps, plain SGD: each step is theta - lr * the gradient
    loss_and_grad gives on that batch (from a zero state)."""
    loss_and_grad, train_steps = route_functions(route, request)
    model, X, Y, _, lengths = make_problem(loss, 2, True, batch=5)
    X, Yk, _, lengths = kernel_arrays(model, X, Y, np.zeros((2, 5, 3)), lengths)
    order = np.array([4, 0, 2, 1, 3], dtype=np.intp)
    lr = 0.1
    hyper = elman.optimizers.SGD(lr=lr).hyperparameters()
    theta = model.parameters.copy()
    expected = theta.copy()
    expected_losses = []
    for rows in (order[:3], order[3:]):
        h0 = np.zeros((2, rows.size, 3))
        value, grad = call_loss_and_grad(loss_and_grad, model, expected, X[rows],
                                         np.ascontiguousarray(Yk[rows]), h0, lengths[rows])
        expected_losses.append(value)
        expected = expected - lr * grad
    state = np.zeros((2, theta.size))
    losses = np.full(2, np.nan)
    done = train_steps(theta, *model._sizes(), True, model._loss_code, X, Yk, lengths, order,
                       3, elman.optimizers.SGD.code, hyper, state, np.zeros(1, np.int64),
                       0.0, 0.0, losses)
    assert done == 2
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-12)
    np.testing.assert_allclose(theta, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", ["mae", "cross_entropy", "gaussian_nll"])
def test_model_api_on_gemm_shapes_matches_twin(loss, both_backends, assert_close):
    """A batch large enough that the model itself takes the gemm route."""
    model, X, Y, h0, lengths = make_problem(loss, 1, True, batch=40, steps=3, hidden=128,
                                            seed=5)
    assert _engine.route(40, 128, elman._backend.get_kernels("cython")).name == "gemm"
    compiled, twin = both_backends(lambda: model.loss_and_grad(X, Y, h0, lengths=lengths))
    assert_close(compiled[0], twin[0], "float64", what="loss")
    assert_close(compiled[1].flat, twin[1].flat, "float64", what="gradient")


# ------------------------------------------------------------------- PyTorch
def torch_loss_and_grads(model, X, Y, h0, lengths):
    """Loss and gradients by torch.nn.RNN + Linear and torch.nn.functional's losses."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rnn = torch.nn.RNN(model.input_size, model.hidden_size, model.num_layers,
                       batch_first=True, dtype=torch.float64)
    head = torch.nn.Linear(model.hidden_size, model.output_size, dtype=torch.float64)
    state = {k: torch.tensor(v) for k, v in model.to_torch_state_dict().items()}
    rnn.load_state_dict({k[len("rnn."):]: v for k, v in state.items() if k.startswith("rnn.")})
    head.load_state_dict({k[len("fc."):]: v for k, v in state.items() if k.startswith("fc.")})
    states, _ = rnn(torch.tensor(X), torch.tensor(h0))
    outputs = head(states)                                  # (B, T, O)
    steps = X.shape[1]
    if model.return_sequences:
        valid = torch.tensor(np.arange(steps)[None, :] < lengths[:, None])
        picked = outputs[valid]                              # (valid steps, O)
        targets = np.asarray(Y)[np.arange(steps)[None, :] < lengths[:, None]]
    else:
        picked = outputs[torch.arange(X.shape[0]), torch.tensor(lengths - 1)]
        targets = np.asarray(Y)
    if model.loss == "cross_entropy":
        value = F.cross_entropy(picked, torch.tensor(targets.astype(np.int64).ravel()))
    elif model.loss == "gaussian_nll":
        k = model.output_size // 2
        value = F.gaussian_nll_loss(picked[:, :k], torch.tensor(targets).reshape(-1, k),
                                    torch.exp(picked[:, k:]))
    else:
        function = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}[model.loss]
        value = function(picked, torch.tensor(targets).reshape(picked.shape))
    value.backward()
    grads = {"Why": head.weight.grad.numpy(), "by": head.bias.grad.numpy()}
    for layer in range(model.num_layers):
        grads[f"layers.{layer}.Wxh"] = getattr(rnn, f"weight_ih_l{layer}").grad.numpy()
        grads[f"layers.{layer}.Whh"] = getattr(rnn, f"weight_hh_l{layer}").grad.numpy()
        grads[f"layers.{layer}.bh"] = getattr(rnn, f"bias_ih_l{layer}").grad.numpy()
    return float(value.detach()), grads


@pytest.mark.parametrize("many_to_many", [True, False], ids=["m2m", "m2o"])
@pytest.mark.parametrize("loss", LOSSES)
def test_matches_pytorch_autograd(loss, many_to_many, backend):
    model, X, Y, h0, lengths = make_problem(loss, 2, many_to_many, batch=4, steps=5,
                                            hidden=6, seed=7)
    if loss == "gaussian_nll":
        # One log-variance below log(1e-6), where PyTorch's clamp is active.
        by = model.get_weights()
        by["by"][2] = -16.0
        model.set_weights(by)
    expected, expected_grads = torch_loss_and_grads(model, X, Y, h0, lengths)
    value, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
    assert value == pytest.approx(expected, rel=1e-12)
    for name, gradient in grads.items():
        scale = max(1.0, np.max(np.abs(expected_grads[name])))
        assert np.max(np.abs(gradient - expected_grads[name])) <= 1e-12 * scale, name


# -------------------------------------------------------------------- training
@pytest.mark.parametrize("loss", LOSSES)
def test_fit_lowers_each_loss(loss, backend):
    model, X, Y, _, lengths = make_problem(loss, 1, True, batch=16, steps=6, hidden=8,
                                           seed=2, ragged=True)
    before = model.loss_and_grad(X, Y, lengths=lengths)[0]
    history = model.fit(X, Y, lengths=lengths, epochs=40, batch_size=8, lr=0.01, seed=0)
    after = model.loss_and_grad(X, Y, lengths=lengths)[0]
    assert after < before - 0.1 * abs(before) or after < 0.5 * before
    assert history.loss[-1] < history.loss[0]


@pytest.mark.parametrize("loss", ["mae", "cross_entropy", "gaussian_nll"])
def test_fit_validation_loss_is_the_models_loss(loss, backend):
    model, X, Y, _, lengths = make_problem(loss, 1, True, batch=6, seed=4)
    history = model.fit(X, Y, lengths=lengths, epochs=1, validation_data=(X, Y, lengths),
                        optimizer="sgd", lr=1e-12)
    # An update of 1e-12 changes nothing visible: the validation loss is the loss.
    assert history.val_loss[0] == pytest.approx(
        model.loss_and_grad(X, Y, lengths=lengths)[0], rel=1e-9)


@pytest.mark.parametrize("loss", ["huber", "cross_entropy"])
def test_fit_with_truncated_bptt(loss, backend):
    model, X, Y, _, lengths = make_problem(loss, 1, True, batch=8, steps=8, seed=6)
    history = model.fit(X, Y, lengths=lengths, epochs=30, batch_size=4, tbptt=3, lr=0.01)
    assert history.loss[-1] < history.loss[0]


# ---------------------------------------------------------------------- predict
def test_predict_classes_and_probabilities(backend):
    model, X, _, _, _ = make_problem("cross_entropy", 2, True, seed=8)
    logits = model.forward(X)
    probabilities = model.predict_proba(X)
    assert probabilities.shape == logits.shape == (3, 4, 3)
    expected = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)
    classes = model.predict(X)
    assert classes.shape == (3, 4) and classes.dtype == np.intp
    np.testing.assert_array_equal(classes, np.argmax(logits, axis=-1))
    assert len(np.unique(classes)) > 1
    # Unbatched, many-to-one, small batches.
    assert model.predict(X[0]).shape == (4,)
    assert model.predict_proba(X[0]).shape == (4, 3)
    np.testing.assert_array_equal(model.predict(X, batch_size=2), classes)
    last = elman.RNN(2, 3, 3, return_sequences=False, loss="cross_entropy", seed=1)
    assert last.predict(X).shape == (3,) and last.predict(X[0]).shape == ()
    assert last.predict_proba(X).shape == (3, 3)


def test_predict_gaussian_means_and_stds(backend):
    model, X, _, _, _ = make_problem("gaussian_nll", 1, True, seed=9)
    outputs = model.forward(X)
    means = model.predict(X)
    np.testing.assert_array_equal(means, outputs[..., :2])
    means2, stds = model.predict(X, return_std=True)
    np.testing.assert_array_equal(means2, means)
    np.testing.assert_allclose(stds, np.exp(0.5 * outputs[..., 2:]), rtol=1e-12)
    assert stds.shape == means.shape == (3, 4, 2)
    model.set_weights({**model.get_weights(), "by": np.array([0.0, 0.0, -40.0, 0.0])})
    assert np.all(model.predict(X, return_std=True)[1][..., 0] == np.sqrt(1e-6))
    unbatched = model.predict(X[0], return_std=True)
    assert unbatched[0].shape == unbatched[1].shape == (4, 2)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_regression_predict_is_forward(loss, backend):
    model, X, _, _, _ = make_problem(loss, 1, True)
    np.testing.assert_array_equal(model.predict(X), model.forward(X))
    with pytest.raises(ValueError, match=f"predict_proba needs .*loss='cross_entropy'.*'{loss}'"):
        model.predict_proba(X)
    with pytest.raises(ValueError, match=f"return_std=True needs .*gaussian_nll.*'{loss}'"):
        model.predict(X, return_std=True)


def test_return_std_needs_gaussian_head():
    model = elman.RNN(2, 3, 3, loss="cross_entropy")
    with pytest.raises(ValueError, match="return_std=True needs"):
        model.predict(np.zeros((1, 2, 2)), return_std=True)
    with pytest.raises(TypeError, match="return_std must be True or False"):
        model.predict(np.zeros((1, 2, 2)), return_std="yes")


# ------------------------------------------------------------ configuration, files
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_in_config_repr_and_model_files(loss, tmp_path):
    model = elman.RNN(2, 3, OUTPUTS[loss], loss=loss, seed=0)
    assert model.get_config()["loss"] == loss
    assert model.loss == loss
    assert (f"loss={loss!r}" in repr(model)) == (loss != "mse")
    model.save(tmp_path / "model.npz")
    loaded = elman.load(tmp_path / "model.npz")
    assert loaded.loss == loss and loaded.get_config() == model.get_config()
    X = np.random.default_rng(0).normal(size=(2, 3, 2))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def _rewrite_config(path, target, change):
    """Copy a model file with its config changed by ``change(config)``."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "__format__.npy":
                array = np.load(__import__("io").BytesIO(data))
                header = json.loads(array.tobytes().decode())
                change(header["model"]["config"])
                encoded = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
                buffer = __import__("io").BytesIO()
                np.save(buffer, encoded)
                data = buffer.getvalue()
            out.writestr(info.filename, data)


def test_files_without_a_loss_load_as_mse(tmp_path):
    model = elman.RNN(2, 3, 1, seed=0)
    model.save(tmp_path / "model.npz")
    _rewrite_config(tmp_path / "model.npz", tmp_path / "old.npz",
                    lambda config: config.pop("loss"))
    loaded = elman.load(tmp_path / "old.npz")
    assert loaded.loss == "mse"


@pytest.mark.parametrize("config_loss, match", [
    ("hinge", r"model.config\['loss'\] must be one of"),
    (3, r"model.config\['loss'\] must be one of"),
    ("cross_entropy", r"cross_entropy' needs output_size >= 2"),
])
def test_model_file_with_a_bad_loss_is_refused(config_loss, match, tmp_path):
    elman.RNN(2, 3, 1, seed=0).save(tmp_path / "model.npz")
    _rewrite_config(tmp_path / "model.npz", tmp_path / "bad.npz",
                    lambda config: config.update(loss=config_loss))
    with pytest.raises(ModelFileError, match=match):
        elman.load(tmp_path / "bad.npz")


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(output_size=1, loss="hinge"), ValueError, r"loss must be one of \('mse'"),
    (dict(output_size=1, loss=None), ValueError, "loss must be one of"),
    (dict(output_size=1, loss="cross_entropy"), ValueError,
     r"loss='cross_entropy' needs output_size >= 2.*got output_size=1"),
    (dict(output_size=3, loss="gaussian_nll"), ValueError,
     r"loss='gaussian_nll' needs an even output_size.*got output_size=3"),
])
def test_bad_loss_configuration(kwargs, error, match):
    with pytest.raises(error, match=match):
        elman.RNN(2, 3, **kwargs)


X_OK = np.zeros((2, 3, 2))


@pytest.mark.parametrize("Y, return_sequences, error, match", [
    (np.array([[0, 1, 2.5], [0, 0, 0]]), True, ValueError,
     r"Y must hold integer class indices .*got 2.5"),
    (np.array([[0, 1, 3], [0, 0, 0]]), True, ValueError,
     r"class indices in \[0, 3\).*got 3"),
    (np.array([[0, -1, 0], [0, 0, 0]]), True, ValueError, r"in \[0, 3\).*got -1"),
    (np.array([[0, 1, np.nan], [0, 0, 0]]), True, ValueError, "NaN or inf at a valid step"),
    (np.zeros((2, 3), dtype=bool), True, TypeError, "integer class indices.*booleans"),
    (np.zeros((2, 3, 3)), True, ValueError,
     r"Y must hold class indices of shape \(2, 3\) \(or \(2, 3, 1\)\).*got \(2, 3, 3\)"),
    (np.zeros((2, 3)), False, ValueError,
     r"class indices of shape \(2,\) \(or \(2, 1\)\) .*return_sequences=False"),
    (np.array([0, 7]), False, ValueError, r"in \[0, 3\).*got 7"),
])
def test_bad_class_targets(Y, return_sequences, error, match, backend):
    model = elman.RNN(2, 3, 3, return_sequences=return_sequences, loss="cross_entropy")
    with pytest.raises(error, match=match):
        model.loss_and_grad(X_OK, Y)
    with pytest.raises(error, match=match):
        model.fit(X_OK, Y, epochs=1)


def test_class_targets_accepted_forms(backend):
    model = elman.RNN(2, 3, 3, loss="cross_entropy", seed=0)
    Y = np.array([[0, 1, 2], [2, 2, 1]])
    expected = model.loss_and_grad(X_OK, Y)[0]
    assert model.loss_and_grad(X_OK, Y[..., None])[0] == expected
    assert model.loss_and_grad(X_OK, Y.astype(np.float32))[0] == expected
    assert model.loss_and_grad(X_OK, Y.tolist())[0] == expected
    assert model.loss_and_grad(X_OK[0], Y[0])[0] == pytest.approx(
        model.loss_and_grad(X_OK[:1], Y[:1])[0], rel=1e-15)
    # Padded steps are ignored, whatever their targets hold.
    padded = Y.astype(np.float64)
    padded[1, 2] = np.nan
    padded[0, 1:] = 99
    assert np.isfinite(model.loss_and_grad(X_OK, padded, lengths=[1, 2])[0])
    last = elman.RNN(2, 3, 3, return_sequences=False, loss="cross_entropy", seed=0)
    assert last.loss_and_grad(X_OK[0], 2)[0] == pytest.approx(
        last.loss_and_grad(X_OK[:1], [2])[0], rel=1e-15)


def test_gaussian_targets_have_half_the_outputs(backend):
    model = elman.RNN(2, 3, 4, loss="gaussian_nll")
    with pytest.raises(ValueError, match=r"Y must have shape \(2, 3, 2\) .*loss='gaussian_nll', "
                                         r"output_size=4: 2 targets per step.*got \(2, 3, 4\)"):
        model.loss_and_grad(X_OK, np.zeros((2, 3, 4)))
    last = elman.RNN(2, 3, 2, return_sequences=False, loss="gaussian_nll", seed=0)
    assert last.loss_and_grad(X_OK, np.zeros(2))[0] == last.loss_and_grad(
        X_OK, np.zeros((2, 1)))[0]


# -------------------------------------------- RNNRegressor, fit_many, Forecaster
def test_regressor_takes_a_loss(backend):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(60, 5, 2))
    y = X[:, -1, 0] + 0.3 * rng.normal(size=60)
    reg = elman.RNNRegressor(hidden_size=4, epochs=3, loss="huber", random_state=0).fit(X, y)
    assert reg.model_.loss == "huber" and reg.get_params()["loss"] == "huber"
    assert reg.predict(X).shape == (60,)
    with pytest.raises(ValueError, match="return_std=True needs .*'huber'"):
        reg.predict(X, return_std=True)
    gauss = elman.RNNRegressor(hidden_size=4, epochs=3, loss="gaussian_nll",
                               random_state=0).fit(X, y)
    assert gauss.model_.output_size == 2 and gauss.model_.loss == "gaussian_nll"
    means, stds = gauss.predict(X, return_std=True)
    assert means.shape == stds.shape == (60,)
    np.testing.assert_array_equal(means, gauss.predict(X))
    # In the target's units: the model's means and sds, scaled back.
    model_means, model_stds = gauss.model_.predict(X, return_std=True)
    np.testing.assert_allclose(means, model_means[:, 0] * gauss.y_scale_[0] + gauss.y_mean_[0],
                               rtol=1e-12)
    np.testing.assert_allclose(stds, model_stds[:, 0] * gauss.y_scale_[0], rtol=1e-12)


@pytest.mark.parametrize("loss, match", [
    ("cross_entropy", r"loss must be one of \('mse', 'mae', 'huber', 'gaussian_nll'\).*"
                      r"for classes use elman.RNN"),
    ("hinge", r"loss must be one of .*got 'hinge'"),
])
def test_regressor_refuses_other_losses(loss, match):
    with pytest.raises(ValueError, match=match):
        elman.RNNRegressor(loss=loss, epochs=1).fit(np.zeros((4, 3, 1)), np.zeros(4))


def test_fit_many_passes_the_loss(backend):
    rng = np.random.default_rng(11)
    tasks = [(rng.normal(size=(12, 4, 1)), rng.normal(size=(12, 4, 1))) for _ in range(2)]
    result = elman.fit_many(tasks, [{"loss": "mae"}, {"loss": "gaussian_nll"}], epochs=2,
                            n_jobs=1, seed=0)
    assert [m.loss for m in result.models] == ["mae", "gaussian_nll"]
    assert [m.output_size for m in result.models] == [1, 2]
    classifier = elman.RNN(1, 4, 3, loss="cross_entropy", seed=0)
    classes = [(t[0], rng.integers(0, 3, size=(12, 4))) for t in tasks]
    result = elman.fit_many(classes, model=classifier, epochs=2, n_jobs=1, seed=0)
    assert all(m.loss == "cross_entropy" for m in result.models) and not result.errors


@pytest.mark.parametrize("loss, match", [
    ("cross_entropy", r"fit_many: loss='cross_entropy' needs the number of classes.*model="),
    ("hinge", r"fit_many: loss must be one of"),
])
def test_fit_many_refuses_a_bad_loss(loss, match):
    with pytest.raises(ValueError, match=match):
        elman.fit_many([(np.zeros((4, 3, 1)), np.zeros((4, 3, 1)))], loss=loss, n_jobs=1)
    with pytest.raises(ValueError, match=match.replace("fit_many", r"params\[0\]")):
        elman.fit_many([(np.zeros((4, 3, 1)), np.zeros((4, 3, 1)))], [{"loss": loss}],
                       n_jobs=1)


@pytest.mark.parametrize("loss", ["huber", "gaussian_nll"])
def test_forecaster_takes_a_loss(loss, backend, tmp_path):
    t = np.arange(150)
    y = 10 + 0.05 * t + np.sin(2 * np.pi * t / 12) \
        + 0.1 * np.random.default_rng(12).normal(size=150)
    forecaster = elman.Forecaster(fast=True, epochs=5, n_jobs=1, loss=loss).fit(y)
    assert f"loss={loss!r}" in repr(forecaster)
    members = [model for pipeline in forecaster._pipeline.pipelines
               for model, _ in pipeline.members]
    assert members and all(m.loss == loss for m in members)
    forecast = forecaster.predict(12)
    assert forecast.shape == (12,) and np.isfinite(forecast).all()
    forecaster.save(tmp_path / "f.npz")
    loaded = elman.Forecaster.load(tmp_path / "f.npz")
    assert loaded.loss == loss
    np.testing.assert_array_equal(loaded.predict(12), forecast)


def test_forecaster_refuses_other_losses():
    with pytest.raises(ValueError, match=r"loss must be one of \('mse', 'mae', 'huber', "
                                         r"'gaussian_nll'\); got 'cross_entropy'"):
        elman.Forecaster(loss="cross_entropy")


def test_pickles_keep_the_loss_and_old_pickles_are_mse():
    import pickle

    model = elman.RNN(2, 3, 4, loss="gaussian_nll", seed=0)
    assert pickle.loads(pickle.dumps(model)).loss == "gaussian_nll"
    state = model.__getstate__()
    del state["_loss_code"]  # as a model pickled before models had a loss
    old = elman.RNN.__new__(elman.RNN)
    old.__setstate__(state)
    assert old.loss == "mse" and old.get_config()["loss"] == "mse"
    with pytest.raises(AttributeError):
        model.loss = "mae"  # read-only: the constructor sets it
