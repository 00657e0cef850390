"""``RNN.fit`` on both backends.

The anchors are independent of the code under test:

* a training loop written here (``reference_training``) from ``model.loss_and_grad``
  and the update formulas written out by hand (SGD, classical momentum, Adam with
  bias correction, L2 weight decay, clipping by value then by global norm), sharing
  nothing with ``elman.optimizers``;
* a truncated-BPTT loop written here from ``forward(..., return_state=True)`` and
  ``loss_and_grad(..., h0=...)``;
* sequences run one at a time against the same sequences in one padded batch;
* replays: a state that fit claims to have reached (after a divergence, Ctrl-C or a
  callback's exception) is reached again by a fresh, uninterrupted fit of exactly
  that many steps, bit for bit (same backend, same arithmetic);
* the other backend (compiled against twin, conftest tolerances), including the
  large shapes where fit runs ``_gemm_path.train_steps`` around the compiled
  recurrences.

Nothing here is timed; the data are small so both backends run the file quickly.
"""

import io
import hashlib
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
from types import SimpleNamespace

import numpy as np
import pytest

import elman
from elman import _backend, _engine, _gemm_path, training
from elman.optimizers import SGD, Adam
from elman.training import History, TrainingDivergedError

NORM_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_ divides by (norm + 1e-6)


