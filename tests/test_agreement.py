"""The compiled kernels agree with their NumPy twin on many random shapes.

Three compiled routes are compared with the twin:

* the fused loops (``kernels.forward`` / ``kernels.loss_and_grad`` /
  ``kernels.backward``, one call into compiled code per step), called directly on
  every shape;
* ``_gemm_path`` wrapped around the compiled recurrences the route table picks for
  the shape (what the model uses for large batch * hidden**2), called directly on
  every shape;
* the public model API, which dispatches between the two (``_engine.route``);
  the shape list covers both sides of that switch, and a spy checks which route
  a call really took.

Both nonlinearities (tanh, relu) are among the shapes. Tolerances are the
conftest's: 1e-12 (float64) and 1e-5 (float32) relative to the largest magnitude in
each array.
"""

from dataclasses import dataclass

import numpy as np
import pytest

import elman
from elman import _engine, _gemm_path
from elman.optimizers import SGD, Adam


@dataclass(frozen=True)
class Case:
    batch: int
    steps: int
    inputs: int
    hidden: int
    outputs: int
    layers: int
    many_to_many: bool
    dtype: str
    nonzero_h0: bool
    ragged: bool
    seed: int
    nonlinearity: str = "tanh"

    def __str__(self):
        return (f"B{self.batch}-T{self.steps}-I{self.inputs}-H{self.hidden}-O{self.outputs}"
                f"-L{self.layers}-{'m2m' if self.many_to_many else 'm2o'}-{self.dtype}"
                f"{'-h0' if self.nonzero_h0 else ''}{'-ragged' if self.ragged else ''}"
                f"-{self.nonlinearity}")


def _cases():
    """A fixed, seeded list: corners written out, then random small shapes."""
    cases = [
        # The smallest everything: batch 1, one step, one unit.
        Case(1, 1, 1, 1, 1, 1, True, "float64", False, False, 1),
        Case(1, 1, 1, 1, 1, 1, False, "float32", True, False, 2),
        Case(3, 1, 2, 1, 1, 2, True, "float64", True, True, 3),
        # Three layers, both modes, both dtypes, ragged and not.
        Case(4, 6, 3, 5, 2, 3, True, "float64", True, True, 4),
        Case(4, 6, 3, 5, 2, 3, False, "float64", True, True, 5),
        Case(2, 9, 2, 7, 3, 3, True, "float32", True, True, 6),
        Case(2, 9, 2, 7, 3, 3, False, "float32", False, False, 7),
        # Hidden 300: batch 1 stays on the fused loops, batch 3 crosses to _gemm_path.
        Case(1, 4, 3, 300, 2, 1, True, "float64", True, False, 8),
        Case(3, 3, 2, 300, 1, 2, False, "float64", True, True, 9),
        Case(3, 3, 2, 300, 2, 1, True, "float32", True, True, 10),
        # batch * hidden**2 above rnn.FUSED_MAX_BATCH_HIDDEN2 at moderate sizes.
        Case(40, 5, 3, 128, 2, 1, True, "float64", True, True, 11),
        Case(12, 4, 2, 256, 1, 2, False, "float32", True, True, 12),
        # relu on both gemm recurrences (BLAS steps from batch 16, hidden 32; the
        # compiled loops below) and on the fused loops.
        Case(40, 5, 3, 128, 2, 2, True, "float32", True, True, 13, "relu"),
        Case(12, 4, 2, 256, 1, 1, False, "float64", True, True, 14, "relu"),
        Case(4, 6, 3, 5, 2, 3, True, "float64", True, True, 15, "relu"),
    ]
    rng = np.random.default_rng(20261122)
    for k in range(28):
        cases.append(Case(
            batch=int(rng.choice([1, 1, 2, 3, 5, 8])),
            steps=int(rng.choice([1, 2, 3, 5, 8, 12])),
            inputs=int(rng.integers(1, 5)),
            hidden=int(rng.choice([1, 2, 3, 4, 6, 9, 16, 33])),
            outputs=int(rng.integers(1, 4)),
            layers=int(rng.integers(1, 4)),
            many_to_many=bool(rng.integers(2)),
            dtype=str(rng.choice(["float64", "float32"])),
            nonzero_h0=bool(rng.integers(2)),
            ragged=bool(rng.integers(2)),
            seed=100 + k,
            nonlinearity="relu" if k % 2 else "tanh",
        ))
    return cases


CASES = _cases()


