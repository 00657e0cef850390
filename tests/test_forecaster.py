"""elman.Forecaster: transforms, closed-loop forecasts in original units, intervals,
backtests, the model file and input errors, on both backends."""

import numpy as np
import pytest

import elman
from elman import Forecaster
from elman._forecasting.transforms import TRANSFORMS, Transform, detect_season

# Small explicit settings for tests where the search itself is not the subject.
QUICK = dict(fast=True, epochs=20, n_jobs=1)


def trend_season(n=240, season=12, noise=0.1, seed=0):
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 20 + 0.08 * t + 2.0 * np.sin(2 * np.pi * t / season) + noise * rng.normal(size=n)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_invert_exactly(name):
    rng = np.random.default_rng(1)
    y = np.exp(rng.normal(size=60)) + 0.5
    transform = Transform(name, season=7)
    z = transform.forward(y)
    lag = transform.lag
    assert np.isnan(z[:lag]).all() and np.isfinite(z[lag:]).all()
    back = transform.inverse(z[lag:], y[:lag])
    np.testing.assert_allclose(back, y[lag:], rtol=1e-12)
    # Batched inversion: many origins at once, as forecasts from many origins.
    starts = np.array([lag, lag + 5, lag + 11])
    z_batch = np.stack([z[s:s + 10] for s in starts])
    before = np.stack([y[s - lag:s] for s in starts]) if lag else np.zeros((3, 0))
    expected = np.stack([y[s:s + 10] for s in starts])
    np.testing.assert_allclose(transform.inverse(z_batch, before), expected, rtol=1e-12)


def test_log_transform_refuses_nonpositive_target():
    with pytest.raises(ValueError, match="positive"):
        Forecaster(transform="log_diff", **QUICK).fit(np.linspace(-1, 5, 80))


def test_season_detected():
    assert detect_season(trend_season(240, 12)) == 12
    assert detect_season(np.random.default_rng(0).normal(size=300).cumsum()) is None
    # A season under a random walk and noise, not a multiple of it.
    rng = np.random.default_rng(0)
    t = np.arange(3000)
    y = 0.3 * rng.normal(size=3000).cumsum() + 5 * np.sin(2 * np.pi * t / 24) \
        + rng.normal(size=3000)
    assert detect_season(y) == 24


def test_closed_loop_beats_seasonal_naive_in_original_units(backend):
    y = trend_season(300)
    cut = 255
    forecaster = Forecaster(**QUICK).fit(y[:cut])
    assert forecaster.config_["season"] == 12
    steps = forecaster.predict(12)
    assert steps.shape == (12,)
    # Original units: the trend carries on; a year ahead is a year's rise (about
    # 0.96) above the last year seen in training.
    assert 0.5 < steps.mean() - y[cut - 12:cut].mean() < 1.5
    result = forecaster.backtest(y, start=cut)
    assert list(result.horizons) == list(range(1, 13))
    assert np.all(result.mse < result.seasonal_naive_mse)
    assert np.all(result.mse < result.persistence_mse)
    # predict() from the fit data equals the backtest's path from the cut.
    np.testing.assert_allclose(forecaster.predict(12, data=y[:cut]), steps, rtol=1e-12)


def test_one_step_rows_depend_only_on_earlier_rows(backend):
    y = trend_season(200)
    forecaster = Forecaster(**QUICK).fit(y[:170])
    point = forecaster.predict_one_step(y)
    assert point.shape == y.shape
    needed = int(np.isnan(point).sum())
    assert needed > 0 and np.isfinite(point[needed:]).all()
    changed = y.copy()
    changed[185:] += 100.0
    again = forecaster.predict_one_step(changed)
    np.testing.assert_array_equal(again[:186], point[:186])
    assert np.all(again[186:] != point[186:])
    # One-step prediction of row n equals predict(1) from the first n rows.
    np.testing.assert_allclose(forecaster.predict(1, data=y[:180]), point[180:181], rtol=1e-12)