# ------------------------------------------------------------------- helpers
def make_data(seed, n, steps, inputs, outputs, *, many_to_many=True, ragged=False,
              x_scale=1.0):
    """X (n, T, I), Y, lengths (or None); targets at padded steps are NaN."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, x_scale, size=(n, steps, inputs))
    Y = rng.normal(size=(n, steps, outputs) if many_to_many else (n, outputs))
    lengths = None
    if ragged:
        lengths = rng.integers(1, steps + 1, size=n)
        lengths[0] = steps  # one full-length sequence, so the time axis is used
        if many_to_many:
            Y[np.arange(steps)[None, :] >= lengths[:, None]] = np.nan
    return X, Y, lengths


def fresh(model):
    """A new model with the same configuration and initial weights."""
    return elman.RNN(**model.get_config())


def global_norm(grads):
    return math.sqrt(sum(float(np.sum(np.asarray(g, dtype=np.float64) ** 2))
                         for g in grads.values()))


def reference_training(model, X, Y, *, epochs, batch_size, method, lr, momentum=0.0,
                       betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, clip_value=None,
                       clip_norm=None, lengths=None, clip_order=("value", "norm")):
    """shuffle=False training written from the formulas; the model is not changed.

    Returns (weights, epoch_losses, clipping) with ``clipping`` counting the steps
    at which each clip changed the gradient.
    """
    probe = fresh(model)
    probe.set_weights(model.get_weights())
    weights = probe.get_weights()
    first = {k: np.zeros_like(w) for k, w in weights.items()}   # velocity / Adam m
    second = {k: np.zeros_like(w) for k, w in weights.items()}  # Adam v
    n = X.shape[0]
    t = 0
    epoch_losses = []
    clipping = {"value": 0, "norm": 0}
    for _ in range(epochs):
        total = 0.0
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            probe.set_weights(weights)
            loss, grads = probe.loss_and_grad(
                X[rows], Y[rows], lengths=None if lengths is None else lengths[rows])
            total += loss * (rows.stop - rows.start)
            g = {k: v.copy() for k, v in grads.items()}
            for what in clip_order:
                if what == "value" and clip_value is not None:
                    if max(np.max(np.abs(v)) for v in g.values()) > clip_value:
                        clipping["value"] += 1
                    g = {k: np.clip(v, -clip_value, clip_value) for k, v in g.items()}
                if what == "norm" and clip_norm is not None:
                    norm = global_norm(g)
                    if norm > clip_norm:
                        clipping["norm"] += 1
                        g = {k: v * (clip_norm / (norm + NORM_EPS)) for k, v in g.items()}
            t += 1
            for k, w in weights.items():
                d = g[k] + weight_decay * w
                if method == "sgd":
                    if momentum:
                        first[k] = momentum * first[k] + d
                        d = first[k]
                    w = w - lr * d
                else:
                    first[k] = betas[0] * first[k] + (1 - betas[0]) * d
                    second[k] = betas[1] * second[k] + (1 - betas[1]) * d * d
                    m_hat = first[k] / (1 - betas[0] ** t)
                    v_hat = second[k] / (1 - betas[1] ** t)
                    w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
                weights[k] = w.astype(model.dtype)
        epoch_losses.append(total / n)
    return weights, epoch_losses, clipping


def assert_weights_close(assert_close, actual, expected, dtype, what="weights"):
    assert set(actual) == set(expected)
    for k in expected:
        assert_close(actual[k], expected[k], dtype, what=f"{what} {k}")


def assert_trained(model, before, minimum=1e-3):
    """Guard against vacuous comparisons: training really moved the weights."""
    assert np.max(np.abs(model.parameters.astype(np.float64) - before)) > minimum


def params(model):
    return model.parameters.copy()


def same_optimizer_state(a, b, model):
    """Equal moments and step counts (state not yet allocated counts as zeros)."""
    def moments(optimizer):
        if optimizer.state is None:
            return np.zeros((2, model.n_params), dtype=model.dtype)
        return optimizer.state
    return (a.step_count[0] == b.step_count[0]
            and np.array_equal(moments(a), moments(b)))


# --------------------------------------------------- optimizers and clipping
OPTIMIZER_CASES = {
    # id: (optimizer argument for fit, lr argument, reference settings)
    "sgd": ("sgd", 0.1, dict(method="sgd", lr=0.1)),
    "sgd-default-lr": ("sgd", None, dict(method="sgd", lr=0.01)),
    "momentum": ("momentum", 0.05, dict(method="sgd", lr=0.05, momentum=0.9)),
    "momentum-default-lr": ("momentum", None, dict(method="sgd", lr=0.01, momentum=0.9)),
    "adam": ("adam", 0.01, dict(method="adam", lr=0.01)),
    "adam-default-lr": ("adam", None, dict(method="adam", lr=0.001)),
    "sgd-instance-momentum-decay": (
        lambda: SGD(lr=0.05, momentum=0.5, weight_decay=0.05), None,
        dict(method="sgd", lr=0.05, momentum=0.5, weight_decay=0.05)),
    "sgd-instance-decay": (lambda: SGD(lr=0.1, weight_decay=0.2), None,
                           dict(method="sgd", lr=0.1, weight_decay=0.2)),
    "adam-instance-decay": (
        lambda: Adam(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), None,
        dict(method="adam", lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
}

MODEL_CASES = {
    # id: (RNN kwargs, data kwargs)
    "m2m": (dict(input_size=2, hidden_size=5, output_size=1, seed=1),
            dict(seed=2, n=10, steps=6, inputs=2, outputs=1)),
    "m2o-2layers-ragged": (
        dict(input_size=3, hidden_size=4, output_size=2, num_layers=2,
             return_sequences=False, seed=3),
        dict(seed=4, n=10, steps=5, inputs=3, outputs=2, many_to_many=False, ragged=True)),
    "m2m-3layers-ragged-float32": (
        dict(input_size=2, hidden_size=4, output_size=2, num_layers=3, dtype="float32",
             seed=5),
        dict(seed=6, n=10, steps=5, inputs=2, outputs=2, ragged=True)),
}


def _optimizer_argument(spec):
    return spec() if callable(spec) else spec


# Every optimizer on every model, except the default learning rates (one model).
FIT_CASES = [(model_id, opt_id) for model_id in MODEL_CASES for opt_id in OPTIMIZER_CASES
             if model_id == "m2m" or not opt_id.endswith("default-lr")]


@pytest.mark.parametrize("model_id, opt_id", FIT_CASES, ids=[f"{m}-{o}" for m, o in FIT_CASES])
def test_fit_matches_hand_written_loop(model_id, opt_id, backend, assert_close):
    """3 epochs, batch 4 of 10 (a short last batch), shuffle=False, vs the formulas."""
    spec, lr, ref_settings = OPTIMIZER_CASES[opt_id]
    model_kwargs, data_kwargs = MODEL_CASES[model_id]
    model = elman.RNN(**model_kwargs)
    X, Y, lengths = make_data(**data_kwargs)
    optimizer = _optimizer_argument(spec)
    expected, expected_losses, _ = reference_training(
        model, X, Y, epochs=3, batch_size=4, lengths=lengths, **ref_settings)
    before = params(model)

    history = model.fit(X, Y, epochs=3, batch_size=4, optimizer=optimizer, lr=lr,
                        shuffle=False, lengths=lengths)

    assert isinstance(history, History)
    assert_trained(model, before, minimum=1e-4 if "default" in opt_id else 1e-3)
    assert_weights_close(assert_close, model.get_weights(), expected, model.dtype)
    assert_close(np.array(history.loss), np.array(expected_losses), model.dtype,
                 what="history.loss")
    assert history.steps == 9  # 3 batches (4, 4, 2) per epoch
    if not isinstance(optimizer, str):
        assert optimizer.step_count[0] == 9


@pytest.mark.parametrize("method", ["sgd", "adam"])
def test_clip_value_then_norm(method, backend, assert_close):
    """Both clips applied, elementwise first, then the global norm, every step."""
    model = elman.RNN(2, 5, 2, num_layers=2, seed=7)
    X, Y, lengths = make_data(8, n=9, steps=6, inputs=2, outputs=2, ragged=True, x_scale=2.0)
    settings = dict(epochs=3, batch_size=3, method=method, lr=0.05, lengths=lengths,
                    clip_value=0.05, clip_norm=0.15)
    expected, expected_losses, clipping = reference_training(model, X, Y, **settings)
    # Both clips change the gradient at every one of the 9 steps ...
    assert clipping == {"value": 9, "norm": 9}
    # ... and their order, or either one alone, gives different weights.
    alternatives = [
        reference_training(model, X, Y, **dict(settings, clip_order=("norm", "value")))[0],
        reference_training(model, X, Y, **dict(settings, clip_norm=None))[0],
        reference_training(model, X, Y, **dict(settings, clip_value=None))[0],
    ]

    optimizer = SGD(lr=0.05) if method == "sgd" else Adam(lr=0.05)
    history = model.fit(X, Y, epochs=3, batch_size=3, optimizer=optimizer, clip_value=0.05,
                        clip_norm=0.15, shuffle=False, lengths=lengths)

    assert_weights_close(assert_close, model.get_weights(), expected, model.dtype)
    assert_close(np.array(history.loss), np.array(expected_losses), what="history.loss")
    for other in alternatives:
        gap = max(np.max(np.abs(model.get_weights()[k] - other[k])) for k in other)
        assert gap > 1e-6


@pytest.mark.parametrize("clip", [dict(clip_value=0.01), dict(clip_norm=0.05)])
def test_each_clip_alone(clip, backend, assert_close):
    model = elman.RNN(3, 6, 1, seed=9)
    X, Y, _ = make_data(10, n=8, steps=5, inputs=3, outputs=1)
    expected, _, clipping = reference_training(model, X, Y, epochs=2, batch_size=4,
                                               method="sgd", lr=0.5, momentum=0.9, **clip)
    assert sum(clipping.values()) == 4  # active at every step
    unclipped, _, _ = reference_training(model, X, Y, epochs=2, batch_size=4, method="sgd",
                                         lr=0.5, momentum=0.9)
    model.fit(X, Y, epochs=2, batch_size=4, optimizer="momentum", lr=0.5, shuffle=False,
              **clip)
    assert_weights_close(assert_close, model.get_weights(), expected, model.dtype)
    assert max(np.max(np.abs(model.get_weights()[k] - unclipped[k])) for k in unclipped) > 1e-4


@pytest.mark.parametrize("make_optimizer", [lambda: Adam(lr=0.01),
                                            lambda: SGD(lr=0.05, momentum=0.9)],
                         ids=["adam", "momentum"])
def test_optimizer_instance_continues_across_fit_calls(make_optimizer, backend):
    """fit(2 epochs) then fit(1 epoch) with one optimizer == fit(3 epochs), bit for bit."""
    model = elman.RNN(2, 5, 1, seed=11)
    X, Y, _ = make_data(12, n=10, steps=6, inputs=2, outputs=1)
    one = fresh(model)
    opt_one = make_optimizer()
    one.fit(X, Y, epochs=3, batch_size=4, optimizer=opt_one, shuffle=False)

    two = fresh(model)
    opt_two = make_optimizer()
    first = two.fit(X, Y, epochs=2, batch_size=4, optimizer=opt_two, shuffle=False)
    second = two.fit(X, Y, epochs=1, batch_size=4, optimizer=opt_two, shuffle=False)

    assert first.steps == 6 and second.steps == 3
    assert opt_two.step_count[0] == opt_one.step_count[0] == 9
    assert np.array_equal(two.parameters, one.parameters)
    assert np.array_equal(opt_two.state, opt_one.state)
    # A fresh optimizer for the second call forgets the moments: a different result.
    three = fresh(model)
    three.fit(X, Y, epochs=2, batch_size=4, optimizer=make_optimizer(), shuffle=False)
    three.fit(X, Y, epochs=1, batch_size=4, optimizer=make_optimizer(), shuffle=False)
    assert not np.array_equal(three.parameters, one.parameters)


def test_fit_with_zero_epochs_changes_nothing(backend):
    model = elman.RNN(2, 3, 1, seed=0)
    X, Y, _ = make_data(0, n=4, steps=3, inputs=2, outputs=1)
    before = params(model)
    history = model.fit(X, Y, epochs=0)
    assert history.as_dict() == History().as_dict()
    assert np.array_equal(model.parameters, before)


# ------------------------------------------------- compiled agrees with twin
AGREEMENT_CASES = {
    # id: (RNN kwargs, data kwargs, fit kwargs, route on the compiled backend)
    "batch1-sgd-clip": (
        dict(input_size=3, hidden_size=4, output_size=1, seed=1),
        dict(seed=1, n=7, steps=7, inputs=3, outputs=1),
        dict(epochs=3, batch_size=1, optimizer="sgd", lr=0.05, clip_value=0.5, seed=3),
        "fused"),
    "short-last-batch-adam-ragged": (
        dict(input_size=2, hidden_size=6, output_size=2, seed=2),
        dict(seed=2, n=11, steps=6, inputs=2, outputs=2, ragged=True),
        dict(epochs=3, batch_size=4, optimizer="adam", lr=0.01, seed=4),
        "fused"),
    "3layers-momentum-norm-float32": (
        dict(input_size=2, hidden_size=5, output_size=1, num_layers=3, dtype="float32",
             seed=3),
        dict(seed=3, n=9, steps=5, inputs=2, outputs=1, ragged=True),
        dict(epochs=3, batch_size=2, optimizer="momentum", lr=0.05, clip_norm=0.5, seed=5),
        "fused"),
    "m2o-ragged-adam-decay": (
        dict(input_size=3, hidden_size=5, output_size=2, num_layers=2,
             return_sequences=False, seed=4),
        dict(seed=4, n=10, steps=6, inputs=3, outputs=2, many_to_many=False, ragged=True),
        dict(epochs=3, batch_size=3, optimizer=lambda: Adam(lr=0.01, weight_decay=0.01),
             clip_value=1.0, clip_norm=2.0, seed=6),
        "fused"),
    "gemm-momentum-ragged": (
        dict(input_size=2, hidden_size=128, output_size=2, num_layers=2, seed=5),
        dict(seed=5, n=48, steps=4, inputs=2, outputs=2, ragged=True),
        dict(epochs=2, batch_size=40, optimizer="momentum", lr=0.05, clip_norm=1.0, seed=7),
        "gemm"),
    "gemm-m2o-adam-float32": (
        dict(input_size=2, hidden_size=128, output_size=1, return_sequences=False,
             dtype="float32", seed=6),
        dict(seed=6, n=44, steps=4, inputs=2, outputs=1, many_to_many=False, ragged=True),
        dict(epochs=2, batch_size=40, optimizer="adam", lr=0.01, clip_value=0.5, seed=8),
        "gemm"),
}


@pytest.mark.parametrize("case", list(AGREEMENT_CASES))
def test_compiled_fit_agrees_with_twin(case, both_backends, compiled_kernels, monkeypatch,
                                       assert_close):
    model_kwargs, data_kwargs, fit_kwargs, route = AGREEMENT_CASES[case]
    X, Y, lengths = make_data(**data_kwargs)
    batch = min(fit_kwargs["batch_size"], X.shape[0])
    hidden = model_kwargs["hidden_size"]
    assert _engine.route(batch, hidden, compiled_kernels).name == route
    if route == "gemm":
        assert batch * hidden ** 2 > _engine.FUSED_MAX_BATCH_HIDDEN2

    gemm_calls = []
    original = _gemm_path.train_steps

    def spy(recurrences, *args):
        gemm_calls.append((_backend.active_name(), recurrences))
        return original(recurrences, *args)

    monkeypatch.setattr(_gemm_path, "train_steps", spy)

    def train():
        model = elman.RNN(**model_kwargs)
        kwargs = dict(fit_kwargs)
        kwargs["optimizer"] = _optimizer_argument(kwargs["optimizer"])
        history = model.fit(X, Y, lengths=lengths, **kwargs)
        return params(model), history

    (theta_c, history_c), (theta_n, history_n) = both_backends(train)

    compiled_gemm = [r for name, r in gemm_calls if name == "cython"]
    if route == "gemm":
        # The compiled backend ran _gemm_path with its own compiled recurrences (at
        # these sizes, BLAS steps around the compiled elementwise step kernels).
        assert compiled_gemm
        assert all(r.name == "blas steps"
                   and r.forward.args == ((compiled_kernels.tanh_step_forward,
                                           compiled_kernels.relu_step_forward),)
                   and r.backward.args == ((compiled_kernels.tanh_step_backward,
                                            compiled_kernels.relu_step_backward),)
                   for r in compiled_gemm)
    else:
        assert not compiled_gemm
    dtype = np.dtype(model_kwargs.get("dtype", "float64"))
    assert theta_c.dtype == theta_n.dtype == dtype
    assert history_c.steps == history_n.steps > 0
    assert not np.array_equal(theta_n, elman.RNN(**model_kwargs).parameters)
    assert_close(theta_c, theta_n, dtype, what="weights after fit")
    assert_close(np.array(history_c.loss), np.array(history_n.loss), dtype,
                 what="history.loss")


# ---------------------------------------------------------------- determinism
DETERMINISM_CODE = textwrap.dedent("""
    import numpy as np
    import elman

    def train():
        rng = np.random.default_rng(21)
        X = rng.normal(size=(13, 6, 2))
        Y = rng.normal(size=(13, 6, 1))
        model = elman.RNN(2, 6, 1, num_layers=2, seed=22)
        history = model.fit(X, Y, epochs=3, batch_size=3, optimizer="adam", lr=0.01,
                            clip_norm=1.0, shuffle=True, seed=23)
        return model, history