def _problem(case):
    """A model and validated, contiguous kernel inputs for one case."""
    rng = np.random.default_rng(case.seed)
    dtype = np.dtype(case.dtype)
    model = elman.RNN(case.inputs, case.hidden, case.outputs, num_layers=case.layers,
                      return_sequences=case.many_to_many, nonlinearity=case.nonlinearity,
                      dtype=dtype, seed=case.seed)
    # Larger than the default init, so that tanh is well inside its nonlinear range.
    weights = {k: 1.7 * v for k, v in model.get_weights().items()}
    model.set_weights(weights)
    B, T, L, H, O = case.batch, case.steps, case.layers, case.hidden, case.outputs
    X = rng.normal(size=(B, T, case.inputs)).astype(dtype)
    if case.ragged:
        lengths = rng.integers(1, T + 1, size=B).astype(np.intp)
        lengths[rng.integers(B)] = T  # keep one full-length sequence
    else:
        lengths = np.full(B, T, dtype=np.intp)
    if case.many_to_many:
        Y = rng.normal(size=(B, T, O)).astype(dtype)
        Y[np.arange(T)[None, :] >= lengths[:, None]] = np.nan  # padded: must be ignored
    else:
        Y = rng.normal(size=(B, O)).astype(dtype)
    h0 = (rng.uniform(-0.9, 0.9, size=(L, B, H)) if case.nonzero_h0
          else np.zeros((L, B, H))).astype(dtype)
    return model, X, Y, h0, lengths


def _kernel_forward(forward, model, X, h0, lengths):
    B, T, _ = X.shape
    Y_out = np.full((B, T if model.return_sequences else 1, model.output_size), np.nan,
                    dtype=model.dtype)
    h_last = np.full((model.num_layers, B, model.hidden_size), np.nan, dtype=model.dtype)
    forward(model.parameters, model.input_size, model.hidden_size, model.output_size,
            model.num_layers, model._activation, model.return_sequences, X, h0, lengths,
            Y_out, h_last)
    return Y_out, h_last


def _kernel_loss_and_grad(loss_and_grad, model, X, Y, h0, lengths):
    Y3 = Y if model.return_sequences else np.ascontiguousarray(Y[:, None, :])
    grad = np.full(model.n_params, np.nan, dtype=model.dtype)
    loss = loss_and_grad(model.parameters, model.input_size, model.hidden_size,
                         model.output_size, model.num_layers, model._activation,
                         model.return_sequences, model._loss_code, X, Y3, h0, lengths, grad)
    return loss, grad


def _kernel_backward(backward, model, X, dY, h0, lengths, dh_last):
    dY3 = dY if model.return_sequences else np.ascontiguousarray(dY[:, None, :])
    grad = np.full(model.n_params, np.nan, dtype=model.dtype)
    dX = np.full(X.shape, np.nan, dtype=model.dtype)
    dh0 = np.full(h0.shape, np.nan, dtype=model.dtype)
    backward(model.parameters, model.input_size, model.hidden_size, model.output_size,
             model.num_layers, model._activation, model.return_sequences, X, h0, lengths,
             dY3, grad, dX, dh0, dh_last)
    return grad, dX, dh0


def _gemm_with(kernels, batch, hidden):
    recurrences = _engine.recurrences(batch, hidden, kernels)

    def forward(*args):
        _gemm_path.forward(recurrences, *args)

    def loss_and_grad(*args):
        return _gemm_path.loss_and_grad(recurrences, *args)

    def backward(*args):
        _gemm_path.backward(recurrences, *args)

    return forward, loss_and_grad, backward


