"""Forecaster(intervals=...): residual, Gaussian and automatically chosen prediction
intervals, on both backends."""

import numpy as np
import pytest

import elman
from elman import Forecaster
from elman._forecasting import intervals as intervals_module

QUICK = dict(fast=True, epochs=20, n_jobs=1)


def phase_noise(n=1200, seed=0):
    """A season of 12 whose noise sd is 0.3 in one half of the cycle and 1.5 in the other.

    Returns the series and the true noise sd of every row.
    """
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    sd = np.where(np.sin(2 * np.pi * t / 12) > 0, 1.5, 0.3)
    return 10 + 3 * np.sin(2 * np.pi * t / 12) + sd * rng.normal(size=n), sd


def test_default_is_residual_intervals_on_mse(backend):
    y, _ = phase_noise(300)
    forecaster = Forecaster(**QUICK).fit(y)
    assert forecaster.intervals == "residuals" and forecaster.intervals_ == "residuals"
    assert forecaster.config_["intervals"] == "residuals"
    members = [m for p in forecaster._pipeline.pipelines for m, _ in p.members]
    assert members and all(m.loss == "mse" for m in members)
    # Residual intervals: the same half-width from every origin (no log transform here).
    point, lower, upper = forecaster.predict_one_step(y, interval=0.8)
    rows = np.isfinite(point)
    widths = (upper - lower)[rows]
    np.testing.assert_allclose(widths, widths[0], rtol=1e-12)
    assert "intervals" not in repr(forecaster)


def test_the_interval_method_changes_only_the_intervals(backend):
    y, _ = phase_noise(400)
    residual = Forecaster(loss="gaussian_nll", transform="none", season=12, **QUICK).fit(y)
    gaussian = Forecaster(intervals="gaussian", transform="none", season=12, **QUICK).fit(y)
    assert "intervals='gaussian'" in repr(gaussian)
    assert gaussian.intervals_ == "gaussian"
    members = [m for p in gaussian._pipeline.pipelines for m, _ in p.members]
    assert all(m.loss == "gaussian_nll" for m in members)
    np.testing.assert_array_equal(residual.predict(6), gaussian.predict(6))
    a, b = residual.predict(6, interval=0.8), gaussian.predict(6, interval=0.8)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[2] - a[1], b[2] - b[1])
    start = len(y) - 40
    ra = residual.backtest(y, start=start, horizon=3, interval=0.8)
    rb = gaussian.backtest(y, start=start, horizon=3, interval=0.8)
    np.testing.assert_array_equal(ra.mse, rb.mse)


def test_gaussian_half_widths_are_the_predicted_spread_times_one_quantile(backend):
    y, _ = phase_noise(400)
    forecaster = Forecaster(intervals="gaussian", transform="none", season=12,
                            **QUICK).fit(y)
    origins = np.arange(len(y) - 60, len(y))
    paths, spread = forecaster._pipeline.paths(y, None, origins, 3, return_sd=True)
    assert spread.shape == (60, 3) and np.all(spread > 0)
    result = forecaster.backtest(y, start=len(y) - 60, horizon=3, interval=0.8)
    point, lower, upper = forecaster.predict_one_step(y, interval=0.8)
    half = (upper - lower)[origins] / 2
    ratio = half / spread[:, 0]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    # The spreads differ between origins, so the widths do too.
    assert half.max() > 1.5 * half.min()
    assert result.width is not None and np.all(result.width > 0)


def test_gaussian_intervals_cover_where_the_noise_is_large_and_small(backend):
    y, sd = phase_noise(1200, seed=1)
    cut = 1000
    gaussian = Forecaster(intervals="gaussian", transform="none", season=12, window=24,
                          **QUICK).fit(y[:cut])
    residual = Forecaster(transform="none", season=12, window=24, **QUICK).fit(y[:cut])
    test = np.arange(cut, len(y))
    loud, quiet = test[sd[test] > 1], test[sd[test] < 1]

    def coverage(forecaster, rows):
        _, lower, upper = forecaster.predict_one_step(y, interval=0.8)
        return np.mean((y[rows] >= lower[rows]) & (y[rows] <= upper[rows]))

    # The Gaussian head follows the noise: near the nominal 0.8 in both halves of the
    # cycle. A constant width cannot: it over-covers the quiet half and misses in the
    # loud one.
    assert 0.7 <= coverage(gaussian, test) <= 0.9
    assert 0.65 <= coverage(gaussian, loud) <= 0.95
    assert 0.65 <= coverage(gaussian, quiet) <= 0.97
    assert coverage(residual, quiet) > 0.97
    assert coverage(residual, loud) < 0.75
    _, lower, upper = gaussian.predict_one_step(y, interval=0.8)
    assert np.mean((upper - lower)[loud]) > 2.0 * np.mean((upper - lower)[quiet])


def test_choose_prefers_the_spread_only_where_it_informs():
    rng = np.random.default_rng(4)
    scale = np.exp(rng.normal(size=(200, 3)))
    informative = scale * rng.normal(size=(200, 3))
    assert intervals_module.choose(informative, scale, 0.9)[0] == "gaussian"
    unrelated = rng.normal(size=(200, 3))
    choice, scores = intervals_module.choose(unrelated, scale, 0.9)
    assert choice == "residuals" and scores["residuals"] < scores["gaussian"]
    # Too few origins to split: residuals, without scores.
    assert intervals_module.choose(unrelated[:3], scale[:3], 0.9) == (
        "residuals", {"residuals": None, "gaussian": None})