""")


def _fingerprint(model, history):
    digest = hashlib.sha256(model.parameters.tobytes()).hexdigest()
    return digest + " " + " ".join(float(x).hex() for x in history.loss)


def _train_in_process():
    namespace = {}
    exec(DETERMINISM_CODE, namespace)
    return namespace["train"]()


def test_same_seed_same_weights_in_process(backend):
    model_a, history_a = _train_in_process()
    model_b, history_b = _train_in_process()
    assert np.array_equal(model_a.parameters, model_b.parameters)
    assert history_a.loss == history_b.loss

    # The seed matters (shuffling changes the result) and unseeded runs shuffle too.
    rng = np.random.default_rng(21)
    X, Y = rng.normal(size=(13, 6, 2)), rng.normal(size=(13, 6, 1))
    other = elman.RNN(2, 6, 1, num_layers=2, seed=22)
    other.fit(X, Y, epochs=3, batch_size=3, optimizer="adam", lr=0.01, clip_norm=1.0,
              shuffle=True, seed=24)
    assert not np.array_equal(other.parameters, model_a.parameters)


def test_same_seed_same_weights_across_processes(backend):
    script = DETERMINISM_CODE + textwrap.dedent("""
        import hashlib, sys
        assert elman.BACKEND == sys.argv[1], elman.BACKEND
        model, history = train()
        digest = hashlib.sha256(model.parameters.tobytes()).hexdigest()
        print(digest + " " + " ".join(float(x).hex() for x in history.loss))
    """)
    env = dict(os.environ, ELMAN_BACKEND=backend)
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script, backend], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip())
    assert outputs[0] == outputs[1]
    assert outputs[0] == _fingerprint(*_train_in_process())


# ------------------------------------------------------------------ divergence
DIVERGENCE_CASES = {
    # id: (hidden, n, steps, tbptt); batch = n, so one update per epoch (per chunk).
    "fused": (8, 16, 20, None),
    "gemm": (128, 40, 5, None),
    "tbptt": (8, 16, 20, 5),
}


def _unstable(case):
    hidden, n, steps, tbptt = DIVERGENCE_CASES[case]
    model = elman.RNN(2, hidden, 1, spectral_radius=3.0, seed=0)
    X, Y, _ = make_data(0, n=n, steps=steps, inputs=2, outputs=1, x_scale=10.0)
    return model, X, Y, dict(batch_size=n, shuffle=False, tbptt=tbptt)


@pytest.mark.parametrize("case", list(DIVERGENCE_CASES))
def test_divergence_stops_with_last_finite_weights(case, backend):
    model, X, Y, kwargs = _unstable(case)
    if case == "gemm" and backend == "cython":
        assert _engine.route(X.shape[0], model.hidden_size).name == "gemm"
    optimizer = SGD(lr=100.0)
    with pytest.raises(TrainingDivergedError, match="diverged") as caught:
        model.fit(X, Y, epochs=500, optimizer=optimizer, **kwargs)
    error = caught.value
    assert isinstance(error, FloatingPointError)
    history = error.history
    assert isinstance(history, History)
    steps = history.steps
    assert steps > 0 and optimizer.step_count[0] == steps
    per_epoch = 1 if kwargs["tbptt"] is None else X.shape[1] // kwargs["tbptt"]
    assert history.epochs == steps // per_epoch
    assert all(math.isfinite(loss) for loss in history.loss)
    assert np.isfinite(model.parameters).all()

    # The weights are those of the last completed step: an uninterrupted fit of
    # exactly that many steps reaches them bit for bit ...
    replay = fresh(model)
    replay_optimizer = SGD(lr=100.0)
    epochs, rest = divmod(steps, per_epoch)
    if epochs:
        replay.fit(X, Y, epochs=epochs, optimizer=replay_optimizer, **kwargs)
    if rest:
        # A partial epoch of truncated BPTT: the first `rest` chunks of each sequence.
        replay.fit(X[:, :rest * kwargs["tbptt"]], Y[:, :rest * kwargs["tbptt"]], epochs=1,
                   optimizer=replay_optimizer, **kwargs)
    assert np.array_equal(replay.parameters, model.parameters)
    assert np.array_equal(replay_optimizer.state, optimizer.state)

    # ... and the step after them is the one that failed.
    if kwargs["tbptt"] is None:
        loss, grads = model.loss_and_grad(X, Y)
        assert not (math.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values()))

    # Without clipping the gradient explodes; clipping by norm keeps the same setup
    # (same model, data, learning rate) finite.
    clipped, X, Y, kwargs = _unstable(case)
    history = clipped.fit(X, Y, epochs=min(steps + 10, 80), optimizer=SGD(lr=100.0),
                          clip_norm=1.0, **kwargs)
    assert history.epochs == min(steps + 10, 80)
    assert np.isfinite(clipped.parameters).all()
    assert all(math.isfinite(loss) for loss in history.loss)


@pytest.mark.parametrize("route", ["fused", "gemm", "tbptt"])
def test_an_overflowing_update_keeps_the_last_finite_weights(route, backend):
    """Finite loss and gradients, but lr * gradient overflows to inf in the update.

    The first batch's targets are the model's own predictions (a zero gradient: an
    update that changes nothing); the second batch's are 100 away, and lr * gradient
    overflows. fit must stop there with the weights of the first step. (Before the
    check, fit returned the infinite weights without an error.)
    """
    hidden, per_batch = (128, 40) if route == "gemm" else (3, 1)
    model = elman.RNN(2, hidden, 1, seed=37)
    rng = np.random.default_rng(38)
    if route == "tbptt":
        X = rng.normal(size=(1, 4, 2))
        Y = model.predict(X)
        Y[:, 2:] += 100.0
        kwargs = dict(batch_size=1, tbptt=2)
    else:
        X = rng.normal(size=(2 * per_batch, 3, 2))
        Y = model.predict(X)
        Y[per_batch:] += 100.0
        kwargs = dict(batch_size=per_batch)
    optimizer = SGD(lr=1.5e308)
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(TrainingDivergedError) as caught:
            model.fit(X, Y, epochs=1, optimizer=optimizer, shuffle=False, **kwargs)
    assert caught.value.history.steps == 1 and optimizer.step_count[0] == 1
    assert np.isfinite(model.parameters).all()
    replay = fresh(model)
    if route == "tbptt":
        replay.fit(X[:, :2], Y[:, :2], epochs=1, optimizer=SGD(lr=1.5e308), shuffle=False,
                   **kwargs)
    else:
        replay.fit(X[:per_batch], Y[:per_batch], epochs=1, optimizer=SGD(lr=1.5e308),
                   shuffle=False, **kwargs)
    assert np.array_equal(replay.parameters, model.parameters)


def test_unclipped_gradients_of_the_unstable_model_explode(backend):
    """The divergence above is the exploding-gradient kind: the norm grows by orders."""
    model, X, Y, kwargs = _unstable("fused")
    norms = []
    for _ in range(30):
        _, grads = model.loss_and_grad(X, Y)
        norms.append(global_norm(grads))
        model.fit(X, Y, epochs=1, optimizer="sgd", lr=100.0, **kwargs)
    assert norms[-1] > 1e6 * norms[0]


# ---------------------------------------------------- Ctrl-C and exceptions
def _replay_steps(model, X, Y, steps, batch_size, make_optimizer, **kwargs):
    """A fresh fit of exactly ``steps`` updates (shuffle=False): whole epochs, then the
    first batches of one more. Returns (model, optimizer)."""
    replay = fresh(model)
    optimizer = make_optimizer()
    per_epoch = -(-X.shape[0] // batch_size)
    epochs, rest = divmod(steps, per_epoch)
    if epochs:
        replay.fit(X, Y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   shuffle=False, **kwargs)
    if rest:
        replay.fit(X[:rest * batch_size], Y[:rest * batch_size], epochs=1,
                   batch_size=batch_size, optimizer=optimizer, shuffle=False, **kwargs)
    return replay, optimizer


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to oneself is POSIX")
def test_ctrl_c_during_fit_keeps_a_completed_step(backend):
    """A real SIGINT, delivered by a timer during a long fit."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT does not raise KeyboardInterrupt in this process")
    model = elman.RNN(3, 16, 2, seed=30)
    X, Y, _ = make_data(31, n=40, steps=30, inputs=3, outputs=2)
    make_optimizer = lambda: SGD(lr=0.01, momentum=0.9)  # noqa: E731
    optimizer = make_optimizer()
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        history = model.fit(X, Y, epochs=10 ** 6, batch_size=8, optimizer=optimizer,
                            shuffle=False)
    except KeyboardInterrupt:  # pragma: no cover - the failure this test looks for
        pytest.fail("KeyboardInterrupt escaped from fit")
    finally:
        timer.cancel()
        timer.join()
    assert history.interrupted and not history.stopped_early
    steps = history.steps
    assert steps > 0 and optimizer.step_count[0] == steps
    # Every recorded epoch was complete; the interrupted one is not recorded.
    assert history.epochs in (steps // 5, steps // 5 - 1)
    assert np.isfinite(model.parameters).all()
    replay, replay_optimizer = _replay_steps(model, X, Y, steps, 8, make_optimizer)
    assert np.array_equal(replay.parameters, model.parameters)
    assert np.array_equal(replay_optimizer.state, optimizer.state)
    assert not model._training_lock.locked()


@pytest.mark.parametrize("tbptt", [None, 2])
def test_keyboard_interrupt_from_a_callback(tbptt, backend):
    model = elman.RNN(2, 4, 1, seed=32)
    X, Y, _ = make_data(33, n=10, steps=4, inputs=2, outputs=1)
    make_optimizer = lambda: Adam(lr=0.01)  # noqa: E731
    optimizer = make_optimizer()

    def interrupt_at_epoch_2(epoch, logs):
        if epoch == 2:
            raise KeyboardInterrupt

    history = model.fit(X, Y, epochs=10, batch_size=4, optimizer=optimizer, shuffle=False,
                        callbacks=[interrupt_at_epoch_2], tbptt=tbptt)
    per_epoch = 3 if tbptt is None else 3 * 2
    assert history.interrupted
    assert history.epochs == 3 and history.steps == 3 * per_epoch
    assert optimizer.step_count[0] == history.steps
    replay = fresh(model)
    replay.fit(X, Y, epochs=3, batch_size=4, optimizer=make_optimizer(), shuffle=False,
               tbptt=tbptt)
    assert np.array_equal(replay.parameters, model.parameters)


# Where the injection raises: the training loop proper. ``fit`` itself only checks
# arguments before it and releases the model's lock after it.
_NOT_INJECTED = ("fit", "_check_early_stopping")


def _injecting_tracer(index, seen=None):
    """A sys.settrace function that raises KeyboardInterrupt before the ``index``-th
    line run in the training loop (or records every such line in ``seen``)."""
    target = training.__file__
    counter = [0]

    def local(frame, event, arg):
        if event == "line":
            if seen is not None:
                seen.append((frame.f_code.co_name, frame.f_lineno))
            elif counter[0] == index:
                counter[0] += 1
                raise KeyboardInterrupt
            counter[0] += 1
        return local

    def global_trace(frame, event, arg):
        code = frame.f_code
        if code.co_filename == target and code.co_name not in _NOT_INJECTED:
            return local
        return None

    return global_trace


@pytest.mark.parametrize("tbptt", [None, 2])
def test_interrupt_at_any_line_of_the_training_loop_leaves_a_consistent_model(
        tbptt, backend, monkeypatch):
    """Fault injection: KeyboardInterrupt raised before each line of the training loop.

    A real Ctrl-C is delivered between bytecodes wherever the interpreter checks for
    signals; raising it before every line covers each place it could land. Whatever
    the moment, the model, the optimizer and the history must agree on a completed
    step, and the weights must be exactly those of that many steps.
    """
    if sys.gettrace() is not None:
        pytest.skip("a tracer (coverage, debugger) is already installed")
    model = elman.RNN(2, 3, 1, seed=34)
    X, Y, _ = make_data(35, n=4, steps=4, inputs=2, outputs=1)
    Xv, Yv, _ = make_data(36, n=3, steps=4, inputs=2, outputs=1)
    make_optimizer = lambda: SGD(lr=0.1, momentum=0.5)  # noqa: E731
    kwargs = dict(epochs=2, batch_size=2, shuffle=False, tbptt=tbptt,
                  validation_data=(Xv, Yv), callbacks=[lambda epoch, logs: None])
    per_epoch = 2 if tbptt is None else 4
    monkeypatch.setattr(training, "_CHUNK_SECONDS", 0.0)  # one batch per kernel call

    def run(victim, optimizer, tracer):
        sys.settrace(tracer)
        try:
            return victim.fit(X, Y, optimizer=optimizer, **kwargs)
        finally:
            sys.settrace(None)

    lines = []
    run(fresh(model), make_optimizer(), _injecting_tracer(None, lines))
    assert len(lines) > 100
    replays = {}
    checked_states = set()
    for index, where in enumerate(lines):
        victim = fresh(model)
        optimizer = make_optimizer()
        try:
            history = run(victim, optimizer, _injecting_tracer(index))
        except KeyboardInterrupt:
            # Only before the loop (setting up) or after it (restoring the best
            # weights, returning): the interrupt reaches the caller, and the model
            # is untouched or fully trained.
            history = None
        assert not victim._training_lock.locked(), where
        steps = int(optimizer.step_count[0])
        if history is not None:
            assert history.interrupted, where
            assert history.steps == steps, where
            assert history.epochs <= steps // per_epoch, where
        else:
            assert steps in (0, 2 * per_epoch), where
        if steps not in replays:
            if tbptt is None:
                replays[steps] = _replay_steps(model, X, Y, steps, 2, make_optimizer)
            else:
                replays[steps] = _replay_tbptt(model, X, Y, steps, make_optimizer)
        replay, replay_optimizer = replays[steps]
        same_weights = np.array_equal(replay.parameters, victim.parameters)
        assert same_weights, f"{where}: weights are not those of {steps} steps"
        assert same_optimizer_state(replay_optimizer, optimizer, model), where
        checked_states.add(steps)
    assert checked_states == set(range(0, 2 * per_epoch + 1))


def _replay_tbptt(model, X, Y, steps, make_optimizer):
    """tbptt=2, batch 2 of 4 sequences of 4 steps: 2 chunks per batch, 4 per epoch."""
    replay = fresh(model)
    optimizer = make_optimizer()
    epochs, rest = divmod(steps, 4)
    common = dict(batch_size=2, shuffle=False, tbptt=2, optimizer=optimizer)
    if epochs:
        replay.fit(X, Y, epochs=epochs, **common)
    batches, chunks = divmod(rest, 2)
    if batches:
        replay.fit(X[:2 * batches], Y[:2 * batches], epochs=1, **common)
    if chunks:
        rows = slice(2 * batches, 2 * batches + 2)
        replay.fit(X[rows, :2], Y[rows, :2], epochs=1, **common)
    return replay, optimizer


def test_exception_in_callback_propagates_with_model_at_end_of_epoch(backend):
    model = elman.RNN(2, 4, 1, seed=40)
    X, Y, _ = make_data(41, n=10, steps=4, inputs=2, outputs=1)
    optimizer = SGD(lr=0.1, momentum=0.9)

    class Boom(Exception):
        pass

    def explode_at_epoch_1(epoch, logs):
        if epoch == 1:
            raise Boom("callback failed")

    with pytest.raises(Boom, match="callback failed"):
        model.fit(X, Y, epochs=5, batch_size=4, optimizer=optimizer, shuffle=False,
                  callbacks=[explode_at_epoch_1])
    assert optimizer.step_count[0] == 2 * 3
    replay, replay_optimizer = _replay_steps(model, X, Y, 6, 4,
                                             lambda: SGD(lr=0.1, momentum=0.9))
    assert np.array_equal(replay.parameters, model.parameters)
    assert np.array_equal(replay_optimizer.state, optimizer.state)
    # The model is usable again: the lock was released.
    assert not model._training_lock.locked()
    model.fit(X, Y, epochs=1, batch_size=4, optimizer=optimizer, shuffle=False)
    assert optimizer.step_count[0] == 9


# --------------------------------------------- early stopping, history, callbacks
def _overfitting_problem():
    """12 noisy training windows of a simple map; clean validation windows of it."""
    rng = np.random.default_rng(1)

    def windows(n, noise):
        X = rng.normal(size=(n, 6, 2))
        Y = (0.8 * X[:, :, :1] - 0.5 * np.roll(X[:, :, 1:], 1, axis=1)
             + noise * rng.normal(size=(n, 6, 1)))
        return X, Y

    X, Y = windows(12, 1.0)
    Xv, Yv = windows(32, 0.0)
    return elman.RNN(2, 16, 1, seed=0), X, Y, Xv, Yv


def _mse(model, X, Y):
    return float(np.mean((model.predict(X).astype(np.float64) - Y) ** 2))


def _recorder():
    records = []

    def callback(epoch, logs):
        records.append((epoch, dict(logs), params(logs["model"])))

    return records, callback


def test_early_stopping_restores_the_best_epoch(backend, assert_close):
    model, X, Y, Xv, Yv = _overfitting_problem()
    records, callback = _recorder()
    history = model.fit(X, Y, epochs=200, batch_size=4, optimizer="adam", lr=0.01,
                        shuffle=False, validation_data=(Xv, Yv), early_stopping=3,
                        callbacks=[callback])
    best = history.best_epoch
    assert history.stopped_early and not history.interrupted
    assert 0 < best == int(np.argmin(history.val_loss))
    assert len(history.val_loss) == len(history.loss) == best + 3 + 1
    # The validation loss got worse after the best epoch (the test is not vacuous).
    assert history.val_loss[-1] > history.val_loss[best] * 1.05
    # Restored: the best epoch's weights, whose validation loss is the minimum.
    assert np.array_equal(model.parameters, records[best][2])
    assert not np.array_equal(model.parameters, records[-1][2])
    assert_close(_mse(model, Xv, Yv), min(history.val_loss), what="restored val loss")
    # val_loss is the validation MSE of the weights at the end of each epoch.
    for epoch, logs, theta in records:
        probe = fresh(model)
        probe._theta = theta
        assert_close(logs["val_loss"], _mse(probe, Xv, Yv), what=f"val_loss {epoch}")
        assert logs["val_loss"] == history.val_loss[epoch]


def test_early_stopping_options(backend):
    model, X, Y, Xv, Yv = _overfitting_problem()
    common = dict(batch_size=4, optimizer="adam", lr=0.01, shuffle=False,
                  validation_data=(Xv, Yv))
    # restore_best=False keeps the last epoch's weights.
    records, callback = _recorder()
    history = model.fit(X, Y, epochs=200, early_stopping={"patience": 3,
                                                          "restore_best": False},
                        callbacks=[callback], **common)
    assert history.stopped_early
    assert np.array_equal(model.parameters, records[-1][2])
    # A min_delta larger than any improvement: epoch 0 stays best, stop after patience.
    model = fresh(model)
    records, callback = _recorder()
    history = model.fit(X, Y, epochs=200, early_stopping={"patience": 2, "min_delta": 10.0},
                        callbacks=[callback], **common)
    assert history.stopped_early and history.best_epoch == 0 and history.epochs == 3
    assert np.array_equal(model.parameters, records[0][2])
    # Patience not exhausted within `epochs`: no early stop; the best epoch is reported.
    model = fresh(model)
    history = model.fit(X, Y, epochs=4, early_stopping=50, **common)
    assert not history.stopped_early and history.epochs == 4
    assert history.best_epoch == int(np.argmin(history.val_loss))


def test_history_fields_and_callbacks(backend, assert_close):
    model = elman.RNN(2, 4, 1, seed=50)
    X, Y, lengths = make_data(51, n=10, steps=5, inputs=2, outputs=1, ragged=True)
    Xv, Yv, lv = make_data(52, n=6, steps=5, inputs=2, outputs=1, ragged=True)
    records, callback = _recorder()
    expected, expected_losses, _ = reference_training(model, X, Y, epochs=4, batch_size=4,
                                                      method="sgd", lr=0.1, lengths=lengths)
    history = model.fit(X, Y, epochs=4, batch_size=4, optimizer="sgd", lr=0.1,
                        shuffle=False, lengths=lengths, validation_data=(Xv, Yv, lv),
                        callbacks=callback)  # a single callable is accepted
    assert history.epochs == 4 and history.steps == 12
    assert_close(np.array(history.loss), np.array(expected_losses), what="loss per epoch")
    assert len(history.val_loss) == 4 and len(history.epoch_time) == 4
    assert all(isinstance(s, float) and s > 0 for s in history.epoch_time)
    assert history.total_time == pytest.approx(sum(history.epoch_time))
    assert history.best_epoch is None and not history.stopped_early
    assert not history.interrupted
    assert history.as_dict()["loss"] == history.loss
    assert set(history.as_dict()) == {"loss", "val_loss", "epoch_time", "best_epoch",
                                      "stopped_early", "interrupted", "steps"}
    # Callbacks: (epoch, logs) after every epoch, logs as documented.
    assert [epoch for epoch, _, _ in records] == [0, 1, 2, 3]
    for epoch, logs, theta in records:
        assert set(logs) == {"loss", "val_loss", "epoch_time", "model"}
        assert logs["model"] is model
        assert logs["loss"] == history.loss[epoch]
        assert logs["val_loss"] == history.val_loss[epoch]
        assert logs["epoch_time"] == history.epoch_time[epoch]
        # Validation with lengths: the MSE over valid steps only.
        probe = fresh(model)
        probe._theta = theta
        predicted = probe.predict(Xv, lengths=lv)
        valid = np.arange(5)[None, :] < lv[:, None]
        assert_close(logs["val_loss"], np.mean((predicted - Yv)[valid] ** 2),
                     what="val_loss with lengths")
    assert_weights_close(assert_close, model.get_weights(), expected, model.dtype)
    # No validation data: val_loss stays empty and logs say None.
    records, callback = _recorder()
    history = fresh(model).fit(X, Y, epochs=2, lengths=lengths, callbacks=[callback])
    assert history.val_loss == [] and all(logs["val_loss"] is None for _, logs, _ in records)


def test_callback_returning_true_stops(backend):
    model = elman.RNN(2, 4, 1, seed=53)
    X, Y, _ = make_data(54, n=8, steps=4, inputs=2, outputs=1)
    seen = []

    def stop_at_2(epoch, logs):
        seen.append(epoch)
        return epoch == 2

    def other(epoch, logs):
        seen.append(-epoch)
        return None

    history = model.fit(X, Y, epochs=10, batch_size=4, shuffle=False,
                        callbacks=[stop_at_2, other])
    # Every callback runs for the stopping epoch, then training ends.
    assert seen == [0, 0, 1, -1, 2, -2]
    assert history.epochs == 3 and history.steps == 6
    assert not history.stopped_early and not history.interrupted


@pytest.mark.parametrize("verbose, lines", [(0, 0), (1, 3), (2, 3)])
def test_verbose_output(verbose, lines, backend, capsys):
    model = elman.RNN(2, 3, 1, seed=55)
    X, Y, _ = make_data(56, n=6, steps=3, inputs=2, outputs=1)
    model.fit(X, Y, epochs=3, batch_size=2, verbose=verbose)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == lines
    if verbose:
        assert "epoch 3/3" in captured.err and "loss" in captured.err


# ------------------------------------------------------------- truncated BPTT
def reference_truncated(model, X, Y, k, *, epochs, batch_size, lr, lengths=None):
    """tbptt by hand: state carried between chunks via forward(return_state=True),
    one plain SGD update per chunk; shuffle=False. Returns (weights, epoch losses)."""
    probe = fresh(model)
    probe.set_weights(model.get_weights())
    n, steps, _ = X.shape
    lengths = np.full(n, steps) if lengths is None else np.asarray(lengths)
    epoch_losses = []
    for _ in range(epochs):
        total = weight = 0.0
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(start + batch_size, n))
            state = np.zeros((model.num_layers, rows.size, model.hidden_size))
            for c0 in range(0, steps, k):
                active = lengths[rows] > c0
                if not active.any():
                    break
                sel = rows[active]
                chunk_lengths = np.minimum(lengths[sel] - c0, k)
                Xc, Yc = X[sel, c0:c0 + k], Y[sel, c0:c0 + k]
                h0 = state[:, active]
                loss, grads = probe.loss_and_grad(Xc, Yc, h0, lengths=chunk_lengths)
                _, h_next = probe.forward(Xc, h0, return_state=True, lengths=chunk_lengths)
                weights = probe.get_weights()
                probe.set_weights({name: w - lr * grads[name] for name, w in weights.items()})
                state[:, active] = h_next
                total += loss * chunk_lengths.sum()
                weight += chunk_lengths.sum()
        epoch_losses.append(total / weight)
    return probe.get_weights(), epoch_losses