@pytest.mark.parametrize("case", CASES, ids=str)
def test_fused_and_gemm_routes_match_twin(case, compiled_kernels, twin_kernels, assert_close):
    model, X, Y, h0, lengths = _problem(case)
    dtype = model.dtype
    expected_Y, expected_h = _kernel_forward(twin_kernels.forward, model, X, h0, lengths)
    expected_loss, expected_grad = _kernel_loss_and_grad(
        twin_kernels.loss_and_grad, model, X, Y, h0, lengths)
    assert expected_Y.dtype == dtype and np.isfinite(expected_loss)
    # dY, NaN at padded steps (ignored there), as a gradient reaching the outputs.
    dY = np.random.default_rng(case.seed + 1).normal(size=Y.shape).astype(dtype)
    dY[np.isnan(Y)] = np.nan
    # dh_last, the gradient reaching the last states.
    dh_last = np.random.default_rng(case.seed + 2).normal(size=h0.shape).astype(dtype)
    expected_backward = _kernel_backward(twin_kernels.backward, model, X, dY, h0, lengths,
                                         dh_last)
    for array in expected_backward:
        assert np.isfinite(array).all()

    routes = {
        "fused": (compiled_kernels.forward, compiled_kernels.loss_and_grad,
                  compiled_kernels.backward),
        "gemm": _gemm_with(compiled_kernels, case.batch, case.hidden),
    }
    for route, (forward, loss_and_grad, backward) in routes.items():
        Y_out, h_last = _kernel_forward(forward, model, X, h0, lengths)
        assert_close(Y_out, expected_Y, dtype, what=f"{route} outputs")
        assert_close(h_last, expected_h, dtype, what=f"{route} final states")
        loss, grad = _kernel_loss_and_grad(loss_and_grad, model, X, Y, h0, lengths)
        assert isinstance(loss, float)
        assert_close(loss, expected_loss, dtype, what=f"{route} loss")
        for name, view in model._views(grad).items():
            assert_close(view, model._views(expected_grad)[name], dtype,
                         what=f"{route} gradient {name}")
        grad, dX, dh0 = _kernel_backward(backward, model, X, dY, h0, lengths, dh_last)
        assert_close(grad, expected_backward[0], dtype, what=f"{route} backward gradient")
        assert_close(dX, expected_backward[1], dtype, what=f"{route} backward dX")
        assert_close(dh0, expected_backward[2], dtype, what=f"{route} backward dh0")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_model_api_agrees(case, both_backends, assert_close):
    model, X, Y, h0, lengths = _problem(case)
    dtype = model.dtype

    dY = np.random.default_rng(case.seed + 1).normal(size=Y.shape)

    def run():
        outputs, h_last = model.forward(X, h0, return_state=True, lengths=lengths)
        loss, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
        return outputs, h_last, loss, grads, model.backward(X, dY, h0, lengths=lengths)

    compiled, twin = both_backends(run)
    assert_close(compiled[0], twin[0], dtype, what="forward outputs")
    assert_close(compiled[1], twin[1], dtype, what="final states")
    assert_close(compiled[2], twin[2], dtype, what="loss")
    assert set(compiled[3]) == set(twin[3]) == set(model.get_weights())
    for name in twin[3]:
        assert compiled[3][name].dtype == twin[3][name].dtype == dtype
        assert_close(compiled[3][name], twin[3][name], dtype, what=f"gradient {name}")
    grads, dX, dh0 = compiled[4]
    for name in twin[4][0]:
        assert_close(grads[name], twin[4][0][name], dtype, what=f"backward gradient {name}")
    assert dX.shape == X.shape and dh0.shape == h0.shape
    assert_close(dX, twin[4][1], dtype, what="backward dX")
    assert_close(dh0, twin[4][2], dtype, what="backward dh0")


def test_cases_cover_both_dispatch_regimes(compiled_kernels):
    routes = {_engine.route(c.batch, c.hidden, compiled_kernels).name for c in CASES}
    assert routes == {"fused", "gemm"}
    # Everything the shapes must span.
    assert {c.layers for c in CASES} == {1, 2, 3}
    assert min(c.hidden for c in CASES) == 1 and max(c.hidden for c in CASES) == 300
    assert {c.batch == 1 for c in CASES} == {True, False}
    assert {c.steps == 1 for c in CASES} == {True, False}
    for attribute in ("many_to_many", "nonzero_h0", "ragged"):
        assert {getattr(c, attribute) for c in CASES} == {True, False}
    assert {c.dtype for c in CASES} == {"float32", "float64"}
    relu_routes = {_engine.recurrences(c.batch, c.hidden, compiled_kernels).name
                   if _engine.route(c.batch, c.hidden, compiled_kernels).name == "gemm"
                   else "fused" for c in CASES if c.nonlinearity == "relu"}
    assert relu_routes == {"fused", "blas steps", "compiled loops"}


@pytest.mark.parametrize("batch, hidden, route", [
    (1, 300, "fused"),   # batch 1 always stays on the fused loops
    (2, 8, "fused"),
    (40, 128, "gemm"),   # batch * hidden**2 above _engine.FUSED_MAX_BATCH_HIDDEN2
])
def test_model_dispatch_takes_the_route_it_says(batch, hidden, route, compiled_kernels,
                                                monkeypatch):
    """The model really calls the fused kernel or _gemm_path, and these shapes reach
    both (if the threshold is retuned, pick shapes on either side of it again)."""
    calls = []
    for name in ("forward", "loss_and_grad", "backward"):
        original_fused = getattr(compiled_kernels, name)
        original_gemm = getattr(_gemm_path, name)
        monkeypatch.setattr(compiled_kernels, name,
                            lambda *a, _f=original_fused, _n=name: (calls.append(("fused", _n)),
                                                                   _f(*a))[1])
        monkeypatch.setattr(_gemm_path, name,
                            lambda *a, _f=original_gemm, _n=name: (calls.append(("gemm", _n)),
                                                                  _f(*a))[1])
    model = elman.RNN(2, hidden, 1, seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, 3, 2))
    with elman.use_backend("cython"):
        model.forward(X)
        model.loss_and_grad(X, rng.normal(size=(batch, 3, 1)))
        model.backward(X, rng.normal(size=(batch, 3, 1)))
    assert _engine.route(batch, hidden, compiled_kernels).name == route
    assert calls == [(route, "forward"), (route, "loss_and_grad"), (route, "backward")]


