"""Tests for elman.preprocessing: windows, the chronological split and the scaler."""

import numpy as np
import pytest

from elman.datasets import load_weather
from elman.preprocessing import (
    MinMaxScaler,
    NotFittedError,
    StandardScaler,
    sliding_windows,
    train_val_test_split,
)


def reference_windows(x, y, window, horizon, many_to_many):
    """The documented definition, one element at a time."""
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    n_windows = len(x) - window - horizon + 1
    X = np.array([[x[i + t] for t in range(window)] for i in range(n_windows)])
    if many_to_many:
        Y = np.array([[y[i + t + horizon] for t in range(window)] for i in range(n_windows)])
    else:
        Y = np.array([y[i + window - 1 + horizon] for i in range(n_windows)])
    return X, Y


# --------------------------------------------------------------------------------------
# sliding_windows
# --------------------------------------------------------------------------------------


def test_windows_many_to_many_by_hand():
    X, Y = sliding_windows(np.arange(6.0), 3)
    assert X.shape == (3, 3, 1) and Y.shape == (3, 3, 1)
    np.testing.assert_array_equal(X[:, :, 0], [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(Y[:, :, 0], [[1, 2, 3], [2, 3, 4], [3, 4, 5]])


def test_windows_many_to_one_by_hand():
    X, Y = sliding_windows(np.arange(6.0), 3, many_to_many=False)
    assert X.shape == (3, 3, 1) and Y.shape == (3, 1)
    np.testing.assert_array_equal(X[:, :, 0], [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(Y, [[3], [4], [5]])


def test_windows_horizon_two_by_hand():
    X, Y = sliding_windows(np.arange(6.0), 3, horizon=2, many_to_many=False)
    np.testing.assert_array_equal(X[:, :, 0], [[0, 1, 2], [1, 2, 3]])
    np.testing.assert_array_equal(Y, [[4], [5]])
    X, Y = sliding_windows(np.arange(6.0), 3, horizon=2)
    np.testing.assert_array_equal(Y[:, :, 0], [[2, 3, 4], [3, 4, 5]])


def test_windows_with_features_and_separate_targets_by_hand():
    series = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0], [3.0, 13.0], [4.0, 14.0]])
    targets = np.array([100.0, 101.0, 102.0, 103.0, 104.0])
    X, Y = sliding_windows(series, 2, targets=targets, many_to_many=False)
    np.testing.assert_array_equal(X, [[[0, 10], [1, 11]], [[1, 11], [2, 12]], [[2, 12], [3, 13]]])
    np.testing.assert_array_equal(Y, [[102], [103], [104]])
    # Targets already aligned to their row (like tmax_tomorrow): horizon=0.
    X, Y = sliding_windows(series, 2, targets=targets, horizon=0, many_to_many=False)
    assert X.shape == (4, 2, 2)
    np.testing.assert_array_equal(Y, [[101], [102], [103], [104]])
    X, Y = sliding_windows(series, 2, targets=targets, horizon=0)
    np.testing.assert_array_equal(Y[:, :, 0], [[100, 101], [101, 102], [102, 103], [103, 104]])


@pytest.mark.parametrize("many_to_many", [True, False])
@pytest.mark.parametrize("window,horizon", [(1, 1), (4, 1), (5, 3), (7, 0), (12, 2)])
def test_windows_match_the_definition(window, horizon, many_to_many):
    rng = np.random.default_rng(window * 10 + horizon)
    x = rng.normal(size=(30, 3))
    y = rng.normal(size=(30, 2))
    X, Y = sliding_windows(x, window, targets=y, horizon=horizon, many_to_many=many_to_many)
    X_ref, Y_ref = reference_windows(x, y, window, horizon, many_to_many)
    assert X.shape == (30 - window - horizon + 1, window, 3)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(Y, Y_ref)


def test_windows_are_read_only_views():
    x = np.arange(20.0).reshape(10, 2)
    y = np.arange(10.0)
    for many_to_many in (True, False):
        X, Y = sliding_windows(x, 3, targets=y, many_to_many=many_to_many)
        assert np.shares_memory(X, x) and np.shares_memory(Y, y)
        assert not X.flags.writeable and not Y.flags.writeable
        with pytest.raises(ValueError):
            X[0, 0, 0] = 1.0
    X, Y = sliding_windows(y, 4)
    assert np.shares_memory(X, y) and np.shares_memory(Y, y)
    y[5] = -1.0  # a view sees the change
    assert X[2, 3, 0] == -1.0 and Y[1, 3, 0] == -1.0
    assert y.flags.writeable  # the caller's array is untouched


def test_windows_dtypes():
    X32, Y32 = sliding_windows(np.arange(10, dtype=np.float32), 3)
    assert X32.dtype == np.float32 and Y32.dtype == np.float32
    series = np.arange(10)
    X, Y = sliding_windows(series, 3)
    assert X.dtype == np.float64 and not np.shares_memory(X, series)
    X, Y = sliding_windows([1, 2, 3, 4], 2, many_to_many=False)
    np.testing.assert_array_equal(Y, [[3.0], [4.0]])


def test_windows_minimum_length():
    X, Y = sliding_windows(np.arange(5.0), 4, many_to_many=False)
    assert X.shape == (1, 4, 1)
    np.testing.assert_array_equal(Y, [[4.0]])
    with pytest.raises(
        ValueError, match=r"series has 5 steps; window=5 and horizon=1 need at least 6"
    ):
        sliding_windows(np.arange(5.0), 5)
    with pytest.raises(ValueError, match="need at least"):
        sliding_windows(np.zeros((0, 2)), 1)


def test_windows_argument_checks():
    x = np.arange(10.0)
    with pytest.raises(ValueError, match="window must be >= 1; got 0"):
        sliding_windows(x, 0)
    with pytest.raises(TypeError, match="window must be an integer; got float 2.5"):
        sliding_windows(x, 2.5)
    with pytest.raises(TypeError, match="window must be an integer"):
        sliding_windows(x, True)
    assert sliding_windows(x, np.int64(3))[0].shape == (7, 3, 1)
    with pytest.raises(ValueError, match="horizon=0 with targets=None"):
        sliding_windows(x, 3, horizon=0)
    with pytest.raises(ValueError, match="horizon must be >= 1; got -1"):
        sliding_windows(x, 3, horizon=-1)
    with pytest.raises(ValueError, match="horizon must be >= 0; got -1"):
        sliding_windows(x, 3, targets=x, horizon=-1)
    with pytest.raises(TypeError, match="many_to_many must be True or False"):
        sliding_windows(x, 3, many_to_many="yes")
    with pytest.raises(ValueError, match=r"series must be 1-D .* got shape \(2, 5, 1\)"):
        sliding_windows(np.zeros((2, 5, 1)), 2)
    with pytest.raises(ValueError, match=r"series must be 1-D .* got shape \(\)"):
        sliding_windows(np.float64(1.0), 1)
    with pytest.raises(ValueError, match="targets has 9 rows but series has 10"):
        sliding_windows(x, 3, targets=x[:9])
    with pytest.raises(TypeError, match="series must hold real numbers; got an array of dtype <U1"):
        sliding_windows(["a", "b", "c"], 1)
    with pytest.raises(ValueError, match="at least one column"):
        sliding_windows(np.zeros((10, 0)), 2)


# --------------------------------------------------------------------------------------
# train_val_test_split
# --------------------------------------------------------------------------------------


def test_split_boundaries_and_order():
    x = np.arange(100)
    train, val, test = train_val_test_split(x)
    np.testing.assert_array_equal(train, np.arange(70))
    np.testing.assert_array_equal(val, np.arange(70, 85))
    np.testing.assert_array_equal(test, np.arange(85, 100))
    assert all(np.shares_memory(part, x) for part in (train, val, test))


def test_split_sizes_for_the_weather_data():
    sizes = [len(part) for part in train_val_test_split(np.empty(13509))]
    assert sizes == [9456, 2026, 2027]


def test_split_several_aligned_arrays():
    X = np.arange(40).reshape(20, 2)
    y = np.arange(20) * 10
    parts = train_val_test_split(X, y, fractions=(0.5, 0.25, 0.25))
    assert len(parts) == 6
    X_train, X_val, X_test, y_train, y_val, y_test = parts
    assert [len(p) for p in parts] == [10, 5, 5, 10, 5, 5]
    np.testing.assert_array_equal(X_train[:, 0] * 5, y_train)
    np.testing.assert_array_equal(X_test[:, 0] * 5, y_test)
    np.testing.assert_array_equal(np.concatenate([X_train, X_val, X_test]), X)
    assert X_val[0, 0] == 20 and y_val[0] == 100


def test_split_empty_parts_and_lists():
    train, val, test = train_val_test_split([1, 2, 3, 4], fractions=(0.75, 0.0, 0.25))
    np.testing.assert_array_equal(train, [1, 2, 3])
    assert len(val) == 0
    np.testing.assert_array_equal(test, [4])
    train, val, test = train_val_test_split(np.arange(7), fractions=(0.8, 0.2, 0))
    assert len(train) + len(val) == 7 and len(test) == 0


def test_split_argument_checks():
    x = np.arange(10)
    with pytest.raises(
        ValueError, match=r"fractions must sum to 1; got \(0.7, 0.2, 0.2\), which sums to 1.1"
    ):
        train_val_test_split(x, fractions=(0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match="three numbers"):
        train_val_test_split(x, fractions=(0.8, 0.2))
    with pytest.raises(ValueError, match=">= 0"):
        train_val_test_split(x, fractions=(1.2, -0.1, -0.1))
    with pytest.raises(ValueError, match="train fraction must be > 0"):
        train_val_test_split(x, fractions=(0, 0.5, 0.5))
    with pytest.raises(TypeError, match="must be a real number"):
        train_val_test_split(x, fractions=("0.7", 0.15, 0.15))
    with pytest.raises(ValueError, match=r"same number of rows; got lengths \[10, 9\]"):
        train_val_test_split(x, x[:9])
    with pytest.raises(ValueError, match="3 rows are too few .* validation part would be empty"):
        train_val_test_split(np.arange(3))
    with pytest.raises(TypeError, match="at least one array"):
        train_val_test_split()
    with pytest.raises(TypeError, match="scalar"):
        train_val_test_split(np.float64(3.0))


# --------------------------------------------------------------------------------------
# StandardScaler
# --------------------------------------------------------------------------------------


def test_scaler_statistics_and_transform():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[5.0, -3.0, 100.0], scale=[2.0, 0.1, 30.0], size=(500, 3))
    scaler = StandardScaler().fit(X)
    np.testing.assert_allclose(scaler.mean_, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(scaler.scale_, X.std(axis=0), rtol=1e-14)
    assert scaler.n_features_in_ == 3 and scaler.n_samples_seen_ == 500
    Z = scaler.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(scaler.inverse_transform(Z), X, rtol=1e-13)
    np.testing.assert_array_equal(StandardScaler().fit_transform(X), Z)


def test_scaler_is_fitted_on_train_only():
    series = np.concatenate([np.full(70, 1.0), np.full(30, 50.0)]) + np.arange(100) * 0.01
    train, val, test = train_val_test_split(series)
    scaler = StandardScaler().fit(train)
    np.testing.assert_allclose(scaler.mean_, [train.mean()])
    expected = (test - train.mean()) / train.std()
    np.testing.assert_allclose(scaler.transform(test), expected, rtol=1e-13)
    assert scaler.transform(test).min() > 10  # the test period lies far above the training one


def test_scaler_on_windows_and_1d():
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(50, 2)) * [1.0, 10.0]
    X, _ = sliding_windows(rows, 5)
    scaler = StandardScaler().fit(rows)
    np.testing.assert_allclose(scaler.transform(X), sliding_windows(scaler.transform(rows), 5)[0])
    assert StandardScaler().fit(X).mean_.shape == (2,)
    assert StandardScaler().fit(X).n_samples_seen_ == X.shape[0] * X.shape[1]
    one = StandardScaler().fit(rows[:, 1])
    assert one.mean_.shape == (1,)
    assert one.transform(rows[:, 1]).shape == (50,)
    assert one.transform(rows[:, 1:]).shape == (50, 1)
    assert one.inverse_transform(np.zeros((4, 3, 1))).shape == (4, 3, 1)
    np.testing.assert_allclose(one.inverse_transform(one.transform(rows[:, 1])), rows[:, 1])


def test_scaler_constant_feature():
    X = np.column_stack([np.full(10, 0.1), np.arange(10.0)])
    scaler = StandardScaler().fit(X)
    assert scaler.scale_[0] == 1.0
    Z = scaler.transform(X)
    np.testing.assert_allclose(Z[:, 0], 0.0, atol=1e-15)
    np.testing.assert_allclose(scaler.inverse_transform(Z), X, rtol=1e-14)


def test_scaler_nan_is_ignored_in_fit_and_kept_in_transform():
    X = np.array([[1.0, 2.0], [np.nan, 4.0], [3.0, 6.0]])
    scaler = StandardScaler().fit(X)
    np.testing.assert_allclose(scaler.mean_, [2.0, 4.0])
    Z = scaler.transform(X)
    assert np.isnan(Z[1, 0]) and not np.isnan(Z[[0, 2], 0]).any()
    with pytest.raises(ValueError, match="feature 0"):
        StandardScaler().fit(np.array([[np.nan, 1.0], [np.nan, 2.0]]))
    with pytest.raises(ValueError, match="infinite"):
        StandardScaler().fit(np.array([1.0, np.inf]))


def test_scaler_dtypes_and_no_mutation():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    before = X.copy()
    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    assert Z.dtype == np.float32
    np.testing.assert_array_equal(X, before)
    assert scaler.transform(np.arange(12).reshape(6, 2)).dtype == np.float64
    assert scaler.mean_.dtype == np.float64


def test_scaler_not_fitted():
    scaler = StandardScaler()
    assert not hasattr(scaler, "mean_")
    with pytest.raises(
        NotFittedError, match=r"not fitted yet; call fit\(X\) .* before transform\(\)"
    ):
        scaler.transform(np.zeros((2, 2)))
    with pytest.raises(ValueError):
        scaler.inverse_transform(np.zeros((2, 2)))
    with pytest.raises(AttributeError):
        scaler.get_state()
    assert repr(scaler) == "StandardScaler()"


def test_scaler_shape_errors():
    scaler = StandardScaler().fit(np.zeros((5, 3)) + np.arange(3))
    with pytest.raises(
        ValueError,
        match=r"X has shape \(5, 2\), but this scaler was fitted on 3 features: "
        r"expected shape \(\.\.\., 3\)",
    ):
        scaler.transform(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"X has shape \(3,\).*1-D array is read as one feature"):
        scaler.transform(np.zeros(3))
    with pytest.raises(ValueError, match="scalar"):
        StandardScaler().fit(np.float64(1.0))
    with pytest.raises(ValueError, match="at least one sample"):
        StandardScaler().fit(np.zeros((0, 3)))
    with pytest.raises(TypeError, match="real numbers"):
        StandardScaler().fit(np.array(["a", "b"]))


def test_scaler_state_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3)) * [1, 5, 9] + [0, 3, -2]
    scaler = StandardScaler().fit(X)
    state = scaler.get_state()
    assert set(state) == {"mean", "scale", "n_samples_seen"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    path = tmp_path / "scaler.npz"
    np.savez(path, **state)
    with np.load(path, allow_pickle=False) as stored:
        restored = StandardScaler.from_state({key: stored[key] for key in stored.files})
    np.testing.assert_array_equal(restored.transform(X), scaler.transform(X))
    np.testing.assert_array_equal(restored.inverse_transform(X), scaler.inverse_transform(X))
    assert restored.n_features_in_ == 3 and restored.n_samples_seen_ == 40
    state["mean"][0] = 1e9  # get_state returns copies
    assert scaler.mean_[0] != 1e9


def test_scaler_from_state_checks():
    good = {"mean": [0.0, 1.0], "scale": [1.0, 2.0]}
    assert StandardScaler.from_state(good).n_samples_seen_ == 0
    with pytest.raises(ValueError, match=r"missing \['scale'\]"):
        StandardScaler.from_state({"mean": [0.0]})
    with pytest.raises(ValueError, match=r"unknown keys \['std'\]"):
        StandardScaler.from_state({**good, "std": [1.0, 2.0]})
    with pytest.raises(ValueError, match="same length"):
        StandardScaler.from_state({"mean": [0.0, 1.0], "scale": [1.0]})
    with pytest.raises(ValueError, match="> 0"):
        StandardScaler.from_state({"mean": [0.0], "scale": [0.0]})
    with pytest.raises(TypeError, match="mapping"):
        StandardScaler.from_state([1, 2])


# --------------------------------------------------------------------------------------
# The recipe in the module docstring, end to end
# --------------------------------------------------------------------------------------


def test_weather_recipe():
    weather = load_weather()
    features = weather[["tmax", "tmin", "rain"]]
    target = weather["tmax_tomorrow"]
    f_train, f_val, f_test, t_train, t_val, t_test = train_val_test_split(features, target)
    x_scaler = StandardScaler().fit(f_train)
    y_scaler = StandardScaler().fit(t_train)
    X_train, Y_train = sliding_windows(
        x_scaler.transform(f_train),
        7,
        targets=y_scaler.transform(t_train),
        horizon=0,
        many_to_many=False,
    )
    assert X_train.shape == (9456 - 6, 7, 3) and Y_train.shape == (9456 - 6, 1)
    # The first window covers training days 0..6 and predicts day 6's tmax_tomorrow = day 7's tmax.
    np.testing.assert_allclose(x_scaler.inverse_transform(X_train[0]), features[:7])
    assert y_scaler.inverse_transform(Y_train[0])[0] == pytest.approx(weather["tmax"][7])
    # Persistence baseline in original units on the test period is finite and sensible.
    X_test, Y_test = sliding_windows(
        x_scaler.transform(f_test),
        7,
        targets=y_scaler.transform(t_test),
        horizon=0,
        many_to_many=False,
    )
    persistence = x_scaler.inverse_transform(X_test[:, -1, :])[:, 0]
    actual = y_scaler.inverse_transform(Y_test)[:, 0]
    assert 5 < np.mean((persistence - actual) ** 2) < 100


# --------------------------------------------------------------------------------------
# MinMaxScaler
# --------------------------------------------------------------------------------------


def test_minmax_maps_the_training_range_onto_feature_range():
    train = np.array([[1.0, 10.0], [3.0, 30.0], [2.0, 20.0]])
    scaler = MinMaxScaler().fit(train)
    np.testing.assert_array_equal(scaler.data_min_, [1.0, 10.0])
    np.testing.assert_array_equal(scaler.data_max_, [3.0, 30.0])
    np.testing.assert_array_equal(scaler.transform(train), [[0, 0], [1, 1], [0.5, 0.5]])
    # Outside the training range nothing is clipped: a trend goes past 1.
    np.testing.assert_allclose(scaler.transform(np.array([[5.0, 0.0]])), [[2.0, -0.5]])
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(train)), train)
    wide = MinMaxScaler(feature_range=(-1, 1)).fit(train)
    np.testing.assert_allclose(wide.transform(train), [[-1, -1], [1, 1], [0, 0]])
    np.testing.assert_allclose(wide.transform(train), wide.scale_ * train + wide.min_)


