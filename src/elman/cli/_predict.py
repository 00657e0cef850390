"""``elman predict``: one prediction per window of a CSV, and closed-loop forecasts."""

import sys

import numpy as np

from elman.cli._common import CLIError, Output, opening
from elman.cli._data import check_names_present, last_step, load_table, reading_options
from elman.cli._single import CLI_FORMAT, CLI_FORMAT_VERSION
from elman.cli._writer import write_predictions


def read_model_file(path):
    """The model file's contents (elman.model_file.LoadedModel); CLIError when unreadable."""
    from elman.model_file import ModelFileError, load_with_metadata

    try:
        with opening(path, "a model file"):
            return load_with_metadata(path)
    except ModelFileError as exc:
        raise CLIError(str(exc)) from None


def load_cli_model(path, loaded=None):
    """(model, metadata, scalers) of a single-RNN file of ``elman fit --out``; CLIError else."""
    from elman.preprocessing import StandardScaler

    if loaded is None:
        loaded = read_model_file(path)
    extra = loaded.extra or {}
    if extra.get("format") != CLI_FORMAT:
        raise CLIError(f"{path} is an elman model without the column names, window and "
                       f"scalers that `elman predict` needs; save it with `elman fit "
                       f"--out`, or predict with the Python API (elman.load)")
    if extra.get("format_version", 0) > CLI_FORMAT_VERSION:
        raise CLIError(f"{path} was written by a newer elman; upgrade elman to use it")
    scalers = {}
    for name in ("x_scaler", "y_scaler"):
        state = {key.split(".", 1)[1]: value for key, value in loaded.extra_arrays.items()
                 if key.startswith(name + ".")}
        try:
            scalers[name] = StandardScaler.from_state(state)
        except (TypeError, ValueError) as exc:
            raise CLIError(f"{path}: damaged scaler state {name} ({exc})") from None
    return loaded.model, extra, scalers


def closed_loop_problem(extra):
    """Why this model cannot forecast closed-loop, or None."""
    features, target, horizon = extra["features"], extra["target"], extra["horizon"]
    if target not in features:
        return (f"this model's inputs ({', '.join(features)}) do not include its target "
                f"{target!r}, so there is no input to feed a prediction back into; for "
                f"closed-loop forecasts train with --features {target}")
    others = [f for f in features if f != target]
    if others:
        return (f"besides {target!r} this model also reads {', '.join(others)}, whose "
                f"future values are unknown (only {target!r} is predicted); for closed-loop "
                f"forecasts train with --features {target}")
    if horizon != 1:
        return (f"this model predicts {horizon} rows ahead, and feeding a prediction back "
                f"as the next input needs the next row's value; train with --horizon 1")
    return None


def run_predict(args):
    from elman.forecaster import FILE_KEY

    loaded = read_model_file(args.model)
    if loaded.extra and FILE_KEY in loaded.extra:
        return _predict_forecaster(args, loaded)
    if args.interval is not None:
        raise CLIError(f"--interval: {args.model} holds a single RNN, which has no "
                       "calibrated intervals; fit without --layers, --many-to-one, "
                       "--batch-size and --patience for a forecaster that has them")
    model, extra, scalers = load_cli_model(args.model, loaded)
    features, target = list(extra["features"]), extra["target"]
    window, horizon = int(extra["window"]), int(extra["horizon"])
    if args.steps is not None:
        problem = closed_loop_problem(extra)
        if problem is not None:
            raise CLIError(f"--steps: cannot forecast closed-loop: {problem}")

    # Read the inputs, and the target too when the file has it (to print beside).
    options = reading_options(args)
    wanted = features + ([] if target in features else [target])
    try:
        table = load_table(args.csv, wanted if args.csv is not None else None, options)
    except CLIError:
        if target in features:
            raise
        table = load_table(args.csv, features, options)
    check_names_present(table, features, "feature column")
    n = len(table)
    if n < window:
        raise CLIError(f"{table.source} has {n} rows; this model needs at least {window} "
                       f"(its window)")
    x = table.dataset[features]
    actual = table.column(target) if target in table.dataset.columns else None
    xs = scalers["x_scaler"].transform(x)
    X = np.ascontiguousarray(all_windows(xs, window))
    # Window i ends on row i + window - 1 and predicts row i + window - 1 + horizon;
    # keep the windows whose predicted row is in the data.
    last = np.arange(X.shape[0]) + window - 1
    keep = last + horizon < n
    predicted_rows = last[keep] + horizon
    scaled = last_step(model.predict(X[keep])) if keep.any() else np.empty((0, 1))
    predictions = scalers["y_scaler"].inverse_transform(scaled)[:, 0]

    forecasts = np.empty(0)
    if args.steps is not None:
        forecasts = forecast(model, xs[:, 0], window, args.steps, scalers)

    _write_out(args.output, lambda handle: write_predictions(
        handle, table, target, actual, predicted_rows, predictions, forecasts))
    return 0


