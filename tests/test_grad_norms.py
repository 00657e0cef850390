"""History.grad_norms: each weight group's gradient norm at every epoch's last update.

The reference is training written out by hand (plain SGD, shuffle=False): the
gradient of the last mini-batch of each epoch at the weights that update started
from, before clipping.
"""

import io
import math

import numpy as np
import pytest

import elman
from elman import _engine, training


def make_data(n, steps, inputs, outputs, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, steps, inputs)), rng.normal(size=(n, steps, outputs))


def reference_norms(model, X, Y, *, epochs, batch_size, lr, clip_value=None):
    """Per epoch, {name: norm} of the last batch's gradient, from a hand-written loop."""
    probe = elman.RNN(**model.get_config())
    probe.set_weights(model.get_weights())
    n = X.shape[0]
    found = []
    for _ in range(epochs):
        for start in range(0, n, batch_size):
            _, grads = probe.loss_and_grad(X[start:start + batch_size],
                                           Y[start:start + batch_size])
            norms = {name: float(np.linalg.norm(g.astype(np.float64)))
                     for name, g in grads.items()}
            weights = probe.get_weights()
            for name, g in grads.items():
                step = g if clip_value is None else np.clip(g, -clip_value, clip_value)
                weights[name] = weights[name] - lr * step
            probe.set_weights(weights)
        found.append(norms)
    return found


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n, batch_size", [(10, 1), (10, 4), (10, 10), (64, 8)])
def test_grad_norms_are_those_of_each_epochs_last_update(backend, dtype, n, batch_size):
    model = elman.RNN(2, 5, 2, num_layers=2, seed=1, dtype=dtype)
    X, Y = make_data(n, 6, 2, 2)
    expected = reference_norms(model, X, Y, epochs=3, batch_size=batch_size, lr=0.05,
                               clip_value=0.01)
    history = model.fit(X, Y, epochs=3, batch_size=batch_size, optimizer="sgd", lr=0.05,
                        shuffle=False, clip_value=0.01)
    assert list(history.grad_norms) == list(model.get_weights())
    rtol = 1e-10 if dtype == "float64" else 2e-4
    for name, values in history.grad_norms.items():
        assert len(values) == 3 and all(isinstance(v, float) for v in values)
        np.testing.assert_allclose(values, [epoch[name] for epoch in expected], rtol=rtol)
    # Clipping shapes the update, not what is recorded: the raw norms exceed the clip.
    assert max(history.grad_norms["Why"]) > 0.01


def test_grad_norms_on_the_gemm_route(backend):
    """Large batches step in Python (_gemm_path), which hands over the gradient."""
    model = elman.RNN(2, 128, 1, seed=3)
    X, Y = make_data(50, 3, 2, 1, seed=4)
    assert backend == "numpy" or _engine.route(40, 128).name == "gemm"
    expected = reference_norms(model, X, Y, epochs=2, batch_size=40, lr=0.05)
    history = model.fit(X, Y, epochs=2, batch_size=40, optimizer="sgd", lr=0.05,
                        shuffle=False)
    for name, values in history.grad_norms.items():
        np.testing.assert_allclose(values, [epoch[name] for epoch in expected], rtol=1e-10)


def test_grad_norms_follow_the_shuffled_order(backend):
    """With shuffling, the last batch is the last rows of that epoch's permutation."""
    model = elman.RNN(1, 4, 1, seed=2)
    X, Y = make_data(9, 5, 1, 1, seed=3)
    trained = elman.RNN(1, 4, 1, seed=2)
    history = trained.fit(X, Y, epochs=1, batch_size=4, optimizer="sgd", lr=0.1, seed=7)
    order = np.random.default_rng(7).permutation(9)
    probe = elman.RNN(1, 4, 1, seed=2)
    for start in (0, 4):
        rows = order[start:start + 4]
        _, grads = probe.loss_and_grad(X[rows], Y[rows])
        probe.set_weights({k: probe.get_weights()[k] - 0.1 * g for k, g in grads.items()})
    _, grads = probe.loss_and_grad(X[order[8:]], Y[order[8:]])
    for name, g in grads.items():
        assert history.grad_norms[name][0] == pytest.approx(np.linalg.norm(g), rel=1e-10)
    assert model.get_weights().keys() == history.grad_norms.keys()


