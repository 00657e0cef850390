"""``elman fit`` with a single RNN (--layers, --many-to-one, --batch-size, --patience).

One network with the settings given, trained on 70% of the rows with early
stopping on the next 15%, tested on the last 15%: the job as it was before
:class:`elman.Forecaster`, for users who set these training details themselves.
"""

import time

import numpy as np

from elman.cli import _baselines
from elman.cli._common import CLIError, Output, seconds
from elman.cli._data import Windows, last_step
from elman.cli._parser import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_HIDDEN,
    DEFAULT_LAYERS,
    DEFAULT_LR,
    DEFAULT_PATIENCE,
    DEFAULT_WINDOW,
)
from elman.cli._report import describe_run, report

# The model-file metadata written by `elman fit --out`, read by `elman predict`.
CLI_FORMAT = "elman-cli"
CLI_FORMAT_VERSION = 1


def run_single(args, started, table, features, target, horizon, weather, notes):
    """Train one RNN with the given (or the single-RNN default) settings and report."""
    import elman
    from elman.training import TrainingDivergedError

    for name, default in (("window", DEFAULT_WINDOW), ("hidden", DEFAULT_HIDDEN),
                          ("layers", DEFAULT_LAYERS), ("epochs", DEFAULT_EPOCHS),
                          ("batch_size", DEFAULT_BATCH_SIZE), ("lr", DEFAULT_LR),
                          ("patience", DEFAULT_PATIENCE)):
        if getattr(args, name) is None:
            setattr(args, name, default)
    many_to_many = not args.many_to_one
    data = Windows(table, features, target, args.window, horizon, many_to_many)

    out = Output()
    describe_run(out, table, data, features, target, args, horizon, weather, notes)
    model = elman.RNN(len(features), args.hidden, 1, num_layers=args.layers,
                      return_sequences=many_to_many, seed=args.seed)
    early = {"patience": args.patience, "restore_best": True} if args.patience else None
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

    results = evaluate(model, data, features, target, weather, table.dates)
    report(out, history, results, table, weather, args)
    if args.out is not None:
        save(model, args.out, data, table, features, target, args, horizon, results)
        out.write(f"saved the model to {args.out} (predict with: elman predict {args.out}"
                  f"{'' if args.csv is None else ' ' + args.csv})\n")
    if args.plot is not None:
        from elman.cli._plot import gradient_flow_panel, plot

        flow = gradient_flow_panel(
            [("", model, data.X["validation"], data.Y["validation"])], "validation")
        plot(args.plot, results, history, table, target, weather, flow)
        out.write(f"saved the plot to {args.plot}\n")
    total = time.perf_counter() - started
    out.write(f"time: training {seconds(train_seconds)} ({history.epochs} epochs, "
              f"{history.steps} updates) on the {elman.BACKEND} backend; whole run "
              f"{seconds(total)}\n")
    out.flush()
    return 0


def evaluate(model, data, features, target, weather, dates):
    """Test predictions of the RNN and of the baselines, in the target's units."""
    rows = data.predicted["test"]
    last = data.last["test"]
    y = data.y
    actual = y[rows]
    rnn = data.y_scaler.inverse_transform(last_step(model.predict(data.X["test"])))[:, 0]
    # The target's last known row: the window's last row, or the row before it for an
    # aligned target (horizon 0), whose own value on the last row is what is predicted.
    ahead = data.horizon if data.horizon >= 1 else 1

    def known(part):
        return data.last[part] if data.horizon >= 1 else data.last[part] - 1

    methods = [("elman RNN", rnn)]
    inputs = ", ".join(features)
    if list(features) != [target]:
        label = (f"linear regression on today's {inputs}" if weather
                 else f"linear regression on the last row's {inputs}")
        methods.append((label, _baselines.linear_regression(
            data.x, y, data.last["train"], data.predicted["train"], last)))
    season = _baselines.guess_season(dates[:data.train_end] if dates is not None else None,
                                     y[:data.train_end])
    ridge = _baselines.ridge_autoregression(
        y, known("test"), _baselines.ridge_lag_candidates(season, len(data.predicted["train"])),
        known("train"), data.predicted["train"], known("validation"),
        data.predicted["validation"])
    persistence_label = _baselines.append_naive_methods(
        methods, ridge, y, rows, ahead, season, known("test"), target, weather)

    table = {}
    for label, predicted in methods:
        error = predicted - actual
        table[label] = {"prediction": predicted, "mse": float(np.mean(error ** 2)),
                        "mae": float(np.mean(np.abs(error)))}
    train_y = y[:data.train_end]
    return {"rows": rows, "actual": actual, "methods": table,
            "labels": tuple(label for label, _ in methods),
            "persistence_label": persistence_label, "season": season,
            "train_low": float(train_y.min()), "train_high": float(train_y.max()),
            "train_windows": len(data.predicted["train"])}


def save(model, path, data, table, features, target, args, horizon, results):
    from elman.model_file import save as save_model

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
        save_model(model, path, extra=extra, extra_arrays=arrays)
    except OSError as exc:
        raise CLIError(f"--out {path}: cannot write it ({exc.strerror or exc})") from None