@pytest.mark.parametrize("ragged", [False, True])
def test_tbptt_with_full_length_chunks_equals_full_bptt(ragged, backend, assert_close):
    model = elman.RNN(2, 5, 2, num_layers=2, seed=60)
    X, Y, lengths = make_data(61, n=9, steps=6, inputs=2, outputs=2, ragged=ragged)
    common = dict(epochs=3, batch_size=4, optimizer="momentum", lr=0.05, clip_norm=1.0,
                  shuffle=True, seed=62, lengths=lengths)
    full = fresh(model)
    history_full = full.fit(X, Y, **common)
    for k in (6, 100):
        truncated = fresh(model)
        history = truncated.fit(X, Y, tbptt=k, **common)
        assert history.steps == history_full.steps == 9
        assert_close(truncated.parameters, full.parameters, what=f"weights, tbptt={k}")
        if not ragged:  # (ragged: tbptt weights epoch losses by valid steps)
            assert_close(np.array(history.loss), np.array(history_full.loss),
                         what="history.loss")
    assert_trained(full, model.parameters)


@pytest.mark.parametrize("ragged", [False, True])
def test_tbptt_matches_hand_written_truncation(ragged, backend, assert_close,
                                                monkeypatch):
    model = elman.RNN(2, 5, 1, num_layers=2, seed=63)
    X, Y, lengths = make_data(64, n=5, steps=7, inputs=2, outputs=1, ragged=ragged)
    k = 3  # chunks of 3, 3 and 1 steps
    expected, expected_losses = reference_truncated(model, X, Y, k, epochs=2, batch_size=3,
                                                    lr=0.1, lengths=lengths)
    full_bptt, _, _ = reference_training(model, X, Y, epochs=2, batch_size=3, method="sgd",
                                         lr=0.1, lengths=lengths)

    # Spy on what the truncated path computes with: never more than k steps at once.
    seen = []
    original_route = _engine.route

    def spied_route(batch, hidden, kernels=None):
        chosen = original_route(batch, hidden, kernels)

        def spy_loss_and_grad(*args):
            Xc, Yc, h0 = args[7:10]
            seen.append(("loss_and_grad", Xc.shape[1], Yc.shape[1], bool(np.any(h0))))
            return chosen.loss_and_grad(*args)

        def spy_forward(*args):
            Xc, h0 = args[7:9]
            seen.append(("forward", Xc.shape[1], None, bool(np.any(h0))))
            return chosen.forward(*args)

        return SimpleNamespace(name=chosen.name, loss_and_grad=spy_loss_and_grad,
                               forward=spy_forward)

    monkeypatch.setattr(_engine, "route", spied_route)
    monkeypatch.setattr(training, "_run_epoch",
                        lambda *a, **kw: pytest.fail("full-BPTT path used with tbptt"))
    history = model.fit(X, Y, epochs=2, batch_size=3, optimizer="sgd", lr=0.1, shuffle=False,
                        lengths=lengths, tbptt=k)
    monkeypatch.undo()

    assert_weights_close(assert_close, model.get_weights(), expected, model.dtype)
    assert_close(np.array(history.loss), np.array(expected_losses), what="history.loss")
    # Truncation matters here: full BPTT on the same batches ends elsewhere.
    assert max(np.max(np.abs(model.get_weights()[n] - full_bptt[n])) for n in full_bptt) > 1e-4
    chunk_steps = {steps for _, steps, _, _ in seen}
    assert max(chunk_steps) == k and chunk_steps <= {1, 2, 3}
    assert {steps for what, steps, y_steps, _ in seen if what == "loss_and_grad"} \
        == {steps for what, steps, _, _ in seen if what == "forward"}
    assert all(y_steps == steps for what, steps, y_steps, _ in seen if what == "loss_and_grad")
    # Chunks after the first start from the carried (nonzero) state.
    assert any(carried for _, _, _, carried in seen)
    assert history.steps == len([s for s in seen if s[0] == "loss_and_grad"])


