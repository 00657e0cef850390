"""``elman fit``: fit :class:`elman.Forecaster` on a CSV's first 85%, test on the rest.

The rows are split by time: the forecaster is fitted on the first 85% (it makes
every automatic choice on the last 20% of those, its validation part) and scored
on the last 15%, the test rows, which nothing fitted or chosen has seen. On the
test rows the report gives the one-step error beside the baselines of
:mod:`elman.cli._baselines`, the closed-loop error by horizon against seasonal
naive, and with ``--interval`` the intervals' coverage.

Alignment. With ``--horizon 1`` (the default when the target is an input) row r+1
is predicted from the rows up to r. With ``--horizon 0`` (the default when the
target is not an input) the target column is taken as aligned: its row r is
predicted from the inputs up to row r and the target up to row r-1, as
``tmax_tomorrow`` from today's weather. The forecaster predicts a row from the
rows before it, so for horizon 0 it is given the inputs one row early. With
``--horizon h`` above 1 the target must be the only input: the h-th step of the
closed-loop forecast from row r+1 predicts row r+h.
"""

import time

import numpy as np

from elman.cli import _baselines
from elman.cli._common import CLIError, Output, check_writable, seconds
from elman.cli._data import (
    all_features,
    check_names_present,
    load_table,
    reading_options,
    resolve_columns,
    test_start_row,
)
from elman.cli._parser import ALL_FEATURES, WEATHER_TARGET
from elman.cli._report import describe_forecast_run, report_forecast

# Metadata the command line adds to a Forecaster's model file (column names, alignment).
CLI_KEY = "elman_cli"
CLI_KEY_VERSION = 1
# Horizons shown in the closed-loop table (those up to the largest computed).
SHOWN_HORIZONS = (1, 2, 3, 6, 12, 24, 52)


def run_fit(args, started):
    if args.plot is not None:
        from elman.cli._plot import check_plot_path

        check_plot_path(args.plot)  # before training, so a bad --plot costs no time
    for option, path in (("--out", args.out), ("--plot", args.plot)):
        if path is not None:
            check_writable(option, path)

    target, features, columns = resolve_columns(args)
    options = reading_options(args)
    table = load_table(args.csv, columns, options, skip_text=features == ALL_FEATURES)
    notes = []
    if features == ALL_FEATURES:
        features, notes = all_features(table, target)
    check_names_present(table, [target], "target column")
    check_names_present(table, features, "feature column")
    horizon = args.horizon
    if horizon is None:
        horizon = 1 if target in features else 0
    elif horizon == 0 and target in features:
        raise CLIError(f"--horizon 0 with {target!r} among the inputs would show the model "
                       f"the very value it predicts; use --horizon 1 or leave {target!r} "
                       f"out of --features")
    weather = table.bundled and target == WEATHER_TARGET and horizon == 0

    single = [flag for flag, given in (("--layers", args.layers is not None),
                                       ("--many-to-one", args.many_to_one),
                                       ("--batch-size", args.batch_size is not None),
                                       ("--patience", args.patience is not None)) if given]
    if single:
        for flag, value in (("--transform", args.transform), ("--interval", args.interval),
                            ("--fast", args.fast or None)):
            if value is not None:
                raise CLIError(f"{flag} belongs to the forecaster, but {', '.join(single)} "
                               "selects a single RNN; drop one or the other")
        from elman.cli._single import run_single

        return run_single(args, started, table, features, target, horizon, weather, notes)
    return _run_forecaster(args, started, table, features, target, horizon, weather, notes)


def forecaster_columns(table, target, features, horizon):
    """(data (n, 1 + k), feature names): the target first, the other inputs after it.

    For horizon 0 the inputs are moved one row earlier (row r holds row r+1's
    inputs; the last row repeats its own), so that the forecaster, which predicts a
    row from the rows before it, sees the inputs up to the row it predicts.
    """
    y = table.column(target)
    others = [name for name in features if name != target]
    if not others:
        return y[:, None].copy(), others
    x = table.dataset[others]
    if horizon == 0:
        x = np.concatenate([x[1:], x[-1:]])
    return np.column_stack([y, x]), others