def all_windows(xs, window):
    """(n - window + 1, window, k) windows of a (n, k) series, oldest first."""
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(xs, window, axis=0).transpose(0, 2, 1)


def forecast(model, series, window, steps, scalers):
    """Closed-loop forecasts of a univariate single-RNN model, in the target's units.

    The rule of ``RNN.forecast`` and ``Forecaster.predict``: the state is warmed up on
    the last ``window`` values from a zero state, as in training, so the first
    forecast uses real data only; then each prediction is fed back as the next
    input with the state carried on. Input and target are the same column, scaled
    by the same training rows, so an output is fed back as it is.
    """
    history = np.asarray(series[-window:], dtype=np.float64).reshape(window, 1)
    scaled = model.forecast(history.astype(model.dtype), steps)  # (steps, 1)
    return scalers["y_scaler"].inverse_transform(np.asarray(scaled, dtype=np.float64))[:, 0]


def _predict_forecaster(args, loaded):
    """Predictions of a Forecaster file: one step for every row, then --steps ahead."""
    from elman.cli._fit import CLI_KEY, _closed_loop_rows, forecaster_columns
    from elman.forecaster import Forecaster

    try:
        forecaster = Forecaster._from_loaded(loaded, args.model)
    except (ValueError, TypeError, KeyError) as exc:
        raise CLIError(f"{args.model}: damaged forecaster ({exc})") from None
    forecaster.interval = None  # intervals only when --interval asks, not as at fit time
    meta = (getattr(forecaster, "metadata_", None) or {}).get(CLI_KEY)
    if meta is not None:
        target, others, horizon = meta["target"], list(meta["features"]), int(meta["horizon"])
    elif isinstance(forecaster.target_, str) and all(
            isinstance(name, str) for name in forecaster.features_):
        target, others, horizon = forecaster.target_, list(forecaster.features_), 1
    else:
        raise CLIError(f"{args.model} holds a Forecaster fitted on an array without column "
                       "names, so it is unknown which CSV columns it reads; save it from "
                       "`elman fit --out`, or fit it on a pandas DataFrame")
    if args.steps is not None and (others or horizon != 1):
        problem = (f"besides {target!r} this model also reads {', '.join(others)}, whose "
                   f"future values are unknown (only {target!r} is predicted); for "
                   f"closed-loop forecasts train with --features {target}" if others else
                   f"this model predicts {horizon} rows ahead; train with --horizon 1")
        raise CLIError(f"--steps: cannot forecast closed-loop: {problem}")

    options = reading_options(args)
    table = load_table(args.csv, [target] + others if args.csv is not None else None, options)
    check_names_present(table, [target] + others, "column")
    data, _ = forecaster_columns(table, target, [target] + others, horizon)
    level = args.interval
    n = len(table)
    bounds = None
    try:
        if horizon <= 1:
            predicted = forecaster.predict_one_step(data, interval=level)
            if level is not None:
                predicted, lower, upper = predicted
            rows = np.flatnonzero(np.isfinite(predicted))
            if level is not None:
                bounds = (lower[rows], upper[rows])
            predicted = predicted[rows]
        else:
            first = forecaster._pipeline.history_needed + horizon - 1
            rows = np.arange(min(first, n), n)
            predicted = _closed_loop_rows(forecaster, data, rows, horizon)
            if level is not None:
                bounds = (np.full(len(rows), np.nan), np.full(len(rows), np.nan))
        forecasts, forecast_bounds = np.empty(0), None
        if args.steps is not None:
            forecasts = forecaster.predict(args.steps, data=data, interval=level)
            if level is not None:
                forecasts, low, high = forecasts
                forecast_bounds = (low, high)
    except ValueError as exc:
        raise CLIError(f"{table.source}: {exc}") from None
    actual = table.column(target)

    def write(handle):
        write_predictions(handle, table, target, actual, rows, predicted, forecasts,
                          bounds=bounds, forecast_bounds=forecast_bounds)

    _write_out(args.output, write)
    return 0


def _write_out(output, write):
    """Call ``write(handle)`` on stdout (a closed pipe ends quietly there) or on the
    ``--output`` file."""
    if output is None:
        write(Output(sys.stdout))
        return
    try:
        stream = open(output, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"--output {output}: cannot write it ({exc.strerror or exc})") \
            from None
    with stream:
        write(stream)
