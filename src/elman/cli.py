"""The ``elman`` command line: ``elman fit``, ``elman predict``, ``elman info``.

``elman fit`` with no arguments trains on the bundled weather data: it predicts
tomorrow's maximum temperature (``tmax_tomorrow``) from windows of the last 7 days of
``tmax``, ``tmin`` and ``rain``, and compares the test error with two baselines on the
same test days. ``elman fit data.csv --target COL`` does the same on a CSV file.

How a CSV becomes training data
-------------------------------
* Columns: a date column, if any, is detected and kept out of the inputs; missing
  values are forward-filled (see :func:`elman.datasets.load_csv`). The inputs are
  ``--features`` (default: every numeric column, the target included).
* Alignment (``--horizon``): a window of the rows ``r - window + 1 .. r`` predicts the
  target on row ``r + horizon``. By default the horizon is 1 when the target is among
  the inputs (forecast its next value) and 0 when it is not: the target column is
  then taken to be aligned already, its row ``r`` holding what is to be predicted
  from the rows up to ``r``, as ``tmax_tomorrow`` is in the weather data.
* Split: the rows are split chronologically 70/15/15 (train/validation/test) and each
  window belongs to the part of the row it predicts, so the test days are the last
  15% of the rows. Both scalers (inputs, target) are fitted on the training rows only.
* Training: many-to-many by default (a target after every step of a window, as the
  classic tutorials do; ``--many-to-one`` for the last step only), Adam, early
  stopping on the validation loss with the best epoch's weights restored.
* Baselines, on the same test days: persistence (the target's last known value:
  its value on the window's last row, or on the row before for an aligned target,
  horizon 0) and a least-squares linear regression with intercept on the inputs of
  the window's last row, fitted on the training windows.

Exit status: 0 on success; 2 for a usage or data error (bad arguments, an unreadable
CSV, an unknown or non-numeric column, a missing model file, ``--plot`` without
matplotlib), with a one-line message on stderr; 1 if training diverges.
"""

import argparse
import contextlib
import csv
import importlib
import importlib.util
import math
import os
import sys
import time

import numpy as np

# Defaults of `elman fit`, tuned on the bundled weather data (see the README).
DEFAULT_WINDOW = 7
DEFAULT_HIDDEN = 16
DEFAULT_LAYERS = 1
DEFAULT_EPOCHS = 40
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 0.002
DEFAULT_PATIENCE = 5
DEFAULT_SEED = 0
SPLIT = (0.7, 0.15, 0.15)

WEATHER_TARGET = "tmax_tomorrow"
WEATHER_FEATURES = ("tmax", "tmin", "rain")

PLOT_HINT = 'pip install "elman[plot]"'
# The model-file metadata written by `elman fit --out`, read by `elman predict`.
CLI_FORMAT = "elman-cli"
CLI_FORMAT_VERSION = 1


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit status ``code``."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


# =============================================================================
# Arguments
# =============================================================================
def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _names(text):
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated column names such as tmax,tmin; got {text!r}")
    return names