RECURRENCE_SHAPES = [
    # batch, steps, hidden, dtype, ragged
    (1, 1, 1, "float64", False),
    (1, 7, 5, "float64", False),
    (4, 6, 9, "float64", True),
    (3, 5, 300, "float64", True),
    (5, 8, 17, "float32", True),
    (2, 4, 300, "float32", False),
]


@pytest.mark.parametrize("activation", [0, 1], ids=["tanh", "relu"])
@pytest.mark.parametrize("batch, steps, hidden, dtype, ragged", RECURRENCE_SHAPES)
def test_recurrence_kernels_match_twin(batch, steps, hidden, dtype, ragged, activation,
                                       compiled_kernels, twin_kernels, assert_close):
    rng = np.random.default_rng(batch * 1000 + steps * 10 + hidden)
    dtype = np.dtype(dtype)
    P = rng.normal(size=(batch, steps, hidden)).astype(dtype)
    Whh = (rng.normal(size=(hidden, hidden)) * 1.2 / np.sqrt(hidden)).astype(dtype)
    h0 = rng.uniform(-0.9, 0.9, size=(batch, hidden)).astype(dtype)
    lengths = (rng.integers(1, steps + 1, size=batch) if ragged
               else np.full(batch, steps)).astype(np.intp)
    dH = rng.normal(size=(batch, steps, hidden)).astype(dtype)

    # The recurrences are time-major: (T, B, H).
    P, dH = P.transpose(1, 0, 2).copy(), dH.transpose(1, 0, 2).copy()
    results = {}
    for name, kernels in (("cython", compiled_kernels), ("numpy", twin_kernels)):
        Hs = np.full((steps, batch, hidden), np.nan, dtype=dtype)
        kernels.recurrence_forward(activation, P, Whh, h0, lengths, Hs)
        dA = _backward_in_blocks(kernels, activation, dH, Hs, Whh, lengths)
        # The contract's padding rules hold exactly on each backend.
        for b in range(batch):
            held = Hs[lengths[b] - 1, b]
            assert np.array_equal(Hs[lengths[b]:, b], np.broadcast_to(
                held, Hs[lengths[b]:, b].shape)), f"{name}: padded states not held"
            assert not np.any(dA[lengths[b]:, b]), f"{name}: padded dA not zero"
        results[name] = Hs, dA
    assert_close(results["cython"][0], results["numpy"][0], dtype, what="Hs")
    # Compare the backward pass on the same Hs, so only recurrence_backward differs.
    dA_twin = _backward_in_blocks(twin_kernels, activation, dH, results["cython"][0], Whh,
                                  lengths)
    assert_close(results["cython"][1], dA_twin, dtype, what="dA")
    # Whole sequence in one block: the same deltas as block by block.
    dA_whole = _backward_in_blocks(compiled_kernels, activation, dH, results["cython"][0],
                                   Whh, lengths, block=steps)
    assert_close(results["cython"][1], dA_whole, dtype, what="dA, one block")


def _backward_in_blocks(kernels, activation, dH, Hs, Whh, lengths, block=3):
    """recurrence_backward over blocks of ``block`` steps, last block first, carrying
    Whh^T da across the blocks as _gemm_path does."""
    steps, batch, hidden = dH.shape
    dA = np.full_like(dH, np.nan)
    carry = np.zeros((batch, hidden), dtype=dH.dtype)
    for stop in range(steps, 0, -block):
        start = max(0, stop - block)
        kernels.recurrence_backward(activation, dH[start:stop], Hs[start:stop], Whh, lengths,
                                    start, carry, dA[start:stop])
    return dA


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layers, inputs, outputs, feedback, dtype", [
    (1, 1, 1, [0], "float64"),
    (2, 3, 2, [2, -1], "float64"),
    (3, 2, 2, [1, 0], "float32"),
])
def test_forecast_agrees(layers, inputs, outputs, feedback, dtype, nonlinearity,
                         both_backends, assert_close):
    rng = np.random.default_rng(layers)
    model = elman.RNN(inputs, 7, outputs, num_layers=layers, dtype=dtype, seed=layers,
                      nonlinearity=nonlinearity)
    history = rng.normal(size=(3, 5, inputs))
    future = rng.normal(size=(3, 4, inputs))
    h0 = rng.uniform(-0.5, 0.5, size=(layers, 3, 7))
    compiled, twin = both_backends(model.forecast, history, 5, h0=h0, feedback=feedback,
                                   future=future, return_state=True)
    assert_close(compiled[0], twin[0], dtype, what="forecasts")
    assert_close(compiled[1], twin[1], dtype, what="forecast final states")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("batch, hidden", [(1, 300), (2, 8), (40, 128)])
