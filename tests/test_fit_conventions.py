"""What users of scikit-learn, Keras and PyTorch bring to ``fit``: help that lists the
arguments, ``early_stopping=True``, one-output targets as a plain vector, and a
History that prints in a line."""

import inspect
import pydoc
import re

import numpy as np
import pytest

import elman
from elman.training import EARLY_STOPPING_DEFAULTS, History


def _many_to_one(seed=0, outputs=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(24, 5, 2))
    y = np.tanh(X[:, -1, 0] + 0.5 * X[:, -2, 1])
    model = elman.RNN(2, 6, outputs, return_sequences=False, seed=seed)
    return model, X, y


def test_help_on_fit_lists_its_arguments():
    text = pydoc.render_doc(elman.RNN.fit, renderer=pydoc.plaintext)
    # Each argument with its annotation and default, as pydoc prints them:
    # epochs: 'int' = 10.
    for name, default in (("epochs", "10"), ("batch_size", "32"),
                          ("early_stopping", "None"), ("tbptt", "None")):
        assert re.search(rf"\b{name}: '[^']+' = {default}\b", text), name
    assert "early_stopping : bool, int or dict" in text
    model = elman.RNN(2, 3, 1)
    parameters = list(inspect.signature(model.fit).parameters)
    assert parameters[:3] == ["X", "Y", "epochs"] and "validation_data" in parameters
    # One function, so one docstring: the method is the training loop's fit.
    assert model.fit.__func__ is elman.training.fit
    assert elman.RNN.fit.__doc__ == elman.training.fit.__doc__


def test_early_stopping_true_takes_the_documented_defaults(backend):
    model, X, y = _many_to_one(1)
    Xv, yv = X[:8], y[:8]
    common = dict(epochs=60, batch_size=8, optimizer="sgd", lr=0.5, seed=3,
                  validation_data=(Xv, yv))
    histories, weights = [], []
    for setting in (True, dict(EARLY_STOPPING_DEFAULTS)):
        trained = elman.RNN(**model.get_config())
        histories.append(trained.fit(X, y, early_stopping=setting, **common))
        weights.append(trained.parameters.copy())
    assert histories[0].as_dict()["val_loss"] == histories[1].as_dict()["val_loss"]
    assert histories[0].stopped_early == histories[1].stopped_early
    assert histories[0].best_epoch == histories[1].best_epoch is not None
    assert np.array_equal(weights[0], weights[1])
    # The documented default patience, the same as RNNRegressor's.
    assert EARLY_STOPPING_DEFAULTS["patience"] == 5
    assert inspect.signature(elman.RNNRegressor).parameters["patience"].default == 5
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(X, y, early_stopping=True)


def test_one_output_targets_may_be_a_vector(backend):
    model, X, y = _many_to_one(2)
    loss_vector, grads_vector = model.loss_and_grad(X, y)
    loss_column, grads_column = model.loss_and_grad(X, y[:, None])
    assert loss_vector == loss_column
    for name in grads_column:
        assert np.array_equal(grads_vector[name], grads_column[name])
    results = []
    for targets in (y, y[:, None]):
        trained = elman.RNN(**model.get_config())
        history = trained.fit(X, targets, epochs=3, batch_size=5, seed=4,
                              validation_data=(X[:6], targets[:6]))
        results.append((trained.parameters.copy(), history.loss, history.val_loss))
    assert np.array_equal(results[0][0], results[1][0])
    assert results[0][1:] == results[1][1:]


@pytest.mark.parametrize("outputs, return_sequences", [(2, False), (1, True)])
def test_vector_targets_are_refused_where_they_would_be_ambiguous(outputs,
                                                                  return_sequences):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6, 4, 2))
    model = elman.RNN(2, 3, outputs, return_sequences=return_sequences, seed=0)
    with pytest.raises(ValueError, match=r"Y must have shape .*got \(6,\)"):
        model.loss_and_grad(X, rng.normal(size=6))
    with pytest.raises(ValueError, match=r"Y must have shape"):
        model.fit(X, rng.normal(size=6), epochs=1)


def test_estimator_takes_a_vector_target():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(6)
    X = rng.normal(size=(30, 4, 2))
    y = X[:, -1, 0]
    regressor = elman.RNNRegressor(hidden_size=3, epochs=2, random_state=0).fit(X, y)
    assert regressor.predict(X).shape == (30,)


def test_history_repr_is_one_short_line():
    history = History(loss=list(np.linspace(2.0, 0.5, 5000)),
                      val_loss=list(np.linspace(2.5, 0.75, 5000)),
                      epoch_time=[0.01] * 5000, best_epoch=4999, steps=40000)
    text = repr(history)
    assert "\n" not in text and len(text) < 160, text
    assert text.startswith("History(epochs=5000, loss=0.5, val_loss=0.75, best_epoch=4999")
    assert "steps=40000" in text and "total_time=50s" in text
    assert repr(History()) == "History(epochs=0, steps=0, total_time=0s)"
    stopped = History(loss=[1.0], stopped_early=True, interrupted=True)
    assert "stopped_early=True" in repr(stopped) and "interrupted=True" in repr(stopped)