def build_parser():
    parser = argparse.ArgumentParser(
        prog="elman",
        description="Vanilla (Elman) RNNs for time series: train, predict, inspect.",
        epilog="Run `elman fit` with no arguments for the bundled weather example.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{fit,predict,info}")

    fit = commands.add_parser(
        "fit", help="train a model on a CSV file (default: the bundled weather data)",
        description=(
            "Train an RNN on windows of a CSV file and report its test error beside "
            "persistence and a linear regression. Without CSV: the bundled weather data "
            "(predict tomorrow's tmax from the last 7 days of tmax, tmin and rain)."))
    fit.add_argument("csv", nargs="?", default=None,
                     help="CSV file with a header row; a date column is detected "
                          "(default: the bundled weather data)")
    fit.add_argument("--target", default=None,
                     help="column to predict (required with a CSV; bundled data: "
                          f"{WEATHER_TARGET})")
    fit.add_argument("--features", type=_names, default=None, metavar="A,B,...",
                     help="input columns (default: every numeric column, the target "
                          "included; bundled data: " + ",".join(WEATHER_FEATURES) + ")")
    fit.add_argument("--window", type=_int_at_least(1), default=DEFAULT_WINDOW,
                     help="rows per input window (time steps; default %(default)s)")
    fit.add_argument("--horizon", type=_int_at_least(0), default=None,
                     help="the window ending on row r predicts the target on row "
                          "r + horizon (default: 1 if the target is an input, else 0)")
    fit.add_argument("--hidden", type=_int_at_least(1), default=DEFAULT_HIDDEN,
                     help="hidden units per layer (default %(default)s)")
    fit.add_argument("--layers", type=_int_at_least(1), default=DEFAULT_LAYERS,
                     help="stacked recurrent layers (default %(default)s)")
    fit.add_argument("--many-to-one", action="store_true",
                     help="train on the last step's target only (default: a target "
                          "after every step)")
    fit.add_argument("--epochs", type=_int_at_least(1), default=DEFAULT_EPOCHS,
                     help="most passes over the training windows (default %(default)s)")
    fit.add_argument("--batch-size", type=_int_at_least(1), default=DEFAULT_BATCH_SIZE,
                     help="windows per update (default %(default)s)")
    fit.add_argument("--lr", type=_positive_float, default=DEFAULT_LR,
                     help="Adam's learning rate (default %(default)s)")
    fit.add_argument("--patience", type=_int_at_least(0), default=DEFAULT_PATIENCE,
                     help="stop after this many epochs without a better validation "
                          "loss, keeping the best epoch (default %(default)s; 0: no "
                          "early stopping)")
    fit.add_argument("--seed", type=_int_at_least(0), default=DEFAULT_SEED,
                     help="seed of the initial weights and the shuffling (default %(default)s)")
    fit.add_argument("--out", default=None, metavar="MODEL.npz",
                     help="save the model, with what `elman predict` needs, to this file")
    fit.add_argument("--plot", default=None, metavar="OUT.png",
                     help="draw the test period and the loss curves (needs "
                          f"matplotlib: {PLOT_HINT})")
    fit.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar")

    predict = commands.add_parser(
        "predict", help="predict with a model saved by `elman fit --out`",
        description=(
            "Write one prediction per window of the CSV (and, with --steps, closed-loop "
            "forecasts after its end) as CSV."))
    predict.add_argument("model", help="model file written by `elman fit --out`")
    predict.add_argument("csv", nargs="?", default=None,
                         help="CSV with the model's input columns (default: the bundled "
                              "weather data)")
    predict.add_argument("--steps", type=_int_at_least(1), default=None,
                         help="also forecast this many rows after the end of the data, "
                              "feeding each prediction back as the next input (needs a "
                              "model whose only input is its target, horizon 1)")
    predict.add_argument("--output", "-o", default=None, metavar="OUT.csv",
                         help="write here instead of to stdout")

    commands.add_parser("info", help="version, backend and build of this installation",
                        description="Show the version, the kernel backend in use and how "
                                    "the compiled module was built.")
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (0, 1 or 2).

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return 0 if exc.code is None else int(exc.code)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "fit":
            return _fit(args)
        if args.command == "predict":
            return _predict(args)
        return _info()
    except CLIError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the source said
        sys.stderr.write(f"elman {args.command}: error: {message}\n")
        sys.stderr.flush()
        return exc.code


# =============================================================================
# Data
# =============================================================================
class _Table:
    """Columns of a loaded CSV (or the bundled data), with dates and a description."""

    def __init__(self, dataset, source, bundled):
        self.dataset = dataset
        self.source = source
        self.bundled = bundled

    @property
    def dates(self):
        return self.dataset.dates

    def __len__(self):
        return len(self.dataset)

    def column(self, name):
        return self.dataset[name]


@contextlib.contextmanager
def _opening(path, what):
    """Turn the OSErrors of opening ``path`` into one-line CLIErrors."""
    try:
        yield
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CLIError(f"{path}: is a directory, not {what}") from None
    except OSError as exc:
        raise CLIError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _load_table(path, columns):
    """The bundled weather data (path None) or a CSV, as a _Table; CLIError on failure."""
    from elman.datasets import load_csv, load_weather

    if path is None:
        return _Table(load_weather(), "the bundled weather data (NOAA daily, one US station)",
                      bundled=True)
    try:
        with _opening(path, "a CSV file"):
            dataset = load_csv(path, columns=columns)
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path}: not a UTF-8 text file ({exc.reason} at byte "
                       f"{exc.start})") from None
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc)) from None
    return _Table(dataset, path, bundled=False)