def test_forecast_takes_the_route_it_says(batch, hidden, nonlinearity, compiled_kernels,
                                          monkeypatch, both_backends, assert_close):
    """forecast follows the route table like forward (fused loops, or the gemm path
    stepping the table's recurrences), and every route agrees with the twin."""
    route = _engine.route(batch, hidden, compiled_kernels).name
    calls = []
    original_fused, original_gemm = compiled_kernels.forecast, _gemm_path.forecast
    monkeypatch.setattr(compiled_kernels, "forecast",
                        lambda *a: (calls.append("fused"), original_fused(*a))[1])
    monkeypatch.setattr(_gemm_path, "forecast",
                        lambda *a: (calls.append("gemm"), original_gemm(*a))[1])
    rng = np.random.default_rng(hidden)
    model = elman.RNN(3, hidden, 2, num_layers=2, seed=hidden, nonlinearity=nonlinearity)
    history = rng.normal(size=(batch, 4, 3))
    future = rng.normal(size=(batch, 5, 3))
    h0 = rng.uniform(-0.5, 0.5, size=(2, batch, hidden))
    compiled, twin = both_backends(model.forecast, history, 6, h0=h0, feedback=[1, -1],
                                   future=future, return_state=True)
    assert calls[0] == route and calls[1:] == ["gemm"]  # the twin runs _gemm_path
    assert_close(compiled[0], twin[0], model.dtype, what="forecasts")
    assert_close(compiled[1], twin[1], model.dtype, what="forecast final states")
    # The first forecast is the output after the last history step.
    last = model.forward(history, h0)[:, -1]
    assert_close(compiled[0][:, 0], last, model.dtype, what="first forecast")


@pytest.mark.parametrize("optimizer, clip_value, clip_norm, dtype, activation", [
    (SGD(lr=0.05, momentum=0.9, weight_decay=1e-3), 0.05, 0.0, "float64", 0),
    (Adam(lr=0.01, weight_decay=1e-2), 0.0, 0.5, "float64", 0),
    (Adam(lr=0.01), 0.1, 1.0, "float32", 0),
    (Adam(lr=0.01), 0.0, 1.0, "float64", 1),
    (SGD(lr=0.05, momentum=0.9), 0.05, 0.0, "float32", 1),
])
def test_train_steps_agree(optimizer, clip_value, clip_norm, dtype, activation,
                           compiled_kernels, twin_kernels, assert_close):
    rng = np.random.default_rng(7)
    model = elman.RNN(2, 6, 1, num_layers=2, dtype=dtype, seed=3)
    N, T = 11, 6
    X = rng.normal(size=(N, T, 2)).astype(dtype)
    Y = rng.normal(size=(N, T, 1)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=N).astype(np.intp)
    order = rng.permutation(N).astype(np.intp)
    batch_size = 4  # three batches, the last one short
    results = {}
    for name, kernels in (("cython", compiled_kernels), ("numpy", twin_kernels)):
        theta = model.parameters.copy()
        state = np.zeros((2, model.n_params), dtype=dtype)
        step_count = np.zeros(1, dtype=np.int64)
        losses = np.full(3, np.nan)
        done = kernels.train_steps(theta, 2, 6, 1, 2, activation, True, 0, X, Y, lengths,
                                   order, batch_size, optimizer.code,
                                   optimizer.hyperparameters(), state, step_count, clip_value,
                                   clip_norm, losses)
        results[name] = done, theta, state, int(step_count[0]), losses
    assert results["cython"][0] == results["numpy"][0] == 3
    assert results["cython"][3] == results["numpy"][3] == 3
    assert not np.array_equal(results["numpy"][1], model.parameters)  # it did train
    for index, what in ((1, "theta"), (2, "optimizer state"), (4, "losses")):
        assert_close(results["cython"][index], results["numpy"][index], dtype, what=what)