# ------------------------------------------------------------ variable lengths
@pytest.mark.parametrize("many_to_many", [True, False])
@pytest.mark.parametrize("layers", [1, 3])
def test_padded_batch_equals_sequences_alone(many_to_many, layers, backend, assert_close):
    rng = np.random.default_rng(70 + layers)
    model = elman.RNN(3, 5, 2, num_layers=layers, return_sequences=many_to_many, seed=71)
    lengths = np.array([6, 1, 4, 2, 6, 3])
    n, steps = lengths.size, 6
    X = rng.normal(size=(n, steps, 3))
    X[np.arange(steps)[None, :] >= lengths[:, None]] = rng.normal(10, 5, size=3)  # junk
    Y = rng.normal(size=(n, steps, 2) if many_to_many else (n, 2))
    if many_to_many:
        Y[np.arange(steps)[None, :] >= lengths[:, None]] = np.nan
    h0 = rng.uniform(-0.5, 0.5, size=(layers, n, 5))

    outputs, h_last = model.forward(X, h0, return_state=True, lengths=lengths)
    loss, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)

    counts = lengths * 2 if many_to_many else np.full(n, 2)
    weighted_loss = 0.0
    weighted_grads = {name: np.zeros_like(g) for name, g in grads.items()}
    for b, length in enumerate(lengths):
        alone_X = X[b, :length]
        alone_Y = Y[b, :length] if many_to_many else Y[b]
        out_b, h_b = model.forward(alone_X, h0[:, b], return_state=True)
        if many_to_many:
            assert_close(outputs[b, :length], out_b, what=f"outputs of sequence {b}")
            assert not np.any(outputs[b, length:])
        else:
            assert_close(outputs[b], out_b, what=f"output of sequence {b}")
        assert_close(h_last[:, b], h_b, what=f"final state of sequence {b}")
        loss_b, grads_b = model.loss_and_grad(alone_X, alone_Y, h0[:, b])
        # Each loss is a mean over its own elements: weight by their count.
        weighted_loss += loss_b * counts[b]
        for name in grads_b:
            weighted_grads[name] += grads_b[name] * counts[b]
    assert_close(loss, weighted_loss / counts.sum(), what="loss")
    for name, g in grads.items():
        assert_close(g, weighted_grads[name] / counts.sum(), what=f"gradient {name}")