def test_choices_ignore_rows_after_the_data():
    # Two series equal up to the cut and wildly different after it: fitting on the
    # rows before the cut gives the same choices, search and forecasts, and the
    # validation part is inside those rows.
    y = trend_season(200)
    other = y.copy()
    other[160:] = np.random.default_rng(5).normal(size=40) * 1e3
    a = Forecaster(**QUICK).fit(y[:160])
    b = Forecaster(**QUICK).fit(other[:160])
    assert a.config_ == b.config_
    assert a.search_ == [dict(s, seconds=s["seconds"]) for s in a.search_]
    assert [s["validation_mse"] for s in a.search_] == [s["validation_mse"] for s in b.search_]
    np.testing.assert_array_equal(a.predict(5), b.predict(5))
    assert a.config_["validation_rows"] < 160


def test_intervals_cover_about_the_nominal_rate(backend):
    rng = np.random.default_rng(3)
    n = 900
    y = np.zeros(n)
    noise = rng.normal(size=n)
    for t in range(1, n):
        y[t] = 0.7 * y[t - 1] + noise[t]
    cut = 700
    forecaster = Forecaster(**QUICK).fit(y[:cut])
    point, lower, upper = forecaster.predict_one_step(y, interval=0.9)
    test = slice(cut, n)
    covered = np.mean((y[test] >= lower[test]) & (y[test] <= upper[test]))
    assert 0.8 <= covered <= 0.97
    result = forecaster.backtest(y, start=cut, horizon=4, interval=0.9)
    assert np.all((result.coverage > 0.75) & (result.coverage < 0.99))
    p, lo, hi = forecaster.predict(6, interval=0.5)
    assert np.all(lo < p) and np.all(p < hi)
    _, lo9, hi9 = forecaster.predict(6, interval=0.9)
    assert np.all(hi9 - lo9 > hi - lo)


def test_log_intervals_scale_with_the_level(backend):
    t = np.arange(240)
    rng = np.random.default_rng(2)
    y = np.exp(0.01 * t + 0.3 * np.sin(2 * np.pi * t / 12) + 0.02 * rng.normal(size=240))
    forecaster = Forecaster(transform="log_seasonal_diff", season=12, **QUICK).fit(y)
    point, lower, upper = forecaster.predict(12, interval=0.9)
    ratio = upper / point
    np.testing.assert_allclose(ratio * lower / point, 1.0, rtol=1e-12)
    assert np.all(lower > 0)


def test_save_load_round_trip(backend, tmp_path):
    y = trend_season(220)
    forecaster = Forecaster(fast=False, epochs=5, n_jobs=1, ensemble=2, window=12,
                            hidden_size=4).fit(y)
    path = tmp_path / "forecaster.npz"
    forecaster.save(path, metadata={"source": "sales.csv", "last_date": "2020-12-01"})
    with pytest.raises(TypeError, match="metadata must be a dict"):
        forecaster.save(tmp_path / "other.npz", metadata=["x"])
    assert Forecaster.load(path).metadata_ == {"source": "sales.csv",
                                                "last_date": "2020-12-01"}
    for loaded in (Forecaster.load(path), elman.load(path)):
        assert isinstance(loaded, Forecaster)
        np.testing.assert_array_equal(loaded.predict(24), forecaster.predict(24))
        np.testing.assert_array_equal(loaded.predict_one_step(y), forecaster.predict_one_step(y))
        a, b = loaded.predict(3, interval=0.8), forecaster.predict(3, interval=0.8)
        for x1, x2 in zip(a, b):
            np.testing.assert_array_equal(x1, x2)
        assert loaded.config_ == forecaster.config_
        assert loaded.target_ == forecaster.target_
    loaded, optimizer = elman.load(path, with_optimizer=True)
    assert isinstance(loaded, Forecaster) and optimizer is None


def test_elman_load_still_reads_a_bare_rnn(tmp_path):
    model = elman.RNN(1, 3, 1, seed=0)
    path = tmp_path / "rnn.npz"
    model.save(path)
    loaded = elman.load(path)
    assert isinstance(loaded, elman.RNN)
    np.testing.assert_array_equal(loaded.get_weights()["Why"], model.get_weights()["Why"])
    with pytest.raises(ValueError, match="bare elman.RNN"):
        Forecaster.load(path)