def _resolve_columns(args):
    """(target, features or None, columns to read or None) from fit's arguments."""
    if args.csv is None:
        target = args.target or WEATHER_TARGET
        features = args.features or list(WEATHER_FEATURES)
    else:
        if args.target is None:
            raise CLIError(f"--target is required with a CSV file: name the column of "
                           f"{args.csv} to predict")
        target = args.target
        features = args.features
    if features is not None and len(set(features)) != len(features):
        repeated = next(f for f in features if features.count(f) > 1)
        raise CLIError(f"--features names {repeated!r} twice")
    columns = None
    if features is not None:
        columns = list(features) + ([] if target in features else [target])
    return target, features, columns


def _check_names_present(table, names, what):
    for name in names:
        if name not in table.dataset.columns:
            raise CLIError(f"{table.source}: unknown {what} {name!r}; the numeric columns "
                           f"are: {', '.join(table.dataset.columns)}")


class _Windows:
    """Windows of the scaled inputs, their targets and their split (see module doc)."""

    def __init__(self, table, features, target, window, horizon, many_to_many):
        from elman.preprocessing import StandardScaler, sliding_windows, train_val_test_split

        n = len(table)
        x = table.dataset[list(features)]
        y = table.column(target)
        n_windows = n - window - horizon + 1
        if n_windows < 1:
            raise CLIError(f"{table.source} has {n} rows; a window of {window} rows and "
                           f"horizon {horizon} need at least {window + horizon}")
        try:
            train_rows, val_rows, _ = train_val_test_split(np.arange(n), fractions=SPLIT)
        except ValueError as exc:  # too few rows for three non-empty parts
            raise CLIError(f"{table.source}: {exc}") from None
        self.train_end = len(train_rows)
        self.val_end = self.train_end + len(val_rows)
        last = np.arange(n_windows) + window - 1         # each window's last input row
        predicted = last + horizon                        # the row each window predicts
        parts = {
            "train": predicted < self.train_end,
            "validation": (predicted >= self.train_end) & (predicted < self.val_end),
            "test": predicted >= self.val_end,
        }
        for part, mask in parts.items():
            if not mask.any():
                raise CLIError(
                    f"{table.source} has {n} rows: too few for a {SPLIT[0]:.0%}/{SPLIT[1]:.0%}"
                    f"/{SPLIT[2]:.0%} split with windows of {window} rows (horizon {horizon}): "
                    f"the {part} part has no window")
        self.x_scaler = StandardScaler().fit(x[:self.train_end])
        self.y_scaler = StandardScaler().fit(y[:self.train_end])
        xs = self.x_scaler.transform(x)
        ys = self.y_scaler.transform(y)
        X, Y = sliding_windows(xs, window, targets=ys, horizon=horizon,
                               many_to_many=many_to_many)
        self.X = {p: np.ascontiguousarray(X[m]) for p, m in parts.items()}
        self.Y = {p: np.ascontiguousarray(Y[m]) for p, m in parts.items()}
        self.last = {p: last[m] for p, m in parts.items()}
        self.predicted = {p: predicted[m] for p, m in parts.items()}
        self.x, self.y = x, y
        self.horizon = horizon


def _last_step(outputs):
    """(n, 1) predictions of the last step, from a many-to-many or many-to-one model."""
    return outputs[:, -1, :] if outputs.ndim == 3 else outputs