def _run_forecaster(args, started, table, features, target, horizon, weather, notes):
    import elman

    n = len(table)
    data, others = forecaster_columns(table, target, features, horizon)
    if horizon > 1 and others:
        raise CLIError(f"--horizon {horizon} with other inputs ({', '.join(others)}): their "
                       f"values between now and row r + {horizon} are unknown; predict "
                       f"{target} from itself alone (--features {target}) or use --horizon 1")
    test_start = test_start_row(table)
    if test_start < 30:
        raise CLIError(f"{table.source} has {n} rows: too few to fit on the first 85% and "
                       f"test on the last 15% (at least 36 rows)")
    forecaster = elman.Forecaster(
        window=args.window, hidden_size=args.hidden, lr=args.lr, epochs=args.epochs,
        transform=args.transform, interval=args.interval, fast=args.fast, seed=args.seed,
        verbose=0 if args.quiet else 1)

    out = Output()
    describe_forecast_run(out, table, features, target, horizon, weather, notes, test_start,
                          forecaster)
    fit_started = time.perf_counter()
    try:
        forecaster.fit(data[:test_start], target=0,
                       features=list(range(1, data.shape[1])) or None)
    except elman.TrainingDivergedError as exc:
        raise CLIError(f"{exc} (try a smaller --lr)", code=1) from None
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{table.source}: {exc}") from None
    fit_seconds = time.perf_counter() - fit_started

    results = evaluate_forecaster(forecaster, data, table, target, others, horizon, weather,
                                  test_start, args.interval)
    report_forecast(out, forecaster, results, table, weather, args, fit_seconds)
    if args.out is not None:
        save_forecaster(forecaster, args.out, table, target, others, horizon)
        out.write(f"saved the model to {args.out} (predict with: elman predict {args.out}"
                  f"{'' if args.csv is None else ' ' + args.csv})\n")
    if args.plot is not None:
        from elman.cli._plot import plot

        plot(args.plot, results, forecaster.history_, table, target, weather,
             _forecaster_gradient_flow(forecaster, data, test_start))
        out.write(f"saved the plot to {args.plot}\n")
    total = time.perf_counter() - started
    out.write(f"time: fit {seconds(fit_seconds)} (search, {len(forecaster.search_)} "
              f"candidates, and refit) on the {elman.BACKEND} backend; whole run "
              f"{seconds(total)}\n")
    out.flush()
    return 0


def _forecaster_gradient_flow(forecaster, data, test_start):
    """The gradient-flow panel of the first transform's final RNNs, on the windows of
    the validation part (the last rows before the test part)."""
    from elman._forecasting.search import residual_windows
    from elman.cli._plot import gradient_flow_panel

    pipeline = forecaster._pipeline.pipelines[0]
    y = data[:test_start, 0]
    features = data[:test_start, 1:] if data.shape[1] > 1 else None
    x = pipeline.inputs(y, features)
    rows = np.arange(test_start - forecaster.config_["validation_rows"], test_start)
    runs = []
    for k, (model, window) in enumerate(pipeline.members):
        X, Y = residual_windows(pipeline, x, rows, window)
        label = f"RNN {k + 1}" if len(pipeline.members) > 1 else ""
        runs.append((label, model, X, Y))
    return gradient_flow_panel(runs, "validation")


def _closed_loop_rows(forecaster, data, rows, horizon):
    """The prediction of each row in ``rows`` from the rows up to ``row - horizon``."""
    out = np.empty(len(rows))
    for i, row in enumerate(rows):
        out[i] = forecaster.predict(horizon, data=data[:row - horizon + 1])[-1]
    return out