def test_table_with_target_and_features(backend):
    rng = np.random.default_rng(4)
    n = 260
    driver = rng.normal(size=n)
    y = np.zeros(n)
    for t in range(1, n):
        y[t] = 0.5 * y[t - 1] + 2.0 * driver[t - 1] + 0.1 * rng.normal()
    table = np.column_stack([driver, y])
    with_driver = Forecaster(**QUICK).fit(table[:220], target=1, features=[0])
    alone = Forecaster(**QUICK).fit(table[:220], target=1)
    assert with_driver.target_ == 1 and with_driver.features_ == [0]
    a = with_driver.predict_one_step(table)[220:]
    b = alone.predict_one_step(table)[220:]
    assert np.mean((a - y[220:]) ** 2) < 0.5 * np.mean((b - y[220:]) ** 2)
    with pytest.raises(ValueError, match="steps=3.*extra input columns"):
        with_driver.predict(3)
    assert with_driver.predict(1).shape == (1,)


def test_pandas_frames(backend):
    pd = pytest.importorskip("pandas")
    y = trend_season(200)
    frame = pd.DataFrame({"year": np.arange(200) + 1800.0, "sales": y})
    forecaster = Forecaster(**QUICK).fit(frame, target="sales")
    assert forecaster.target_ == "sales" and forecaster.features_ == []
    from_array = Forecaster(**QUICK).fit(y)
    np.testing.assert_array_equal(forecaster.predict(4), from_array.predict(4))
    np.testing.assert_array_equal(forecaster.predict_one_step(frame),
                                  from_array.predict_one_step(y))
    series = Forecaster(**QUICK).fit(pd.Series(y, name="sales"))
    np.testing.assert_array_equal(series.predict(4), from_array.predict(4))


def test_search_records_candidates_and_chooses_on_validation():
    y = trend_season(180)
    forecaster = Forecaster(epochs=5, n_jobs=1, hidden_size=4).fit(y)
    stages = {entry["stage"] for entry in forecaster.search_}
    assert stages == {"linear", "rnn", "ensemble"}
    config = forecaster.config_
    linear = {e["transform"]: e["validation_mse"] for e in forecaster.search_
              if e["stage"] == "linear"}
    # The three transforms whose autoregressions did best on validation, best first.
    assert config["transforms"] == sorted(linear, key=linear.get)[:3]
    assert [part["transform"] for part in config["combination"]] == config["transforms"]
    assert config["transform"] == config["transforms"][0]
    for part in config["combination"]:
        ensemble = [e for e in forecaster.search_
                    if e["stage"] == "ensemble" and e["transform"] == part["transform"]]
        best = min(ensemble, key=lambda e: (e["validation_mse"], e["alpha"]))
        alone = next(e for e in ensemble if e["alpha"] == 0)
        # Each transform's best RNN weight, or 0 when the RNNs' gain is within noise.
        assert (part["alpha"], part["validation_mse"]) in {
            (best["alpha"], best["validation_mse"]), (0.0, alone["validation_mse"])}
        # Never worse than its linear autoregression on the validation part.
        assert part["validation_mse"] <= linear[part["transform"]]
    total = sum(len(part["members"]) for part in config["combination"])
    assert len(forecaster.history_) == total == 15
    assert forecaster.fit_seconds_ > 0 and forecaster.n_rows_ == 180


def test_the_forecast_is_the_mean_of_its_transforms(backend):
    y = trend_season(160)
    settings = dict(epochs=4, n_jobs=1, hidden_size=4, ensemble=2, seed=3)
    combined = Forecaster(**settings).fit(y)
    names = combined.config_["transforms"]
    assert len(names) == 3
    season = combined.config_["season"]
    singles = [Forecaster(transform=name, season=season, **settings).fit(y) for name in names]
    for single, part in zip(singles, combined.config_["combination"]):
        assert single.config_["alpha"] == part["alpha"]
    np.testing.assert_allclose(combined.predict(6),
                               np.mean([f.predict(6) for f in singles], axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        combined.predict_one_step(y)[-20:],
        np.mean([f.predict_one_step(y)[-20:] for f in singles], axis=0), rtol=1e-12)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(window=0), ValueError, "window must be >= 1"),
    (dict(transform="cube"), ValueError, "transform must be one of"),
    (dict(transform="seasonal_diff"), ValueError, "needs season="),
    (dict(interval=1.5), ValueError, r"interval must be a coverage level in \(0, 1\)"),
    (dict(interval="90%"), TypeError, "interval must be a coverage level"),
    (dict(lr=-1.0), ValueError, "lr must be > 0"),
    (dict(season=1), ValueError, "season must be >= 2"),
    (dict(fast="yes"), TypeError, "fast must be True or False"),
    (dict(n_jobs=0), ValueError, "n_jobs must be"),
])
def test_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        Forecaster(**kwargs)


