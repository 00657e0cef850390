"""Prediction intervals of elman.Forecaster on the test part: residuals vs gaussian vs auto.

For each series (the development panel of ``bench_forecast.py`` and the two short
quarterly series whose residual intervals cover least, infl and cpi), split as
there (the last 15% is the test part, never seen by fit), two forecasters are
fitted on the first 85%:

- ``Forecaster()``: RNNs on ``mse``, intervals from the calibrated residuals (the
  default);
- ``Forecaster(intervals="auto")``: RNNs on ``gaussian_nll``; its intervals are
  measured three ways: from its calibrated residuals, from its Gaussian head
  (``"gaussian"``) and as its validation-only choice (``"auto"``).

From every test origin the closed loop forecasts horizons 1..season (at most 52)
or 12; for each level the table gives the coverage and mean width over every
(origin, horizon) whose row exists, and the mean interval score (width plus
``2 / (1 - level)`` times any miss; lower is better). Widths are in the units of
the series. The last column gives the closed-loop MSE (mean over the horizons) of
the two fitted models: the Gaussian head's model has other point forecasts, as its
RNNs train on another loss.

    python bench/bench_intervals.py [--threads 1] [--levels 0.8,0.9] [--series co2,infl]

Needs statsmodels (``pip install "elman[bench]"``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
# bench_forecast pins the BLAS threads (--threads) before NumPy is imported.
from bench_forecast import CHECK, PANEL, SPLIT, THREADS  # noqa: E402

import time  # noqa: E402

import numpy as np  # noqa: E402

import elman  # noqa: E402
from elman.preprocessing import train_val_test_split  # noqa: E402

SERIES = {**PANEL, "infl (quarterly)": CHECK["infl (quarterly)"],
          "cpi (quarterly)": CHECK["cpi (quarterly)"]}


def measure(forecaster, y, cut, horizon, level, method):
    """(coverage, mean width, mean interval score) on the test part's closed loop."""
    chosen = forecaster.intervals_
    forecaster.intervals_ = method     # measure one method of the same fitted model
    try:
        result = forecaster.backtest(y, start=cut, horizon=horizon, interval=level)
    finally:
        forecaster.intervals_ = chosen
    return result.coverage.mean(), np.nanmean(result.width), np.nanmean(result.interval_score)


def main():
    args = sys.argv[1:]
    levels = [0.8, 0.9]
    if "--levels" in args:
        levels = [float(v) for v in args[args.index("--levels") + 1].split(",")]
    names = list(SERIES)
    if "--series" in args:
        wanted = args[args.index("--series") + 1].lower().split(",")
        names = [name for name in names if any(name.lower().startswith(w) for w in wanted)]
    print(f"elman {elman.__version__}, backend {elman.BACKEND}, {THREADS} thread(s)")
    rows = []
    for name in names:
        y, season = SERIES[name]()
        y = np.asarray(y, dtype=np.float64)
        train, validation, _ = train_val_test_split(np.arange(len(y)), fractions=SPLIT)
        cut = len(train) + len(validation)
        horizon = min(season, 52) if season > 1 else 12
        tick = time.perf_counter()
        default = elman.Forecaster(n_jobs=THREADS).fit(y[:cut])
        seconds_default = time.perf_counter() - tick
        tick = time.perf_counter()
        auto = elman.Forecaster(intervals="auto", interval=0.9, n_jobs=THREADS).fit(y[:cut])
        seconds_auto = time.perf_counter() - tick
        print(f"{name}: n={len(y)}, test {len(y) - cut} rows, h=1..{horizon}; fit "
              f"{seconds_default:.1f} s (mse) / {seconds_auto:.1f} s (gaussian_nll); auto "
              f"chose {auto.intervals_} (validation scores {auto.config_['interval_scores']})",
              flush=True)
        for level in levels:
            cells = [measure(default, y, cut, horizon, level, "residuals"),
                     measure(auto, y, cut, horizon, level, "residuals"),
                     measure(auto, y, cut, horizon, level, "gaussian"),
                     measure(auto, y, cut, horizon, level, auto.intervals_)]
            mse = [np.mean(f.backtest(y, start=cut, horizon=horizon).mse)
                   for f in (default, auto)]
            rows.append((name, level, auto.intervals_, cells, mse))
    print()
    print("| series | level | auto chose | default: residuals (mse) | gaussian_nll model: "
          "residuals | gaussian | auto | closed-loop MSE mse / gaussian_nll |")
    print("|---|---|---|---|---|---|---|---|")
    for name, level, chose, cells, mse in rows:
        print(f"| {name} | {level} | {chose} | " + " | ".join(
            f"cov {c:.3f}, width {w:.4g}, score {s:.4g}" for c, w, s in cells)
            + f" | {mse[0]:.4g} / {mse[1]:.4g} |")


if __name__ == "__main__":
    main()