def test_fit_ignores_padded_steps(backend, assert_close):
    """NaN targets and junk inputs at padded steps change nothing in fit."""
    model = elman.RNN(2, 4, 1, num_layers=2, seed=72)
    X, Y, lengths = make_data(73, n=8, steps=6, inputs=2, outputs=1, ragged=True)
    padded = np.arange(6)[None, :] >= lengths[:, None]
    assert padded.any() and np.isnan(Y[padded]).all()
    X_zero, Y_zero = X.copy(), Y.copy()
    X_zero[padded] = 0.0
    Y_zero[padded] = 0.0
    X_junk = X.copy()
    X_junk[padded] = 1e3

    results = []
    for Xi, Yi in ((X, Y), (X_zero, Y_zero), (X_junk, Y)):
        m = fresh(model)
        history = m.fit(Xi, Yi, epochs=3, batch_size=3, optimizer="adam", lr=0.02,
                        shuffle=True, seed=1, lengths=lengths)
        assert np.isfinite(m.parameters).all()
        results.append((params(m), history.loss))
    for theta, losses in results[1:]:
        assert_close(theta, results[0][0], what="weights")
        assert_close(np.array(losses), np.array(results[0][1]), what="losses")
    # Without lengths the NaN targets are rejected, naming Y.
    with pytest.raises(ValueError, match="Y"):
        fresh(model).fit(X, Y, epochs=1)