def test_bad_data():
    y = trend_season(120)
    table = np.column_stack([y, y])
    with pytest.raises(ValueError, match="target is required for a table with 2 columns"):
        Forecaster(**QUICK).fit(table)
    with pytest.raises(ValueError, match="target=5 is out of range for data with 2 columns"):
        Forecaster(**QUICK).fit(table, target=5)
    with pytest.raises(TypeError, match="target='sales' is a column name"):
        Forecaster(**QUICK).fit(table, target="sales")
    with pytest.raises(ValueError, match="features must not include the target"):
        Forecaster(**QUICK).fit(table, target=0, features=[0])
    bad = y.copy()
    bad[50] = np.nan
    with pytest.raises(ValueError, match="data contains NaN or inf"):
        Forecaster(**QUICK).fit(bad)
    with pytest.raises(TypeError, match="data must be a 1-D series"):
        Forecaster(**QUICK).fit("1,2,3")
    with pytest.raises(ValueError, match=r"shape \(n,\) or \(n, columns\); got \(2, 3, 4\)"):
        Forecaster(**QUICK).fit(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="data has 6 rows"):
        Forecaster(**QUICK).fit(y[:6])
    with pytest.raises(ValueError, match="not fitted yet; call fit"):
        Forecaster().predict(3)
    fitted = Forecaster(**QUICK).fit(y)
    with pytest.raises(ValueError, match="steps must be >= 1; got 0"):
        fitted.predict(0)
    with pytest.raises(ValueError, match="data must have at least"):
        fitted.predict(2, data=y[:3])
    with pytest.raises(ValueError, match="start must be >= "):
        fitted.backtest(y, start=1)
    with pytest.raises(ValueError, match="must have the 1 columns given to fit"):
        fitted.predict_one_step(table)


def test_closed_loop_rule_is_rnn_forecast_on_the_last_window(backend):
    # With the linear part set to zero and no transform or scaling, the pipeline's
    # closed loop is exactly RNN.forecast warmed up on the last `window` rows.
    from elman._forecasting.pipeline import Pipeline

    model = elman.RNN(1, 6, 1, seed=3)
    window = 5
    pipeline = Pipeline(Transform("none"), 0.0, 1.0, np.zeros(0), np.zeros(0), 2,
                        np.zeros(2), 0.0, [(model, window)], alpha=1.0)
    y = np.sin(np.arange(40) / 3.0)
    paths = pipeline.paths(y, None, np.array([40, 30]), 7)
    for row, origin in enumerate((40, 30)):
        expected = model.forecast(y[origin - window:origin, None], 7)[:, 0]
        np.testing.assert_allclose(paths[row], expected, rtol=1e-12, atol=1e-12)


def test_backtest_agrees_with_one_step_and_the_baselines(backend):
    y = trend_season(260)
    start = 220
    forecaster = Forecaster(**QUICK).fit(y[:start])
    result = forecaster.backtest(y, start=start, horizon=3)
    one_step = forecaster.predict_one_step(y)[start:]
    np.testing.assert_allclose(result.mse[0], np.mean((one_step - y[start:]) ** 2), rtol=1e-12)
    np.testing.assert_allclose(result.persistence_mse[0],
                               np.mean((y[start:] - y[start - 1:-1]) ** 2), rtol=1e-12)
    np.testing.assert_allclose(result.seasonal_naive_mse[0],
                               np.mean((y[start:] - y[start - 12:-12]) ** 2), rtol=1e-12)
    # Horizon 3 is scored from every origin whose third row exists.
    assert list(result.count) == [40, 39, 38]
    paths = np.stack([forecaster.predict(3, data=y[:o]) for o in range(start, 258)])
    np.testing.assert_allclose(result.mse[2], np.mean((paths[:, 2] - y[start + 2:]) ** 2),
                               rtol=1e-12)
    assert "persist mse" in result.as_table().splitlines()[0]