def test_minmax_shapes_dtypes_nan_and_constant_features():
    windows = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    scaler = MinMaxScaler().fit(windows)
    out = scaler.transform(windows)
    assert out.shape == (4, 3, 2) and out.dtype == np.float32
    assert out.min() == 0 and out.max() == 1
    series = np.array([2.0, np.nan, 4.0])
    scaled = MinMaxScaler().fit_transform(series)
    assert scaled.shape == (3,) and np.isnan(scaled[1]) and list(scaled[[0, 2]]) == [0, 1]
    constant = MinMaxScaler(feature_range=(0.2, 0.8)).fit(np.full((5, 1), 7.0))
    np.testing.assert_allclose(constant.transform(np.full((2, 1), 7.0)), 0.2)
    np.testing.assert_allclose(constant.inverse_transform(np.full((2, 1), 0.2)), 7.0)


def test_minmax_state_round_trip():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 3)) * [1, 10, 100]
    scaler = MinMaxScaler(feature_range=(-2.0, 3.0)).fit(train)
    state = scaler.get_state()
    assert set(state) == {"data_min", "data_max", "feature_range", "n_samples_seen"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    copy = MinMaxScaler.from_state(state)
    test = rng.normal(size=(7, 3))
    np.testing.assert_array_equal(copy.transform(test), scaler.transform(test))
    assert copy.feature_range == (-2.0, 3.0) and copy.n_samples_seen_ == 50
    assert repr(copy) == ("MinMaxScaler(feature_range=(-2.0, 3.0), n_features_in_=3, "
                          "n_samples_seen_=50)")
    assert repr(MinMaxScaler()) == "MinMaxScaler()"
    with pytest.raises(ValueError, match=r"missing \['data_max'\]"):
        MinMaxScaler.from_state({"data_min": [0.0]})
    with pytest.raises(ValueError, match="data_max.* must be >= "):
        MinMaxScaler.from_state({"data_min": [1.0], "data_max": [0.0]})
    with pytest.raises(ValueError, match="same length"):
        MinMaxScaler.from_state({"data_min": [0.0, 1.0], "data_max": [1.0]})
    with pytest.raises(ValueError, match="unknown keys"):
        MinMaxScaler.from_state({"data_min": [0.0], "data_max": [1.0], "mean": [0.0]})


def test_minmax_errors_name_the_argument():
    with pytest.raises(NotFittedError, match="this MinMaxScaler is not fitted yet"):
        MinMaxScaler().transform(np.ones(3))
    with pytest.raises(ValueError, match="low < high"):
        MinMaxScaler(feature_range=(1, 0))
    with pytest.raises(ValueError, match="pair of numbers"):
        MinMaxScaler(feature_range=(0, 1, 2))
    with pytest.raises(TypeError, match=r"feature_range\[1\] must be a real number"):
        MinMaxScaler(feature_range=(0, "1"))
    with pytest.raises(ValueError, match="infinite"):
        MinMaxScaler().fit(np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match=r"X has shape \(5, 2\), but this scaler was fitted on 3"):
        MinMaxScaler().fit(np.ones((4, 3))).transform(np.ones((5, 2)))
    with pytest.raises(TypeError, match="real numbers"):
        MinMaxScaler().fit(np.array(["a", "b"]))