# =============================================================================
# elman fit
# =============================================================================
def _fit(args):
    import elman
    from elman.training import TrainingDivergedError

    started = time.perf_counter()
    if args.plot is not None:
        _require_matplotlib()  # before training, so a missing extra costs no time
    for option, path in (("--out", args.out), ("--plot", args.plot)):
        if path is not None:
            _check_writable(option, path)

    target, features, columns = _resolve_columns(args)
    table = _load_table(args.csv, columns)
    if features is None:
        features = list(table.dataset.columns)
    _check_names_present(table, [target], "target column")
    _check_names_present(table, features, "feature column")
    horizon = args.horizon
    if horizon is None:
        horizon = 1 if target in features else 0
    elif horizon == 0 and target in features:
        raise CLIError(f"--horizon 0 with {target!r} among the inputs would show the model "
                       f"the very value it predicts; use --horizon 1 or leave {target!r} "
                       f"out of --features")
    many_to_many = not args.many_to_one
    data = _Windows(table, features, target, args.window, horizon, many_to_many)
    weather = table.bundled and target == WEATHER_TARGET and horizon == 0

    out = sys.stdout
    _describe_run(out, table, data, features, target, args, horizon, weather)
    model = elman.RNN(len(features), args.hidden, 1, num_layers=args.layers,
                      return_sequences=many_to_many, seed=args.seed)
    early = {"patience": args.patience, "restore_best": True} if args.patience else None
    out.flush()
    train_started = time.perf_counter()
    try:
        history = model.fit(data.X["train"], data.Y["train"], epochs=args.epochs,
                            batch_size=args.batch_size, optimizer="adam", lr=args.lr,
                            seed=args.seed,
                            validation_data=(data.X["validation"], data.Y["validation"]),
                            early_stopping=early, verbose=0 if args.quiet else 1)
    except TrainingDivergedError as exc:
        raise CLIError(f"{exc} (try a smaller --lr)", code=1) from None
    train_seconds = time.perf_counter() - train_started

    results = _evaluate(model, data, features, target, weather)
    _report(out, history, results, data, table, target, weather, args)
    if args.out is not None:
        _save(model, args.out, data, table, features, target, args, horizon, results)
        out.write(f"saved the model to {args.out} (predict with: elman predict {args.out}"
                  f"{'' if args.csv is None else ' ' + args.csv})\n")
    if args.plot is not None:
        _plot(args.plot, results, history, data, table, target, weather)
        out.write(f"saved the plot to {args.plot}\n")
    total = time.perf_counter() - started
    out.write(f"time: training {train_seconds:.2f} s ({history.epochs} epochs, "
              f"{history.steps} updates) on the {elman.BACKEND} backend; whole run "
              f"{total:.2f} s\n")
    out.flush()
    return 0


def _check_writable(option, path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"{option} {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a directory")


def _span(table, rows):
    if table.dates is None:
        return f"rows {rows[0]} to {rows[-1]}"
    return f"{table.dates[rows[0]]} to {table.dates[rows[-1]]}"


def _describe_run(out, table, data, features, target, args, horizon, weather):
    n = len(table)
    out.write(f"data: {table.source}, {n} rows"
              + ("" if table.dates is None else f", {table.dates[0]} to {table.dates[-1]}")
              + "\n")
    missing = int(table.dataset.missing[:, [table.dataset.columns.index(c) for c in
                                            dict.fromkeys(list(features) + [target])]].sum())
    if missing:
        out.write(f"      {missing} missing values forward-filled\n")
    inputs = ", ".join(features)
    if weather:
        out.write(f"task: predict tomorrow's tmax ({target}) from the last {args.window} days "
                  f"of {inputs}\n")
    else:
        ahead = ("the same row as each window's last (the target column is taken as "
                 "aligned: horizon 0)" if horizon == 0 else
                 f"{horizon} row{'s' if horizon > 1 else ''} after each window's last")
        out.write(f"task: predict {target} on {ahead}, from windows of {args.window} rows of "
                  f"{inputs}\n")
    counts = {p: len(data.predicted[p]) for p in ("train", "validation", "test")}
    out.write(f"split: chronological {SPLIT[0]:.0%}/{SPLIT[1]:.0%}/{SPLIT[2]:.0%} by the "
              f"predicted row: train {counts['train']}, validation {counts['validation']}, "
              f"test {counts['test']} windows; scalers fitted on the training rows\n")
    mode = "many-to-one" if args.many_to_one else "many-to-many"
    stopping = (f"early stopping (patience {args.patience})" if args.patience
                else "no early stopping")
    out.write(f"model: RNN({len(features)}, {args.hidden}, 1"
              + (f", num_layers={args.layers}" if args.layers > 1 else "")
              + f"), {mode}; Adam lr {args.lr:g}, batch {args.batch_size}, up to "
              f"{args.epochs} epochs, {stopping}, seed {args.seed}\n")
    if not args.quiet:
        out.write("training (losses are mean squared errors of the standardised target):\n")