# ---------------------------------------------------------------- validation
def _bad_fit_calls():
    m2m = dict(input_size=2, hidden_size=3, output_size=1)
    X = np.zeros((4, 3, 2))
    Y = np.zeros((4, 3, 1))
    cases = [
        # (id, model kwargs, args, kwargs, exception, message must mention)
        ("epochs-negative", m2m, (X, Y), dict(epochs=-1), ValueError, "epochs"),
        ("epochs-float", m2m, (X, Y), dict(epochs=2.5), TypeError, "epochs"),
        ("epochs-bool", m2m, (X, Y), dict(epochs=True), TypeError, "epochs"),
        ("batch_size-zero", m2m, (X, Y), dict(batch_size=0), ValueError, "batch_size"),
        ("batch_size-str", m2m, (X, Y), dict(batch_size="4"), TypeError, "batch_size"),
        ("lr-zero", m2m, (X, Y), dict(lr=0.0), ValueError, "lr"),
        ("lr-negative", m2m, (X, Y), dict(lr=-0.1), ValueError, "lr"),
        ("lr-nan", m2m, (X, Y), dict(lr=float("nan")), ValueError, "lr"),
        ("lr-str", m2m, (X, Y), dict(lr="0.1"), TypeError, "lr"),
        ("lr-beside-instance", m2m, (X, Y), dict(optimizer=SGD(), lr=0.1), ValueError, "lr"),
        ("clip_value-zero", m2m, (X, Y), dict(clip_value=0.0), ValueError, "clip_value"),
        ("clip_value-negative", m2m, (X, Y), dict(clip_value=-5.0), ValueError, "clip_value"),
        ("clip_value-inf", m2m, (X, Y), dict(clip_value=float("inf")), ValueError,
         "clip_value"),
        ("clip_norm-zero", m2m, (X, Y), dict(clip_norm=0), ValueError, "clip_norm"),
        ("clip_norm-str", m2m, (X, Y), dict(clip_norm="1"), TypeError, "clip_norm"),
        ("optimizer-unknown", m2m, (X, Y), dict(optimizer="rmsprop"), ValueError,
         "optimizer"),
        ("optimizer-type", m2m, (X, Y), dict(optimizer=3), TypeError, "optimizer"),
        ("verbose", m2m, (X, Y), dict(verbose=3), ValueError, "verbose"),
        ("seed-negative", m2m, (X, Y), dict(seed=-1), ValueError, "seed"),
        ("callbacks-not-callable", m2m, (X, Y), dict(callbacks=[1]), TypeError, "callbacks"),
        ("validation_data-not-tuple", m2m, (X, Y), dict(validation_data=X), TypeError,
         "validation_data"),
        ("validation_data-one-item", m2m, (X, Y), dict(validation_data=(X,)), TypeError,
         "validation_data"),
        ("validation_data-X-unbatched", m2m, (X, Y),
         dict(validation_data=(np.zeros((3, 2)), np.zeros((3, 1)))), ValueError,
         "validation_data"),
        ("validation_data-X-features", m2m, (X, Y),
         dict(validation_data=(np.zeros((2, 3, 5)), np.zeros((2, 3, 1)))), ValueError,
         "validation_data"),
        ("validation_data-Y-shape", m2m, (X, Y),
         dict(validation_data=(np.zeros((2, 3, 2)), np.zeros((2, 4, 1)))), ValueError,
         "validation_data"),
        ("validation_data-lengths", m2m, (X, Y),
         dict(validation_data=(np.zeros((2, 3, 2)), np.zeros((2, 3, 1)), [1, 9])),
         ValueError, "validation_data"),
        ("validation_data-empty", m2m, (X, Y),
         dict(validation_data=(np.zeros((0, 3, 2)), np.zeros((0, 3, 1)))), ValueError,
         "validation_data"),
        ("early_stopping-without-validation", m2m, (X, Y), dict(early_stopping=3),
         ValueError, "early_stopping"),
        ("early_stopping-type", m2m, (X, Y),
         dict(early_stopping="yes", validation_data=(X, Y)), TypeError, "early_stopping"),
        ("early_stopping-patience", m2m, (X, Y),
         dict(early_stopping={"patience": 0}, validation_data=(X, Y)), ValueError,
         "patience"),
        ("early_stopping-key", m2m, (X, Y),
         dict(early_stopping={"patients": 3}, validation_data=(X, Y)), ValueError,
         "early_stopping"),
        ("tbptt-zero", m2m, (X, Y), dict(tbptt=0), ValueError, "tbptt"),
        ("tbptt-many-to-one", dict(m2m, return_sequences=False), (X, np.zeros((4, 1))),
         dict(tbptt=2), ValueError, "tbptt"),
        ("X-unbatched", m2m, (np.zeros((3, 2)), np.zeros((3, 1))), {}, ValueError, "X"),
        ("X-features", m2m, (np.zeros((4, 3, 5)), Y), {}, ValueError, "X"),
        ("X-nan", m2m, (np.full((4, 3, 2), np.nan), Y), {}, ValueError, "X"),
        ("X-empty", m2m, (np.zeros((0, 3, 2)), np.zeros((0, 3, 1))), {}, ValueError, "X"),
        ("Y-shape", m2m, (X, np.zeros((4, 3, 2))), {}, ValueError, "Y"),
        ("Y-batch", m2m, (X, np.zeros((5, 3, 1))), {}, ValueError, "Y"),
        ("lengths-shape", m2m, (X, Y), dict(lengths=[3, 3]), ValueError, "lengths"),
        ("lengths-range", m2m, (X, Y), dict(lengths=[3, 3, 0, 3]), ValueError, "lengths"),
    ]
    return cases


