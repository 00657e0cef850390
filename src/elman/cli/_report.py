"""What ``elman fit`` prints: the run's description, the results table and the advice."""

import numpy as np

from elman.cli._common import seconds
from elman.cli._data import SPLIT


def span(table, rows):
    if table.dates is None:
        return f"rows {rows[0]} to {rows[-1]}"
    return f"{table.date_text(rows[0])} to {table.date_text(rows[-1])}"


def _describe_data(out, table, features, target):
    """Write the data line; return how many values of the columns used were missing."""
    n = len(table)
    out.write(f"data: {table.source}, {n} rows"
              + ("" if table.dates is None else f", {table.date_text(0)} to {table.date_text(n - 1)}")
              + "\n")
    used = [table.dataset.columns.index(c) for c in dict.fromkeys(list(features) + [target])]
    return int(table.dataset.missing[:, used].sum())


def describe_run(out, table, data, features, target, args, horizon, weather, notes=()):
    missing = _describe_data(out, table, features, target)
    if missing:
        how = "linearly interpolated" if getattr(args, "fill", "ffill") == "linear" \
            else "forward-filled"
        out.write(f"      {missing} missing values {how}\n")
    for note in notes:
        out.write(f"      {note}\n")
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
    out.flush()


def report(out, history, results, table, weather, args):
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
    header = f"test: {len(rows)} {what}, {span(table, rows)}"
    _write_errors(out, header, results, unit, unit2)
    out.write(verdict(results, what) + "\n")


def _figure(value):
    """Two decimals for everyday magnitudes, significant digits for tiny or huge ones."""
    if value != 0 and (abs(value) < 0.1 or abs(value) >= 1e6):
        return f"{value:.3g}"
    return f"{value:.2f}"


def verdict(results, what, forecaster=None):
    """One sentence: how the RNN compares, or the likely reason it does not win."""
    labels = results["labels"]
    mse = {label: results["methods"][label]["mse"] for label in labels}
    rnn = mse[labels[0]]
    baselines = labels[1:]
    best = min(baselines, key=mse.get)
    persistence = results["persistence_label"]
    if rnn < mse[best]:
        who = "elman's" if forecaster is not None else "the RNN's"
        text = (f"{who} test MSE is {1 - rnn / mse[best]:.1%} below the best baseline's "
                f"({_short(best)})")
        if best != persistence:
            text += f" and {1 - rnn / mse[persistence]:.1%} below persistence's"
        return text
    beaten = [_short(label) for label in baselines if mse[label] <= rnn]
    return (f"{'elman' if forecaster is not None else 'the RNN'} does not beat "
            f"{' or '.join(beaten)} on these test {what}: " + likely_cause(results, forecaster))


def _short(label):
    return label.split(" (")[0].split(" on ")[0]


def likely_cause(results, forecaster=None):
    """Advice naming the most likely reason for a poor result, from what the data shows."""
    actual, low, high = results["actual"], results["train_low"], results["train_high"]
    outside = float(((actual > high) | (actual < low)).mean())
    if forecaster is not None:
        config = forecaster.config_
        transforms = config.get("transforms") or [config["transform"]]
        transform = " + ".join(transforms)
        mse = {label: results["methods"][label]["mse"] for label in results["labels"]}
        persistence = mse[results["persistence_label"]]
        linear = [value for label, value in mse.items() if label.startswith(("ridge", "linear"))]
        if linear and min(linear) >= persistence:
            return ("no linear model beats persistence either: the changes of this series "
                    "look unpredictable from its past (a random walk, as most prices are), "
                    "and persistence is then the forecast to match")
        if outside > 0.2 and not any("diff" in name for name in transforms):
            side = "above" if (actual > high).mean() >= (actual < low).mean() else "below"
            return (f"{outside:.0%} of the test values lie {side} the fitted range "
                    f"({low:.4g} to {high:.4g}), a trend the chosen transform "
                    f"({transform}) leaves in; model the changes: --transform diff (or "
                    "log_diff for a positive series that grows by a percentage)")
        if forecaster.fast:
            return "--fast skips the search; run without it"
        return (f"the search chose {'transform' if len(transforms) == 1 else 'transforms'} "
                f"{transform} on the validation part; try "
                "another --transform, or more rows of history")
    if outside > 0.2:
        side = "above" if (actual > high).mean() >= (actual < low).mean() else "below"
        return (f"{outside:.0%} of the test values lie {side} the training range "
                f"({low:.4g} to {high:.4g}), a trend or a level shift that a tanh network "
                "cannot extrapolate; model the changes instead: predict the differences "
                "of the target (its value minus the previous one) and add them back")
    if results["train_windows"] < 500:
        return (f"with {results['train_windows']} training windows the network may be "
                "undertrained; try more --epochs with a larger --patience")
    return "try more --epochs, another --lr or --hidden, or a longer --window"