def _evaluate(model, data, features, target, weather):
    """Test predictions of the RNN and of both baselines, in the target's units."""
    rows = data.predicted["test"]
    last = data.last["test"]
    actual = data.y[rows]
    rnn = data.y_scaler.inverse_transform(_last_step(model.predict(data.X["test"])))[:, 0]

    # Persistence: the target's last known value (module docstring).
    known = last if data.horizon >= 1 else last - 1
    persistence = data.y[known]

    # Linear regression with intercept on the last row's inputs, fit on training windows.
    train_last = data.last["train"]
    design = np.column_stack([data.x[train_last], np.ones(len(train_last))])
    coef, *_ = np.linalg.lstsq(design, data.y[data.predicted["train"]], rcond=None)
    linear = np.column_stack([data.x[last], np.ones(len(last))]) @ coef

    inputs = ", ".join(features)
    if weather:
        labels = ("elman RNN", f"linear regression on today's {inputs}",
                  "persistence (tomorrow's tmax = today's)")
    else:
        labels = ("elman RNN", f"linear regression on the last row's {inputs}",
                  f"persistence (last known {target})")
    methods = {}
    for label, predicted in zip(labels, (rnn, linear, persistence)):
        error = predicted - actual
        methods[label] = {"prediction": predicted, "mse": float(np.mean(error ** 2)),
                          "mae": float(np.mean(np.abs(error)))}
    return {"rows": rows, "actual": actual, "methods": methods, "labels": labels}


def _report(out, history, results, data, table, target, weather, args):
    if history.stopped_early:
        out.write(f"stopped early after epoch {history.epochs}: no better validation loss "
                  f"for {args.patience} epochs; kept epoch {history.best_epoch + 1} "
                  f"(val_loss {history.val_loss[history.best_epoch]:.4g})\n")
    elif history.best_epoch is not None and history.best_epoch + 1 < history.epochs:
        out.write(f"kept the weights of epoch {history.best_epoch + 1} of {history.epochs}, "
                  f"the best on validation\n")
    rows = results["rows"]
    unit, unit2 = ("°F", "°F²") if weather else ("", "")
    what = "days" if weather else "rows"
    header = f"test: {len(rows)} {what}, {_span(table, rows)}"
    labels = results["labels"]
    width = max(len(header), *(len(label) + 2 for label in labels))
    mse_head = f"MSE{' (' + unit2 + ')' if unit2 else ''}"
    mae_head = f"MAE{' (' + unit + ')' if unit else ''}"
    out.write("\n")
    out.write(f"{header:<{width}}  {mse_head:>10}  {mae_head:>9}\n")
    for label in labels:
        method = results["methods"][label]
        out.write(f"  {label:<{width - 2}}  {method['mse']:>10.2f}  {method['mae']:>9.2f}\n")
    rnn = results["methods"][labels[0]]["mse"]
    linear = results["methods"][labels[1]]["mse"]
    persistence = results["methods"][labels[2]]["mse"]
    if rnn < min(linear, persistence):
        out.write(f"the RNN's test MSE is {1 - rnn / linear:.1%} below the linear "
                  f"regression's and {1 - rnn / persistence:.1%} below persistence's\n")
    else:
        beaten = [name for name, mse in (("linear regression", linear),
                                         ("persistence", persistence)) if mse <= rnn]
        out.write(f"the RNN does not beat {' or '.join(beaten)} on these test {what}; try "
                  f"more --epochs, another --lr or --hidden, or a longer --window\n")


def _save(model, path, data, table, features, target, args, horizon, results):
    from elman.model_file import save

    extra = {
        "format": CLI_FORMAT,
        "format_version": CLI_FORMAT_VERSION,
        "features": list(features),
        "target": target,
        "window": args.window,
        "horizon": horizon,
        "many_to_many": not args.many_to_one,
        "source": table.source if not table.bundled else "bundled weather data",
        "trained_rows": int(data.train_end),
        "test_mse": {label: results["methods"][label]["mse"] for label in results["labels"]},
    }
    arrays = {}
    for name, scaler in (("x_scaler", data.x_scaler), ("y_scaler", data.y_scaler)):
        for key, value in scaler.get_state().items():
            arrays[f"{name}.{key}"] = value
    try:
        save(model, path, extra=extra, extra_arrays=arrays)
    except OSError as exc:
        raise CLIError(f"--out {path}: cannot write it ({exc.strerror or exc})") from None


