"""elman.RNNRegressor: scikit-learn's conventions, with and without scikit-learn.

scikit-learn's own checks (``check_estimator``) run when it is installed, on a
configuration with few epochs so that they stay fast on both backends. They feed
2-D tables, which the regressor reads as univariate sequences (window=None); what
they cannot exercise (3-D input, window=) is tested here directly. Checks that
skip themselves: ``check_array_api_input`` (needs SCIPY_ARRAY_API and array-API
libraries; elman computes with NumPy only) and, without pandas, the DataFrame
checks.
"""

import importlib.util
import pickle
import sys

import numpy as np
import pytest

import elman
from elman.estimator import RNNRegressor

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None

needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn is not installed")
FAST = {"hidden_size": 4, "epochs": 3, "batch_size": 16}


def windows(n=120, window=6, features=2, seed=0):
    """X (n, window, features) and y (n,) with y = a smooth function of the window."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, window, features))
    y = 50 + 10 * np.tanh(X[:, -2:, 0].sum(axis=1) - 0.5 * X[:, -1, 1])
    return X, y


def test_exported_lazily():
    assert elman.RNNRegressor is RNNRegressor
    assert "RNNRegressor" in elman.__all__


def test_get_params_set_params():
    reg = RNNRegressor(hidden_size=8, lr=0.01, random_state=3)
    params = reg.get_params()
    assert params["hidden_size"] == 8 and params["lr"] == 0.01 and params["random_state"] == 3
    assert set(params) == {"hidden_size", "num_layers", "window", "epochs", "batch_size",
                           "optimizer", "lr", "clip_norm", "early_stopping",
                           "validation_fraction", "patience", "scale_target", "init", "loss",
                           "dtype", "random_state", "verbose"}
    assert reg.set_params(hidden_size=4, epochs=2) is reg
    assert reg.hidden_size == 4 and reg.epochs == 2
    with pytest.raises(ValueError, match="Invalid parameter"):
        reg.set_params(hidden=3)


def test_constructor_only_stores_and_validates_in_fit():
    reg = RNNRegressor(hidden_size=-1, epochs="many")  # stored as given, no error yet
    assert reg.hidden_size == -1
    X, y = windows(20)
    with pytest.raises((TypeError, ValueError)):
        reg.fit(X, y)


def test_fit_predict_score_against_hand_computation(backend):
    X, y = windows()
    reg = RNNRegressor(hidden_size=8, epochs=20, lr=0.01, random_state=0)
    assert reg.fit(X, y) is reg
    predicted = reg.predict(X)
    assert predicted.shape == (120,) and predicted.dtype == np.float64
    # predict = the network's last output on the standardised target, mapped back.
    by_hand = reg.model_.predict(X)[:, 0] * y.std() + y.mean()
    np.testing.assert_allclose(predicted, by_hand, rtol=1e-12)
    r2 = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
    assert reg.score(X, y) == pytest.approx(r2, rel=1e-12)
    assert reg.score(X, y) > 0.5  # it learned something
    weights = np.linspace(1, 2, 120)
    weighted_mean = np.average(y, weights=weights)
    r2_weighted = 1 - (np.sum(weights * (y - predicted) ** 2)
                       / np.sum(weights * (y - weighted_mean) ** 2))
    assert reg.score(X, y, sample_weight=weights) == pytest.approx(r2_weighted, rel=1e-12)


def test_score_matches_sklearn_r2_multioutput():
    metrics = pytest.importorskip("sklearn.metrics")
    X, y = windows()
    Y = np.column_stack([y, -2 * y + 1])
    reg = RNNRegressor(**FAST, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (120, 2)
    assert reg.score(X, Y) == pytest.approx(metrics.r2_score(Y, reg.predict(X)), rel=1e-12)


def test_fitted_attributes_end_in_underscore():
    reg = RNNRegressor(**FAST, random_state=0)
    before = set(vars(reg))
    X, y = windows()
    reg.fit(X, y)
    public_new = {k for k in set(vars(reg)) - before if not k.startswith("_")}
    assert public_new and all(k.endswith("_") for k in public_new)
    assert {"model_", "history_", "loss_curve_", "n_iter_", "n_features_in_", "window_",
            "input_size_", "n_outputs_", "y_mean_", "y_scale_"} <= public_new
    assert reg.n_features_in_ == 2 and reg.window_ == 6 and reg.input_size_ == 2
    assert isinstance(reg.model_, elman.RNN) and not reg.model_.return_sequences
    assert reg.n_iter_ == 3 == len(reg.loss_curve_)


def test_not_fitted_error():
    with pytest.raises(ValueError, match="not fitted yet"):
        RNNRegressor().predict(np.zeros((2, 3, 1)))
    with pytest.raises(AttributeError):
        RNNRegressor().predict(np.zeros((2, 3, 1)))


def test_random_state_reproducible(backend):
    X, y = windows()
    a = RNNRegressor(**FAST, random_state=7).fit(X, y).predict(X)
    b = RNNRegressor(**FAST, random_state=7).fit(X, y).predict(X)
    c = RNNRegressor(**FAST, random_state=8).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = RNNRegressor(**FAST, random_state=np.random.RandomState(7)).fit(X, y).predict(X)
    assert d.shape == a.shape


def test_2d_input_with_window_equals_3d():
    X, y = windows()
    flat = X.reshape(len(X), -1)  # time-major: (t0 f0, t0 f1, t1 f0, ...)
    a = RNNRegressor(**FAST, random_state=1).fit(X, y)
    b = RNNRegressor(**FAST, window=6, random_state=1).fit(flat, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(flat))
    assert b.n_features_in_ == 12 and b.window_ == 6 and b.input_size_ == 2
    with pytest.raises(ValueError, match="expecting 12 features"):
        b.predict(flat[:, :10])
    with pytest.raises(ValueError, match="does not divide"):
        RNNRegressor(**FAST, window=5).fit(flat, y)
    # window=None: every column one step of one feature.
    c = RNNRegressor(**FAST, random_state=1).fit(flat, y)
    assert c.window_ == 12 and c.input_size_ == 1


def test_input_errors():
    X, y = windows(30)
    reg = RNNRegressor(**FAST)
    with pytest.raises(ValueError, match="Reshape your data"):
        reg.fit(X[:, 0, 0], y)
    with pytest.raises(ValueError, match="NaN or infinity"):
        reg.fit(np.where(X > 2, np.nan, X), y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        reg.fit(X, y[:-1])
    with pytest.raises(ValueError, match="requires y"):
        reg.fit(X, None)
    with pytest.raises(ValueError, match="0 sample"):
        reg.fit(X[:0], y[:0])


def test_early_stopping_holds_out_the_last_samples():
    X, y = windows(100)
    reg = RNNRegressor(hidden_size=4, epochs=30, early_stopping=True, validation_fraction=0.2,
                       patience=2, random_state=0).fit(X, y)
    assert len(reg.validation_loss_curve_) == reg.n_iter_ >= 1
    # The validation loss recorded is the loss on the last 20 windows.
    last = reg.history_.best_epoch if reg.history_.stopped_early else reg.n_iter_ - 1
    scaled = (y[-20:] - reg.y_mean_[0]) / reg.y_scale_[0]
    mse = np.mean((reg.model_.predict(X[-20:])[:, 0] - scaled) ** 2)
    assert reg.validation_loss_curve_[last] == pytest.approx(mse, rel=1e-9)


def test_pickle_round_trip():
    X, y = windows()
    reg = RNNRegressor(**FAST, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))


def test_without_sklearn(monkeypatch):
    """The module imports and works with scikit-learn absent (its own get_params etc.)."""
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn -> ImportError
    spec = importlib.util.find_spec("elman.estimator")
    module = importlib.util.module_from_spec(spec)  # a fresh copy, not in sys.modules
    spec.loader.exec_module(module)
    assert module.SKLEARN_AVAILABLE is False
    Regressor = module.RNNRegressor
    assert [c.__name__ for c in Regressor.__mro__] == ["RNNRegressor", "_EstimatorBase",
                                                       "object"]
    reg = Regressor(hidden_size=4, epochs=3, random_state=0)
    assert reg._estimator_type == "regressor"
    assert reg.get_params()["hidden_size"] == 4
    assert repr(reg) == "RNNRegressor(epochs=3, hidden_size=4, random_state=0)"
    twin = Regressor(**reg.get_params())  # what clone does
    X, y = windows()
    a = reg.fit(X, y).predict(X)
    np.testing.assert_array_equal(twin.fit(X, y).predict(X), a)
    r2 = 1 - np.sum((y - a) ** 2) / np.sum((y - y.mean()) ** 2)
    assert reg.score(X, y) == pytest.approx(r2, rel=1e-12)
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        reg.set_params(nope=1)
    with pytest.raises(ValueError, match="not fitted"):
        Regressor().predict(X)


# -------------------------------------------------------------- with scikit-learn
@needs_sklearn
def test_clone_and_is_regressor():
    from sklearn.base import clone, is_regressor

    reg = RNNRegressor(hidden_size=5, random_state=2)
    copy = clone(reg)
    assert copy is not reg and copy.get_params() == reg.get_params()
    assert is_regressor(reg)
    X, y = windows()
    reg.fit(X, y)
    assert not hasattr(clone(reg), "model_")


@needs_sklearn
def test_pipeline_cross_val_score_grid_search():
    from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = windows(160)
    flat = X.reshape(len(X), -1)
    pipe = make_pipeline(StandardScaler(), RNNRegressor(**FAST, window=6, random_state=0))
    scores = cross_val_score(pipe, flat, y, cv=TimeSeriesSplit(n_splits=3))
    assert scores.shape == (3,) and np.isfinite(scores).all()

    search = GridSearchCV(pipe, {"rnnregressor__hidden_size": [3, 6],
                                 "rnnregressor__lr": [0.01]},
                          cv=TimeSeriesSplit(n_splits=2), n_jobs=2)
    search.fit(flat, y)
    assert search.best_params_["rnnregressor__hidden_size"] in (3, 6)
    assert search.predict(flat).shape == (160,)
    # 3-D input goes through model selection too (rows are indexed, never reshaped).
    scores3 = cross_val_score(RNNRegressor(**FAST, random_state=0), X, y, cv=2)
    assert np.isfinite(scores3).all()


if HAVE_SKLEARN:
    from sklearn.utils.estimator_checks import parametrize_with_checks

    @parametrize_with_checks([RNNRegressor(hidden_size=4, epochs=5, random_state=0)])
    def test_sklearn_estimator_checks(estimator, check):
        check(estimator)