def test_auto_chooses_on_the_validation_part_only(backend, monkeypatch):
    y, _ = phase_noise(500)
    cut = 425
    seen = []
    original = intervals_module.choose

    def spy(errors, scale, level):
        seen.append((errors.copy(), scale.copy(), level))
        return original(errors, scale, level)

    monkeypatch.setattr(intervals_module, "choose", spy)
    forecaster = Forecaster(intervals="auto", transform="none", season=12,
                            **QUICK).fit(y[:cut])
    (errors, scale, level), = seen
    assert level == 0.9          # interval=None: compared at 0.9
    # One row of errors per origin inside the validation part (the last rows given to
    # fit), the last origin being the last row given: its longer horizons lie past the
    # data and are missing, not read from anywhere.
    validation = forecaster.config_["validation_rows"]
    assert 0 < errors.shape[0] <= validation
    assert np.all(np.isfinite(errors[:, 0])) and np.isnan(errors[-1, 1:]).all()
    assert np.isfinite(errors[-2, 1]) and np.isnan(errors[-2, 2:]).all()
    assert forecaster.intervals_ == original(errors, scale, 0.9)[0]
    assert forecaster.config_["interval_scores"] == original(errors, scale, 0.9)[1]
    # At interval=0.8 the comparison is made at 0.8.
    seen.clear()
    monkeypatch.setattr(intervals_module, "choose", spy)
    Forecaster(intervals="auto", interval=0.8, transform="none", season=12,
               **QUICK).fit(y[:cut])
    assert seen[0][2] == 0.8


def test_gaussian_intervals_after_differencing_and_logs(backend):
    t = np.arange(300)
    rng = np.random.default_rng(5)
    y = np.exp(0.005 * t + 0.2 * np.sin(2 * np.pi * t / 12)
               + np.cumsum(0.02 * rng.normal(size=300)))
    forecaster = Forecaster(intervals="gaussian", transform="log_diff", season=12,
                            **QUICK).fit(y)
    point, lower, upper = forecaster.predict(24, interval=0.9)
    assert np.all(lower > 0) and np.all(lower < point) and np.all(point < upper)
    np.testing.assert_allclose((upper / point) * (lower / point), 1.0, rtol=1e-12)
    # Differencing sums the predicted variances: the log width grows with the horizon.
    log_width = np.log(upper / lower)
    assert log_width[-1] > log_width[0]
    _, spread = forecaster._pipeline.paths(y, None, np.array([len(y)]), 24, return_sd=True)
    assert np.all(np.diff(spread[0]) > 0)
    # Past the calibrated horizons the standardized quantile is carried on unchanged:
    # the spread alone makes the interval grow, not a second sqrt(h) on top of it.
    calibrated = forecaster.config_["horizon_calibrated"]
    assert calibrated < 24
    ratio = (log_width / 2 / spread[0])[calibrated:]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(intervals="normal"), ValueError,
     r"intervals must be one of \('residuals', 'gaussian', 'auto'\); got 'normal'"),
    (dict(intervals=None), ValueError, "intervals must be one of"),
    (dict(intervals="gaussian", loss="mae"), ValueError,
     r"intervals='gaussian' needs RNNs that predict a variance: loss='gaussian_nll' or "
     r"None; got loss='mae'"),
    (dict(intervals="auto", loss="mse"), ValueError, "intervals='auto' needs RNNs"),
])
def test_bad_interval_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        Forecaster(**kwargs)


def test_spread_needs_a_gaussian_head(backend):
    y, _ = phase_noise(200)
    forecaster = Forecaster(**QUICK).fit(y)
    with pytest.raises(ValueError, match="no Gaussian head"):
        forecaster._pipeline.pipelines[0].paths(y, None, np.array([len(y)]), 2,
                                                return_sd=True)


@pytest.mark.parametrize("mode", ["gaussian", "auto"])
def test_file_round_trip_keeps_the_interval_method(backend, tmp_path, mode):
    y, _ = phase_noise(300)
    forecaster = Forecaster(intervals=mode, **QUICK).fit(y)
    path = tmp_path / "forecaster.npz"
    forecaster.save(path)
    loaded = elman.load(path)
    assert loaded.intervals == mode and loaded.intervals_ == forecaster.intervals_
    assert loaded.config_ == forecaster.config_
    for a, b in zip(loaded.predict(12, interval=0.8), forecaster.predict(12, interval=0.8)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(loaded.predict_one_step(y, interval=0.9),
                    forecaster.predict_one_step(y, interval=0.9)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["residuals", "gaussian"])
def test_backtest_width_and_interval_score_match_the_one_step_intervals(backend, mode):
    y, _ = phase_noise(300)
    cut = 250
    forecaster = Forecaster(intervals=mode, **QUICK).fit(y[:cut])
    result = forecaster.backtest(y, start=cut, horizon=1, interval=0.8)
    _, lower, upper = forecaster.predict_one_step(y, interval=0.8)
    rows = slice(cut, len(y))
    lo, hi, actual = lower[rows], upper[rows], y[rows]
    miss = np.maximum(lo - actual, 0) + np.maximum(actual - hi, 0)
    np.testing.assert_allclose(result.width[0], np.mean(hi - lo), rtol=1e-12)
    np.testing.assert_allclose(result.interval_score[0], np.mean(hi - lo + 10 * miss),
                               rtol=1e-12)
    np.testing.assert_allclose(result.coverage[0], np.mean(miss == 0), rtol=1e-12)