# =============================================================================
# --plot
# =============================================================================
def _require_matplotlib():
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError(f"--plot needs matplotlib, which is not installed: {PLOT_HINT}")
    try:
        importlib.import_module("matplotlib")
    except ImportError as exc:
        raise CLIError(f"--plot needs matplotlib, which failed to import ({exc}): "
                       f"{PLOT_HINT}") from None


def _plot(path, results, history, data, table, target, weather):
    # The object-oriented API with the Agg canvas: no pyplot, no GUI, no global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = results["rows"]
    x = table.dates[rows] if table.dates is not None else rows
    actual = results["actual"]
    labels = results["labels"]
    rnn = results["methods"][labels[0]]["prediction"]
    unit = " (°F)" if weather else ""
    name = "tomorrow's tmax" if weather else target

    figure = Figure(figsize=(11, 7.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, height_ratios=(1, 1), width_ratios=(1.6, 1))
    whole = figure.add_subplot(grid[0, :])
    zoom = figure.add_subplot(grid[1, 0])
    losses = figure.add_subplot(grid[1, 1])
    actual_style = {"color": "0.25", "linewidth": 0.9}
    rnn_style = {"color": "tab:orange", "linewidth": 0.9}

    whole.plot(x, actual, label="actual", alpha=0.8, **actual_style)
    whole.plot(x, rnn, label="RNN", alpha=0.9, **rnn_style)
    whole.set_title(f"Test period: {name}, actual and predicted", loc="left")
    scores = ", ".join(f"{short} {results['methods'][label]['mse']:.2f}" for short, label in
                       zip(("RNN", "linear regression", "persistence"), labels))
    source = "bundled weather data" if table.bundled else os.path.basename(table.source)
    figure.suptitle(f"elman fit on {source}: test MSE{' (°F²)' if weather else ''} "
                    f"{scores}", fontsize="medium", x=0.01, ha="left")
    whole.set_ylabel(f"{target}{unit}")
    whole.legend(loc="upper right", ncols=2, frameon=False)
    whole.margins(x=0.005)

    last = min(len(rows), 120)
    persistence = results["methods"][labels[2]]["prediction"]
    zoom.plot(x[-last:], actual[-last:], marker=".", markersize=4, label="actual",
              **actual_style)
    zoom.plot(x[-last:], rnn[-last:], label="RNN", **{**rnn_style, "linewidth": 1.4})
    zoom.plot(x[-last:], persistence[-last:], label="persistence", color="tab:blue",
              linewidth=0.9, linestyle="--", alpha=0.7)
    zoom.set_title(f"Last {last} {'days' if weather else 'rows'} of the test period",
                   loc="left")
    zoom.set_ylabel(f"{target}{unit}")
    zoom.legend(loc="best", frameon=False, fontsize="small")
    if table.dates is not None:
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator(maxticks=6)
        zoom.xaxis.set_major_locator(locator)
        zoom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))

    epochs = np.arange(1, history.epochs + 1)
    losses.plot(epochs, history.loss, marker="o", markersize=3, color="tab:blue",
                label="train")
    if history.val_loss:
        losses.plot(epochs, history.val_loss, marker="o", markersize=3, color="tab:purple",
                    label="validation")
    # The first epoch's training loss (averaged while the weights were still far off)
    # can dwarf the rest: scale the axis to the later epochs and note it instead.
    if history.epochs >= 3:
        later = np.concatenate([history.loss[1:], history.val_loss[1:]])
        low, high = float(later.min()), float(later.max())
        pad = 0.15 * (high - low) if high > low else 0.05 * abs(high) + 1e-12
        first = max([history.loss[0]] + history.val_loss[:1])
        if first > high + 3 * pad:
            losses.set_ylim(low - pad, high + 3 * pad)
            losses.annotate(f"epoch 1: {history.loss[0]:.3g} (off scale)",
                            xy=(1, high + 3 * pad), xytext=(6, -12),
                            textcoords="offset points", fontsize="small", color="tab:blue",
                            ha="left", va="top")
    if history.best_epoch is not None:
        losses.axvline(history.best_epoch + 1, color="0.5", linestyle=":", linewidth=1,
                       label=f"kept (epoch {history.best_epoch + 1})")
    losses.set_title("Loss per epoch (standardised target)", loc="left")
    losses.set_xlabel("epoch")
    losses.set_ylabel("mean squared error")
    losses.legend(frameon=False, fontsize="small")
    if history.epochs:
        losses.set_xlim(0.5, history.epochs + 0.5)
        from matplotlib.ticker import MaxNLocator

        losses.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in (whole, zoom, losses):
        axes.grid(True, alpha=0.3, linewidth=0.6)
        axes.spines[["top", "right"]].set_visible(False)
    try:
        figure.savefig(path)
    except OSError as exc:
        raise CLIError(f"--plot {path}: cannot write it ({exc.strerror or exc})") from None
    except ValueError as exc:  # an extension matplotlib does not know
        raise CLIError(f"--plot {path}: {exc}") from None