def evaluate_forecaster(forecaster, data, table, target, others, horizon, weather, test_start,
                        level):
    """Test-row predictions of the forecaster and the baselines, in the target's units."""
    n = len(table)
    y = data[:, 0]
    rows = np.arange(test_start, n)
    actual = y[rows]
    ahead = max(horizon, 1)
    lower = upper = None
    if horizon <= 1:
        one_step = forecaster.predict_one_step(data, interval=level)
        if level is not None:
            one_step, lower, upper = one_step
            lower, upper = lower[rows], upper[rows]
        predicted = one_step[rows]
    else:
        predicted = _closed_loop_rows(forecaster, data, rows, horizon)

    # The baselines are fitted on the same rows as the forecaster; the ridge penalty is
    # chosen on the same validation part (the last rows of those).
    validation_rows = forecaster.config_["validation_rows"]
    train_end = test_start - validation_rows
    def known(predicted_rows):
        return predicted_rows - ahead

    first = ahead  # rows with at least one known value before them
    train_rows = np.arange(first, train_end)
    val_rows = np.arange(max(first, train_end), test_start)
    methods = [("elman Forecaster", predicted)]
    if others:
        inputs = ", ".join([target] + others)
        x_rows = (lambda r: r) if horizon == 0 else known
        label = (f"linear regression on today's {', '.join(others)}" if weather
                 else f"linear regression on the last row's {inputs}")
        x = np.column_stack([y, data[:, 1:]]) if horizon != 0 else data[:, 1:]
        # For horizon 0, data's inputs are already one row early: row r - 1 holds row r's.
        x_known = (lambda r: r - 1) if horizon == 0 else x_rows
        fit_rows = np.arange(max(1, ahead), test_start)
        methods.append((label, _baselines.linear_regression(
            x, y, x_known(fit_rows), fit_rows, x_known(rows))))
    # The baselines' season follows the calendar where there are dates (52 for weekly
    # data with a yearly cycle), else the forecaster's own choice.
    season = _baselines.guess_season(
        table.dates[:test_start] if table.dates is not None else None, y[:test_start])
    if season is None or table.dates is None:
        season = forecaster.config_.get("season") or season
    ridge = None
    if len(val_rows):
        ridge = _baselines.ridge_autoregression(
            y, known(rows), _baselines.ridge_lag_candidates(season, len(train_rows)),
            known(train_rows), train_rows, known(val_rows), val_rows)
    persistence_label = _baselines.append_naive_methods(
        methods, ridge, y, rows, ahead, season, known(rows), target, weather)

    scores = {}
    for label, values in methods:
        error = values - actual
        scores[label] = {"prediction": values, "mse": float(np.mean(error ** 2)),
                         "mae": float(np.mean(np.abs(error)))}
    results = {"rows": rows, "actual": actual, "methods": scores,
               "labels": tuple(label for label, _ in methods),
               "persistence_label": persistence_label, "season": season,
               "train_low": float(y[:test_start].min()),
               "train_high": float(y[:test_start].max()),
               "train_windows": test_start, "interval": level, "horizon": horizon,
               "lower": lower, "upper": upper, "backtest": None}
    if level is not None and lower is not None:
        results["coverage"] = float(np.mean((actual >= lower) & (actual <= upper)))
    if not others:
        # Up to the season (or 12 steps), as far as the test rows reach.
        reach = min(season if season and 1 < season <= 60 else 12, n - test_start)
        backtest = forecaster.backtest(data, start=test_start, horizon=reach, interval=level)
        results["backtest"] = backtest
        results["closed_loop_seasonal_naive"] = _seasonal_naive_by_horizon(
            y, test_start, reach, season) if season and season > 1 else None
    return results


def _seasonal_naive_by_horizon(y, start, horizons, season):
    """MSE of seasonal naive at horizons 1..H, over the origins start..n-1 that reach."""
    n = len(y)
    out = np.empty(horizons)
    for h in range(1, horizons + 1):
        rows = np.arange(start + h - 1, n)  # from origin o = row - h + 1, rows < o known
        back = season * int(np.ceil(h / season))
        out[h - 1] = np.mean((y[rows - back] - y[rows]) ** 2)
    return out


def save_forecaster(forecaster, path, table, target, others, horizon):
    """Save the forecaster with the column names and alignment `elman predict` needs."""
    metadata = {CLI_KEY: {
        "version": CLI_KEY_VERSION,
        "target": target,
        "features": list(others),
        "horizon": int(horizon),
        "source": table.source if not table.bundled else "bundled weather data",
    }}
    try:
        forecaster.save(path, metadata=metadata)
    except OSError as exc:
        raise CLIError(f"--out {path}: cannot write it ({exc.strerror or exc})") from None