def test_grad_norms_with_truncated_bptt_are_the_last_chunks(backend):
    model = elman.RNN(1, 3, 1, seed=4)
    X, Y = make_data(3, 7, 1, 1, seed=5)
    history = model.fit(X, Y, epochs=1, batch_size=3, optimizer="sgd", lr=0.1,
                        shuffle=False, tbptt=3)
    probe = elman.RNN(1, 3, 1, seed=4)
    h = np.zeros((1, 3, 3))
    for start in (0, 3, 6):
        chunk = slice(start, start + 3)
        loss, grads = probe.loss_and_grad(X[:, chunk], Y[:, chunk], h)
        _, h = probe.forward(X[:, chunk], h, return_state=True)
        last = {name: float(np.linalg.norm(g)) for name, g in grads.items()}
        probe.set_weights({k: probe.get_weights()[k] - 0.1 * g for k, g in grads.items()})
    for name, value in last.items():
        assert history.grad_norms[name] == [pytest.approx(value, rel=1e-10)]


def test_recording_changes_no_weight(backend):
    """The extra gradient is measured beside the training loop: the weights, losses
    and optimizer state are bit for bit those of a run that records nothing."""
    X, Y = make_data(50, 8, 2, 1, seed=6)
    runs = []
    for record in (True, False):
        model = elman.RNN(2, 6, 1, seed=3)
        optimizer = elman.optimizers.Adam(lr=0.01)
        history = model.fit(X, Y, epochs=3, batch_size=8, optimizer=optimizer, seed=1,
                            record_grad_norms=record)
        runs.append((model.parameters.copy(), history, optimizer.state.copy()))
    (w_on, h_on, s_on), (w_off, h_off, s_off) = runs
    assert np.array_equal(w_on, w_off) and np.array_equal(s_on, s_off)
    assert h_on.loss == h_off.loss
    assert len(h_on.grad_norms["Why"]) == 3 and h_off.grad_norms == {}
    with pytest.raises(TypeError, match="record_grad_norms"):
        elman.RNN(2, 6, 1).fit(X, Y, record_grad_norms=1)


def test_grad_norms_in_as_dict_checkpoints_and_verbose_output(backend, tmp_path,
                                                              monkeypatch):
    X, Y = make_data(12, 5, 2, 1, seed=8)
    path = tmp_path / "run.npz"
    whole = elman.RNN(2, 4, 1, seed=5).fit(X, Y, epochs=4, batch_size=5, seed=2)
    assert whole.as_dict()["grad_norms"] == whole.grad_norms
    # Killed after two epochs and resumed: the same norms as one uninterrupted run.
    first = elman.RNN(2, 4, 1, seed=5)
    first.fit(X, Y, epochs=2, batch_size=5, seed=2, checkpoint=path)
    resumed = elman.RNN(2, 4, 1, seed=5).fit(X, Y, epochs=4, batch_size=5, seed=2,
                                             checkpoint=path, resume=True)
    assert resumed.grad_norms == whole.grad_norms
    # verbose=2 prints the whole gradient's norm on each epoch's line.
    stream = io.StringIO()
    progress = training._Progress
    monkeypatch.setattr(training, "_Progress",
                        lambda verbose, epochs: progress(verbose, epochs, stream))
    history = elman.RNN(2, 4, 1, seed=5).fit(X, Y, epochs=2, batch_size=5, seed=2,
                                             verbose=2)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    for line, epoch in zip(lines, range(2)):
        total = math.sqrt(sum(v[epoch] ** 2 for v in history.grad_norms.values()))
        assert f"grad_norm {total:.3g}" in line


def test_a_checkpoint_without_grad_norms_resumes_with_nan(backend, tmp_path):
    """Checkpoints written before the norms were recorded hold none: the epochs
    they cover read NaN, so every list keeps one entry per epoch."""
    X, Y = make_data(12, 5, 2, 1, seed=8)
    path = tmp_path / "old.npz"
    elman.RNN(2, 4, 1, seed=5).fit(X, Y, epochs=2, batch_size=5, seed=2, checkpoint=path,
                                   record_grad_norms=False)
    history = elman.RNN(2, 4, 1, seed=5).fit(X, Y, epochs=3, batch_size=5, seed=2,
                                             checkpoint=path, resume=True)
    for values in history.grad_norms.values():
        assert len(values) == 3 and math.isnan(values[0]) and math.isnan(values[1])
        assert math.isfinite(values[2]) and values[2] > 0