# =============================================================================
# elman predict
# =============================================================================
def _load_cli_model(path):
    from elman.model_file import ModelFileError, load_with_metadata

    try:
        with _opening(path, "a model file"):
            loaded = load_with_metadata(path)
    except ModelFileError as exc:
        raise CLIError(str(exc)) from None
    extra = loaded.extra or {}
    if extra.get("format") != CLI_FORMAT:
        raise CLIError(f"{path} is an elman model without the column names, window and "
                       f"scalers that `elman predict` needs; save it with `elman fit "
                       f"--out`, or predict with the Python API (elman.load)")
    if extra.get("format_version", 0) > CLI_FORMAT_VERSION:
        raise CLIError(f"{path} was written by a newer elman; upgrade elman to use it")
    from elman.preprocessing import StandardScaler

    scalers = {}
    for name in ("x_scaler", "y_scaler"):
        state = {key.split(".", 1)[1]: value for key, value in loaded.extra_arrays.items()
                 if key.startswith(name + ".")}
        try:
            scalers[name] = StandardScaler.from_state(state)
        except (TypeError, ValueError) as exc:
            raise CLIError(f"{path}: damaged scaler state {name} ({exc})") from None
    return loaded.model, extra, scalers


def _closed_loop_problem(extra):
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


def _predict(args):
    model, extra, scalers = _load_cli_model(args.model)
    features, target = list(extra["features"]), extra["target"]
    window, horizon = int(extra["window"]), int(extra["horizon"])
    if args.steps is not None:
        problem = _closed_loop_problem(extra)
        if problem is not None:
            raise CLIError(f"--steps: cannot forecast closed-loop: {problem}")

    # Read the inputs, and the target too when the file has it (to print beside).
    wanted = features + ([] if target in features else [target])
    try:
        table = _load_table(args.csv, wanted if args.csv is not None else None)
    except CLIError:
        if target in features:
            raise
        table = _load_table(args.csv, features)
    _check_names_present(table, features, "feature column")
    n = len(table)
    if n < window:
        raise CLIError(f"{table.source} has {n} rows; this model needs at least {window} "
                       f"(its window)")
    x = table.dataset[features]
    actual = table.column(target) if target in table.dataset.columns else None
    xs = scalers["x_scaler"].transform(x)
    X = np.ascontiguousarray(_all_windows(xs, window))
    # Window i ends on row i + window - 1 and predicts row i + window - 1 + horizon;
    # keep the windows whose predicted row is in the data.
    last = np.arange(X.shape[0]) + window - 1
    keep = last + horizon < n
    predicted_rows = last[keep] + horizon
    scaled = _last_step(model.predict(X[keep])) if keep.any() else np.empty((0, 1))
    predictions = scalers["y_scaler"].inverse_transform(scaled)[:, 0]

    forecast_rows, forecasts = np.empty(0, dtype=int), np.empty(0)
    if args.steps is not None:
        forecasts = _forecast(model, xs[:, 0], window, args.steps, scalers)
        forecast_rows = np.arange(n, n + args.steps)

    stream = sys.stdout if args.output is None else None
    try:
        handle = stream or open(args.output, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"--output {args.output}: cannot write it ({exc.strerror or exc})") \
            from None
    try:
        _write_predictions(handle, table, target, actual, predicted_rows, predictions,
                           forecast_rows, forecasts)
    finally:
        if stream is None:
            handle.close()
    return 0