@pytest.mark.parametrize("case", _bad_fit_calls(), ids=lambda case: case[0])
def test_fit_rejects_bad_arguments(case, backend):
    _, model_kwargs, args, kwargs, exception, mention = case
    model = elman.RNN(**model_kwargs, seed=0)
    before = params(model)
    with pytest.raises(exception) as caught:
        model.fit(*args, **kwargs)
    assert type(caught.value) is exception
    assert mention in str(caught.value)
    assert np.array_equal(model.parameters, before)
    assert not model._training_lock.locked()


# -------------------------------------------------------------------- threads
def _thread_problem(seed, hidden):
    model = elman.RNN(3, hidden, 2, seed=seed)
    X, Y, _ = make_data(seed + 1, n=24, steps=12, inputs=3, outputs=2)
    return model, X, Y


def _run_in_threads(functions, timeout=60):
    results = [None] * len(functions)
    errors = []
    barrier = threading.Barrier(len(functions))

    def worker(i, function):
        try:
            barrier.wait(timeout)
            results[i] = function()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not errors, errors
    return results


def test_two_models_trained_in_two_threads_match_alone(backend):
    problems = [_thread_problem(80, 16), _thread_problem(90, 12)]
    kwargs = dict(epochs=4, batch_size=2, optimizer="adam", lr=0.01, seed=5, clip_norm=1.0)

    def train(index):
        model, X, Y = problems[index]
        model = fresh(model)
        with elman.use_backend(backend):  # the fixture's switch is per thread
            history = model.fit(X, Y, **kwargs)
        return params(model), history.loss

    alone = [train(0), train(1)]
    together = _run_in_threads([lambda: train(0), lambda: train(1)])
    for (theta_alone, loss_alone), (theta_together, loss_together) in zip(alone, together):
        assert np.array_equal(theta_together, theta_alone)
        assert loss_together == loss_alone


def test_fit_on_one_model_from_two_threads_raises(backend):
    model, X, Y = _thread_problem(100, 4)
    inside = threading.Event()
    release = threading.Event()
    outcome = {}

    def hold_at_epoch_end(epoch, logs):
        inside.set()
        assert release.wait(30)

    def first():
        with elman.use_backend(backend):
            outcome["history"] = model.fit(X, Y, epochs=1, callbacks=[hold_at_epoch_end])

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(30)
        during = params(model)
        with pytest.raises(RuntimeError, match="already running"):
            model.fit(X, Y, epochs=1)
        assert np.array_equal(model.parameters, during)  # the refused call did nothing
    finally:
        release.set()
        thread.join(30)
    assert outcome["history"].epochs == 1
    # Deterministically, without a second thread: the lock is what refuses.
    with model._training_lock:
        with pytest.raises(RuntimeError, match="another thread"):
            model.fit(X, Y, epochs=1)
    assert model.fit(X, Y, epochs=1).epochs == 1


@pytest.mark.parametrize("hidden", [8, 48])  # compiled: fused loops; _gemm_path
def test_predict_from_many_threads(hidden, backend):
    model = elman.RNN(3, hidden, 2, num_layers=2, seed=110)
    X = np.random.default_rng(111).normal(size=(64, 10, 3))
    expected = model.predict(X, batch_size=32)

    def predict_repeatedly():
        with elman.use_backend(backend):
            return [model.predict(X, batch_size=32) for _ in range(5)]

    for outputs in _run_in_threads([predict_repeatedly] * 4):
        for output in outputs:
            assert np.array_equal(output, expected)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_redraws_on_a_terminal_and_prints_lines_elsewhere():
    from elman.training import _Progress

    terminal, log = _Terminal(), io.StringIO()
    for stream in (terminal, log):
        progress = _Progress(1, 3, stream=stream)
        progress.update(0, 0.5, 1.25, None)
        progress.epoch_end(0, 1.0, 2.0, 0.1)
    assert "\r" in terminal.getvalue() and "[" in terminal.getvalue()
    assert "\r" not in log.getvalue() and "[" not in log.getvalue()
    assert log.getvalue().count("\n") == 1 and "val_loss 2" in log.getvalue()
