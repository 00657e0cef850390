"""Forecast quality of elman.Forecaster's defaults beside classical baselines.

Each series is split chronologically: the last 15% of its rows is the test part,
which nothing below sees when fitting or choosing (every model is fitted on the
first 85%; the Forecaster makes its own choices on the end of those rows). On the
test rows the table gives one-step mean squared errors (each test row predicted
from the actual rows before it) of

- persistence: the last value;
- seasonal naive: the value one season earlier (the season a user would name:
  365 days, 52 weeks, 12 months, 4 quarters, 11 years for sunspots; persistence
  for a yearly series without one);
- ridge AR: ridge regression on the last p values (levels), p and the penalty
  chosen on the last 20% of the training rows, then refitted on all of them;
- ARIMA (statsmodels): order (p, d, q), p <= 3, d <= 1, q <= 2, chosen by AIC
  on the training rows, its parameters fixed, then filtered over the whole series;
- elman: ``elman.Forecaster()`` with its defaults.

Then the closed-loop errors of the Forecaster at horizons 1..season (at most 52)
or 12 from every test origin, beside seasonal naive, and the empirical coverage of
its 90% intervals on the test part.

Two groups: the development panel (weather, CO2, sunspots, synthetic), on which
the defaults were developed, and check series, run once as a user would, without
tuning anything on them.

    python bench/bench_forecast.py [--threads 2] [--panel | --check]
    python bench/bench_forecast.py --threads 2 --timing   # fit times on long series

Needs statsmodels (``pip install "elman[bench]"``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _common import pin_threads  # noqa: E402

THREADS = pin_threads(default=1)

import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import elman  # noqa: E402
from elman.preprocessing import train_val_test_split  # noqa: E402

SPLIT = (0.7, 0.15, 0.15)  # as elman.cli's: the last 15% is the test part
INTERVAL = 0.9


# ----------------------------------------------------------------------- data
def weather():
    data = elman.datasets.load_weather()
    return data["tmax"], 365


def co2_weekly():
    import statsmodels.api as sm

    frame = sm.datasets.co2.load_pandas().data
    series = frame["co2"].resample("W").mean().interpolate().ffill().bfill()
    return series.to_numpy(), 52


def sunspots():
    import statsmodels.api as sm

    return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(), 11


def synthetic():
    rng = np.random.default_rng(12)
    t = np.arange(480)
    noise = np.zeros(len(t))
    shocks = rng.normal(scale=0.6, size=len(t))
    for i in range(1, len(t)):
        noise[i] = 0.5 * noise[i - 1] + shocks[i]
    return 50 + 0.1 * t + 5 * np.sin(2 * np.pi * t / 12) + 2 * np.cos(2 * np.pi * t / 6) \
        + noise, 12


def nile():
    import statsmodels.api as sm

    return sm.datasets.nile.load_pandas().data["volume"].to_numpy(), 1


def macro(column):
    def load():
        import statsmodels.api as sm

        return sm.datasets.macrodata.load_pandas().data[column].to_numpy(), 4
    load.__name__ = f"macro_{column}"
    return load


def elnino():
    import statsmodels.api as sm

    frame = sm.datasets.elnino.load_pandas().data
    return frame.drop(columns="YEAR").to_numpy().ravel(), 12


def interest_rate():
    import statsmodels.api as sm

    return sm.datasets.interest_inflation.load_pandas().data["R"].to_numpy(), 4


PANEL = {"weather tmax (daily)": weather, "CO2 (weekly)": co2_weekly,
         "sunspots (yearly)": sunspots, "synthetic trend+season (monthly)": synthetic}
CHECK = {"nile (yearly)": nile, "unemp (quarterly)": macro("unemp"),
         "infl (quarterly)": macro("infl"), "realgdp (quarterly)": macro("realgdp"),
         "cpi (quarterly)": macro("cpi"), "tbilrate (quarterly)": macro("tbilrate"),
         "realinv (quarterly)": macro("realinv"), "elnino (monthly)": elnino,
         "interest R (quarterly)": interest_rate}


# ------------------------------------------------------------------ baselines
def lag_matrix(y, rows, p):
    return np.stack([y[rows - k] for k in range(1, p + 1)], axis=1)


def ridge_fit(y, rows, p, penalty):
    A = lag_matrix(y, rows, p)
    mean_a, mean_b = A.mean(axis=0), y[rows].mean()
    gram = (A - mean_a).T @ (A - mean_a)
    gram[np.diag_indices_from(gram)] += penalty * len(rows) * np.var(y[rows])
    coef = np.linalg.solve(gram, (A - mean_a).T @ (y[rows] - mean_b))
    return coef, mean_b - mean_a @ coef


def ridge_ar(y, cut, season):
    """One-step ridge AR predictions for rows >= cut; p and penalty chosen on the
    last 20% of the training rows."""
    val_start = cut - max(5, int(round(0.2 * cut)))
    lags = sorted({p for p in (1, 2, 3, 4, 6, 8, 12, 16, 24, season, season + 1, 2 * season)
                   if 1 <= p <= val_start // 3})
    best = None
    for p in lags:
        for penalty in (1e-6, 1e-3, 1e-1):
            coef, intercept = ridge_fit(y, np.arange(p, val_start), p, penalty)
            rows = np.arange(val_start, cut)
            score = np.mean((lag_matrix(y, rows, p) @ coef + intercept - y[rows]) ** 2)
            if best is None or score < best[0]:
                best = (score, p, penalty)
    _, p, penalty = best
    coef, intercept = ridge_fit(y, np.arange(p, cut), p, penalty)
    rows = np.arange(cut, len(y))
    return lag_matrix(y, rows, p) @ coef + intercept, f"p={p}"


def arima(y, cut):
    """One-step ARIMA predictions for rows >= cut (order by AIC on rows < cut)."""
    from statsmodels.tsa.arima.model import ARIMA

    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in (0, 1):
            for p in range(4):
                for q in range(3):
                    trend = "c" if d == 0 else "t"
                    try:
                        result = ARIMA(y[:cut], order=(p, d, q), trend=trend).fit()
                    except Exception:  # noqa: BLE001 - an order that does not fit is skipped
                        continue
                    if np.isfinite(result.aic) and (best is None or result.aic < best[0]):
                        best = (result.aic, (p, d, q), result)
        _, order, result = best
        full = result.apply(y)
        predicted = full.predict()
    return np.asarray(predicted)[cut:], f"{order}"


# ----------------------------------------------------------------------- runs
def run(name, load, out):
    y, season = load()
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    # The command line's split, so that this table is what `elman fit` reports.
    train, validation, _ = train_val_test_split(np.arange(n), fractions=SPLIT)
    cut = len(train) + len(validation)
    test = y[cut:]

    def error(predicted):
        return float(np.mean((np.asarray(predicted) - test) ** 2))

    persistence = error(y[cut - 1:-1])
    seasonal = error(y[cut - season:n - season])
    ridge_pred, ridge_info = ridge_ar(y, cut, season)
    tick = time.perf_counter()
    arima_pred, arima_info = arima(y, cut)
    arima_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    forecaster = elman.Forecaster(n_jobs=THREADS if THREADS > 1 else 1).fit(y[:cut])
    seconds = time.perf_counter() - tick
    point, lower, upper = forecaster.predict_one_step(y, interval=INTERVAL)
    ours = error(point[cut:])
    covered = float(np.mean((test >= lower[cut:]) & (test <= upper[cut:])))
    horizon = min(season, 52) if season > 1 else 12
    backtest = forecaster.backtest(y, start=cut, horizon=horizon, interval=INTERVAL)
    ridge, arima_mse = error(ridge_pred), error(arima_pred)
    best_classical = min(ridge, arima_mse)
    row = {"name": name, "n": n, "season": season, "persistence": persistence,
           "seasonal": seasonal, "ridge": ridge, "arima": arima_mse, "elman": ours,
           "ratio_ridge": ours / ridge, "ratio": ours / best_classical, "seconds": seconds,
           "coverage": covered, "backtest": backtest, "config": forecaster.config_,
           "ridge_info": ridge_info, "arima_info": arima_info,
           "arima_seconds": arima_seconds, "search": forecaster.search_}
    config = forecaster.config_
    out(f"{name}: n={n} test={n - cut} | persistence {persistence:.4g} | seasonal naive "
        f"{seasonal:.4g} | ridge AR {ridge:.4g} ({ridge_info}) | ARIMA {arima_mse:.4g} "
        f"{arima_info} ({arima_seconds:.1f} s) | elman {ours:.4g} ({seconds:.1f} s)")
    out(f"    chose: season {config['season'] or 'none'}; {len(forecaster.search_)} candidates; "
        f"combined validation MSE {config['validation_mse']:.4g}")
    for part in config["combination"]:
        out(f"      {part['transform']}: linear lags {part['lags']}, RNN weight "
            f"{part['alpha']}, {len(part['members'])} RNNs (window/hidden/lr/epochs: "
            + ", ".join(f"{m['window']}/{m['hidden_size']}/{m['lr']}/{m['epochs']}"
                        for m in part["members"])
            + f"); validation MSE {part['validation_mse']:.4g} vs linear "
            f"{part['linear_validation_mse']:.4g}")
    out(f"    closed loop h=1..{horizon}: mean MSE {np.mean(backtest.mse):.4g} vs seasonal "
        f"naive {np.mean(backtest.seasonal_naive_mse):.4g}, persistence "
        f"{np.mean(backtest.persistence_mse):.4g}; 90% interval coverage one-step "
        f"{covered:.3f}, over horizons {np.mean(backtest.coverage):.3f} "
        f"(h=1 {backtest.coverage[0]:.3f}, h={horizon} {backtest.coverage[-1]:.3f})")
    return row


def table(rows, out, title):
    out("")
    out(title)
    out("| series | n | persistence | seasonal naive | ridge AR | ARIMA | elman | "
        f"elman / ridge | elman / best(ridge, ARIMA) | fit s | 90% coverage |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        out(f"| {r['name']} | {r['n']} | {r['persistence']:.4g} | {r['seasonal']:.4g} | "
            f"{r['ridge']:.4g} | {r['arima']:.4g} | {r['elman']:.4g} | "
            f"{r['ratio_ridge']:.3f} | {r['ratio']:.3f} | {r['seconds']:.1f} | "
            f"{r['coverage']:.3f} |")
    ratios = np.array([r["ratio"] for r in rows])
    beats = [r["elman"] < r["persistence"] and r["elman"] < r["seasonal"] for r in rows]
    out(f"beats persistence and seasonal naive: {sum(beats)}/{len(rows)}; within 5% of "
        f"ridge AR or better: {sum(r['ratio_ridge'] <= 1.05 for r in rows)}/{len(rows)}; "
        f"ratio to best(ridge, ARIMA): within 1.5x {int(np.sum(ratios <= 1.5))}/{len(rows)}, "
        f"within 5% {int(np.sum(ratios <= 1.05))}/{len(rows)}, geometric mean "
        f"{math.exp(np.mean(np.log(ratios))):.3f}; slowest fit "
        f"{max(r['seconds'] for r in rows):.1f} s")
    out("")
    out("closed-loop MSE by horizon (elman / seasonal naive):")
    for r in rows:
        b = r["backtest"]
        picks = sorted({1, 2, 3, 6, 12, len(b.horizons)} & set(range(1, len(b.horizons) + 1)))
        out(f"  {r['name']}: " + ", ".join(
            f"h{h} {b.mse[h - 1]:.4g}/{b.seasonal_naive_mse[h - 1]:.4g}" for h in picks))


def timing(out):
    """Wall time of a default fit on long series (the 60 s budget is for ~10,000 rows)."""
    rng = np.random.default_rng(0)
    t = np.arange(10000)
    walk = 0.3 * rng.normal(size=10000).cumsum() + 5 * np.sin(2 * np.pi * t / 24) \
        + rng.normal(size=10000)
    tmax, _ = weather()
    for name, y in (("random walk + season 24, 10000 rows", walk),
                    ("weather tmax training part, 11483 rows", tmax[:11483]),
                    ("sunspots training part, 263 rows", sunspots()[0][:263])):
        tick = time.perf_counter()
        forecaster = elman.Forecaster(n_jobs=THREADS).fit(y)
        config = forecaster.config_
        out(f"{elman.BACKEND}: {name}: fit {time.perf_counter() - tick:.1f} s (transform "
            f"{config['transform']}, season {config['season']}, alpha {config['alpha']})")


def main():
    chosen = sys.argv[1:]
    if "--timing" in chosen:
        timing(print)
        return []
    groups = []
    if "--check" not in chosen:
        groups.append(("Development panel (one-step test MSE, last 15% of each series)", PANEL))
    if "--panel" not in chosen:
        groups.append(("Check series (run once, not tuned on)", CHECK))
    lines = []

    def out(text):
        print(text, flush=True)
        lines.append(text)

    out(f"elman {elman.__version__}, backend {elman.BACKEND}, {THREADS} thread(s)")
    for title, series in groups:
        rows = [run(name, load, out) for name, load in series.items()]
        table(rows, out, title)
    return lines


if __name__ == "__main__":
    main()