def _all_windows(xs, window):
    """(n - window + 1, window, k) windows of a (n, k) series, oldest first."""
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(xs, window, axis=0).transpose(0, 2, 1)


def _forecast(model, series, window, steps, scalers):
    """Closed-loop forecasts of a univariate model, in the target's units.

    Each step runs the model on the latest ``window`` values, the newest of which are
    earlier forecasts: windows of ``window`` steps from a zero state, exactly as the
    model was trained (a state carried on past the window would not be).
    """
    x_scaler, y_scaler = scalers["x_scaler"], scalers["y_scaler"]
    values = list(series[-window:])
    out = np.empty(steps)
    for step in range(steps):
        history = np.asarray(values[-window:]).reshape(1, window, 1)
        predicted = y_scaler.inverse_transform(_last_step(model.predict(history)))[0, 0]
        out[step] = predicted
        values.append(float(x_scaler.transform(np.array([[predicted]]))[0, 0]))
    return out


def _future_dates(dates, count):
    """Dates after the last one, spaced by the data's typical (median) step."""
    if len(dates) < 2:
        return None
    step = np.median(np.diff(dates).astype(np.int64)).astype(np.int64)
    if step <= 0:
        return None
    unit = np.datetime_data(dates.dtype)[0]
    return dates[-1] + np.arange(1, count + 1) * np.timedelta64(int(step), unit)


def _number(value):
    return "" if value is None or not np.isfinite(value) else f"{value:.10g}"


def _write_predictions(handle, table, target, actual, rows, predictions, forecast_rows,
                       forecasts):
    writer = csv.writer(handle, lineterminator="\n")
    dates = table.dates
    key = "date" if dates is not None else "row"
    writer.writerow([key, target, f"{target}_predicted"])
    for row, value in zip(rows, predictions):
        label = str(dates[row]) if dates is not None else int(row)
        writer.writerow([label, _number(None if actual is None else actual[row]),
                         _number(value)])
    if len(forecasts):
        future = _future_dates(dates, len(forecasts)) if dates is not None else None
        for k, (row, value) in enumerate(zip(forecast_rows, forecasts)):
            label = int(row) if dates is None else ("" if future is None else str(future[k]))
            writer.writerow([label, "", _number(value)])
    handle.flush()


# =============================================================================
# elman info
# =============================================================================
def _info():
    import platform

    import elman
    from elman import _backend

    out = sys.stdout
    out.write(f"elman {elman.__version__}\n")
    requested = os.environ.get("ELMAN_BACKEND", "")
    out.write(f"backend in use: {elman.BACKEND} (ELMAN_BACKEND="
              f"{requested if requested else 'unset'})\n")
    try:
        kernels = _backend.get_kernels("cython")
    except ImportError as exc:
        first = str(exc).split(". ")[0]
        out.write(f"compiled module: not available ({first})\n")
        out.write("instruction set: n/a (no compiled module)\n")
    else:
        out.write(f"compiled module: present ({kernels.__name__}, "
                  f"{os.path.basename(getattr(kernels, '__file__', '') or '?')})\n")
        level = getattr(kernels, "INSTRUCTION_SET", None)
        isa = os.environ.get("ELMAN_ISA", "").strip()
        out.write(f"instruction set: {level if level else 'baseline'}"
                  + (f" (ELMAN_ISA={isa})" if isa else "") + "\n")
    out.write(f"python {platform.python_version()}, numpy {np.__version__}, "
              f"{platform.system()} {platform.machine()}\n")
    extras = []
    for module, package, extra in (("sklearn", "scikit-learn", "sklearn"),
                                   ("matplotlib", "matplotlib", "plot")):
        found = importlib.util.find_spec(module) is not None
        extras.append(f"{package} {_version_of(package) if found else 'not installed'}"
                      + ("" if found else f' (pip install "elman[{extra}]")'))
    out.write("optional: " + ", ".join(extras) + "\n")
    out.flush()
    return 0


def _version_of(package):
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(version unknown)"