def describe_forecast_run(out, table, features, target, horizon, weather, notes, test_start,
                          forecaster):
    missing = _describe_data(out, table, features, target)
    if missing:
        out.write(f"      {missing} missing values filled\n")
    for note in notes:
        out.write(f"      {note}\n")
    others = [name for name in features if name != target]
    if weather:
        out.write(f"task: predict tomorrow's tmax ({target}) from the days up to today "
                  f"({', '.join(features)})\n")
    else:
        inputs = target + (f" and {', '.join(others)}" if others else "")
        if horizon == 0:
            what = (f"{target} on each row from the rows before it and that row's "
                    f"{', '.join(others)} (an aligned target: horizon 0)")
        elif horizon == 1:
            what = f"{target} on the next row from the rows up to now ({inputs})"
        else:
            what = f"{target} {horizon} rows ahead, closed-loop, from the rows up to now"
        out.write(f"task: predict {what}\n")
    validation = max(5, int(round(0.2 * test_start)))
    out.write(f"split: fit on the first {test_start} rows (85%; the search validates on "
              f"the last {validation} of them), test on the last {len(table) - test_start} "
              f"(15%), never used for fitting or for any choice\n")
    given = {name: value for name, value in (
        ("window", forecaster.window), ("hidden", forecaster.hidden_size),
        ("lr", forecaster.lr), ("epochs", forecaster.epochs),
        ("transform", forecaster.transform)) if value is not None}
    mode = ("fast: one RNN, transform chosen on validation" if forecaster.fast
            else "automatic search on the validation part")
    if given:
        mode += "; given: " + ", ".join(f"{k} {v}" for k, v in given.items())
    out.write(f"model: elman.Forecaster (ridge autoregressions plus RNNs on their residuals, "
              f"averaged over the best transforms), "
              f"{mode}, seed {forecaster.seed}\n")
    out.flush()


def _part_summary(part):
    """One transform's linear part and RNNs, as words."""
    members = part["members"]
    hidden = sorted({m["hidden_size"] for m in members})
    windows = sorted({m["window"] for m in members})
    lrs = sorted({m["lr"] for m in members})
    rnn = (f"{len(members)} RNN{'s' if len(members) > 1 else ''} (window "
           f"{'/'.join(map(str, windows))}, hidden {'/'.join(map(str, hidden))}, lr "
           f"{'/'.join(f'{v:g}' for v in lrs)})")
    return (f"{part['transform']}: {part['lags']} lags (ridge penalty {part['penalty']:g}), "
            f"{rnn} weighted {part['alpha']:g}; validation MSE "
            f"{part['validation_mse']:.4g} (linear part alone "
            f"{part['linear_validation_mse']:.4g})")


def _write_errors(out, header, results, unit, unit2):
    """The table of test errors: a header line, then MSE and MAE of each method."""
    labels = results["labels"]
    width = max(len(header), *(len(label) + 2 for label in labels))
    mse_head = f"MSE{' (' + unit2 + ')' if unit2 else ''}"
    mae_head = f"MAE{' (' + unit + ')' if unit else ''}"
    out.write("\n")
    out.write(f"{header:<{width}}  {mse_head:>10}  {mae_head:>9}\n")
    for label in labels:
        method = results["methods"][label]
        out.write(f"  {label:<{width - 2}}  {_figure(method['mse']):>10}  "
                  f"{_figure(method['mae']):>9}\n")


def _search_summary(forecaster, fit_seconds):
    config = forecaster.config_
    parts = config.get("combination") or [config]
    season = config["season"]
    what = (f"transform {parts[0]['transform']}" if len(parts) == 1
            else f"the mean of {len(parts)} transforms")
    lines = [f"chosen: {what}, season {season if season else 'none'}; "
             f"{len(forecaster.search_)} candidates, fit {seconds(fit_seconds)}"]
    lines += [f"  {_part_summary(part)}" for part in parts]
    if len(parts) > 1:
        lines.append(f"  combined: validation MSE {config['validation_mse']:.4g}")
    return "\n".join(lines)


def report_forecast(out, forecaster, results, table, weather, args, fit_seconds):
    out.write(_search_summary(forecaster, fit_seconds) + "\n")
    rows = results["rows"]
    unit, unit2 = ("°F", "°F²") if weather else ("", "")
    what = "days" if weather else "rows"
    horizon = results["horizon"]
    ahead = "one step ahead" if horizon <= 1 else f"{horizon} steps ahead"
    header = f"test, {ahead}: {len(rows)} {what}, {span(table, rows)}"
    _write_errors(out, header, results, unit, unit2)
    if "coverage" in results:
        out.write(f"{results['interval']:.0%} interval: covers {results['coverage']:.1%} of "
                  f"the test {what} one step ahead\n")
    backtest = results["backtest"]
    if backtest is not None:
        _closed_loop_table(out, backtest, what, results["season"],
                           results.get("closed_loop_seasonal_naive"))
    out.write(verdict(results, what, forecaster) + "\n")


def _closed_loop_table(out, backtest, what, season, seasonal_naive):
    last = int(backtest.horizons[-1])
    shown = sorted({h for h in (1, 2, 3, 6, 12, 24, 52) if h <= last} | {last})
    index = [h - 1 for h in shown]
    rows = [("elman Forecaster", backtest.mse)]
    if seasonal_naive is None:  # no season: persistence is the baseline
        against = "persistence"
        out.write("\nclosed loop from every test origin (forecasts fed back), MSE by horizon "
                  "(no season, so against persistence):\n")
    else:
        against = "seasonal naive"
        rows.append(("seasonal naive", seasonal_naive))
        out.write(f"\nclosed loop from every test origin (forecasts fed back), MSE by horizon "
                  f"(seasonal naive: {season} {what} back):\n")
    rows.append(("persistence", backtest.persistence_mse))
    label_width = 16
    out.write(f"  {'horizon':<{label_width}}" + "".join(f"{h:>10}" for h in shown) + "\n")
    for label, values in rows:
        out.write(f"  {label:<{label_width}}"
                  + "".join(f"{_figure(values[i]):>10}" for i in index) + "\n")
    if backtest.coverage is not None:
        out.write(f"  {f'{backtest.interval:.0%} coverage':<{label_width}}"
                  + "".join(f"{backtest.coverage[i]:>10.1%}" for i in index) + "\n")
    baseline = backtest.persistence_mse if seasonal_naive is None else seasonal_naive
    wins = int(np.sum(backtest.mse < baseline))
    out.write(f"  elman beats {against} at {wins} of {last} horizons\n")
