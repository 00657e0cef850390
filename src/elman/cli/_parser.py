"""The arguments of ``elman fit``, ``elman predict`` and ``elman info``."""

import argparse
import math

from elman._version import __version__
from elman.cli._common import PLOT_HINT

# Defaults of the single-RNN `elman fit` (--layers, --many-to-one, --batch-size or
# --patience), tuned on the bundled weather data (see the README).
DEFAULT_WINDOW = 7
DEFAULT_HIDDEN = 16
DEFAULT_LAYERS = 1
DEFAULT_EPOCHS = 40
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 0.002
DEFAULT_PATIENCE = 5
DEFAULT_SEED = 0

WEATHER_TARGET = "tmax_tomorrow"
WEATHER_FEATURES = ("tmax", "tmin", "rain")
FILLS = ("ffill", "linear", "none")
ALL_FEATURES = "all"
TRANSFORM_NAMES = ("none", "diff", "seasonal_diff", "log", "log_diff", "log_seasonal_diff")


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


def _features(text):
    if text.strip().lower() == ALL_FEATURES:
        return ALL_FEATURES
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected 'all' or comma-separated column names such as tmax,tmin; got {text!r}")
    return names


def _level(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a level such as 0.9, got {text!r}") \
            from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def _delimiter(text):
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|",
             "space": " "}
    value = named.get(text.lower(), text)
    if len(value) != 1:
        raise argparse.ArgumentTypeError(
            f"expected one character (or tab, comma, semicolon, pipe, space); got {text!r}")
    return value


def _add_reading_options(parser):
    reading = parser.add_argument_group("reading the CSV")
    reading.add_argument("--date-column", default=None, metavar="COL",
                         help="the column of dates (default: detected; dates such as "
                              "2020-01-31, 2020-01-31 12:00, months 1949-01, quarters "
                              "1959Q1, or a column of years headed year/YEAR/yr; 'none' "
                              "for no dates)")
    reading.add_argument("--delimiter", type=_delimiter, default=None, metavar="CHAR",
                         help="field separator (default: sniffed among , ; tab |)")
    reading.add_argument("--fill", choices=FILLS, default="ffill",
                         help="missing values: copy the last value above (ffill, the "
                              "default), a straight line across the gap (linear), or stop "
                              "with an error (none)")


def build_parser() -> argparse.ArgumentParser:
    """The ``elman`` argument parser (``fit``, ``predict``, ``info`` and ``--version``)."""
    parser = argparse.ArgumentParser(
        prog="elman",
        description="Vanilla (Elman) RNNs for time series: train, predict, inspect.",
        epilog="Run `elman fit` with no arguments for the bundled weather example.",
    )
    parser.add_argument("--version", action="version", version=f"elman {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{fit,predict,info}")

    fit = commands.add_parser(
        "fit", help="train a model on a CSV file (default: the bundled weather data)",
        description=(
            "Fit elman.Forecaster (a ridge autoregression plus an ensemble of RNNs, its "
            "transform, window, size and learning rate chosen on a validation part) on "
            "the first 85% of the rows of a CSV file and report its error on the last "
            "15% beside persistence, seasonal naive, a ridge autoregression and a linear "
            "regression, one step ahead and closed-loop. Without CSV: the bundled "
            "weather data (predict tomorrow's tmax from tmax, tmin and rain)."))
    fit.add_argument("csv", nargs="?", default=None,
                     help="CSV file with a header row; a date column is detected "
                          "(default: the bundled weather data)")
    fit.add_argument("--target", default=None,
                     help="column to predict (required with a CSV; bundled data: "
                          f"{WEATHER_TARGET})")
    fit.add_argument("--features", type=_features, default=None, metavar="A,B,...|all",
                     help="input columns (default: the target alone; 'all': every numeric "
                          "column but the dates and year columns, text columns skipped; "
                          "bundled data: " + ",".join(WEATHER_FEATURES) + ")")
    fit.add_argument("--horizon", type=_int_at_least(0), default=None,
                     help="the rows up to r predict the target on row r + horizon "
                          "(default: 1 if the target is an input, else 0: the target "
                          "column is already aligned, its row r to be predicted from the "
                          "inputs up to row r)")
    model = fit.add_argument_group(
        "the model (each option given replaces that part of the automatic search)")
    model.add_argument("--window", type=_int_at_least(1), default=None,
                       help="rows each RNN is warmed up on (default: searched, "
                            "season-aware)")
    model.add_argument("--hidden", type=_int_at_least(1), default=None,
                       help="hidden units of each RNN (default: searched among 8 and 16)")
    model.add_argument("--lr", type=_positive_float, default=None,
                       help="Adam's learning rate (default: searched among 0.01 and 0.003)")
    model.add_argument("--epochs", type=_int_at_least(1), default=None,
                       help="epochs per RNN (default: about 3000 updates scaled to the "
                            "data, with early stopping)")
    model.add_argument("--transform", choices=TRANSFORM_NAMES, default=None,
                       help="make the target stationary first: differences (diff), "
                            "differences a season apart (seasonal_diff), or either on the "
                            "logarithm (default: chosen on the validation part)")
    model.add_argument("--interval", type=_level, default=None, metavar="LEVEL",
                       help="also give prediction intervals at this level (e.g. 0.9) "
                            "and their coverage on the test rows")
    model.add_argument("--fast", action="store_true",
                       help="skip the search: one RNN of 16 units (the transform is still "
                            "chosen)")
    model.add_argument("--seed", type=_int_at_least(0), default=DEFAULT_SEED,
                       help="seed of the initial weights and the shuffling (default "
                            "%(default)s)")
    single = fit.add_argument_group(
        "a single RNN instead of the forecaster (any of these selects it)")
    single.add_argument("--layers", type=_int_at_least(1), default=None,
                        help=f"stacked recurrent layers (default {DEFAULT_LAYERS})")
    single.add_argument("--many-to-one", action="store_true",
                        help="train on the last step's target only (default: a target "
                             "after every step)")
    single.add_argument("--batch-size", type=_int_at_least(1), default=None,
                        help=f"windows per update (default {DEFAULT_BATCH_SIZE})")
    single.add_argument("--patience", type=_int_at_least(0), default=None,
                        help="stop after this many epochs without a better validation "
                             f"loss, keeping the best epoch (default {DEFAULT_PATIENCE}; 0: "
                             "no early stopping)")
    fit.add_argument("--out", default=None, metavar="MODEL.npz",
                     help="save the model, with what `elman predict` needs, to this file")
    fit.add_argument("--plot", default=None, metavar="OUT.png",
                     help="draw the test period, the loss curves and the gradient flow "
                          "(.png, .pdf, .svg, ...; needs matplotlib: "
                          f"{PLOT_HINT})".replace("%", "%%"))
    fit.add_argument("-q", "--quiet", action="store_true",
                     help="no progress lines (the search stages, or the progress bar)")
    _add_reading_options(fit)

    predict = commands.add_parser(
        "predict", help="predict with a model saved by `elman fit --out`",
        description=(
            "Write one prediction per row of the CSV that has enough history (and, with "
            "--steps, closed-loop forecasts after its end) as CSV. Columns: the date (or "
            "row number), the target's actual value when the file has it, with "
            "--interval the interval's lower and upper bounds, and the prediction last."))
    predict.add_argument("model", help="model file written by `elman fit --out`")
    predict.add_argument("csv", nargs="?", default=None,
                         help="CSV with the model's input columns (default: the bundled "
                              "weather data)")
    predict.add_argument("--steps", type=_int_at_least(1), default=None,
                         help="also forecast this many rows after the end of the data, "
                              "feeding each prediction back as the next input, the rule "
                              "Forecaster.predict uses (needs a model whose only input is "
                              "its target, horizon 1); dated by the calendar (months keep "
                              "their day of the month)")
    predict.add_argument("--interval", type=_level, default=None, metavar="LEVEL",
                         help="also write the bounds of a prediction interval at this "
                              "level (e.g. 0.9), as columns <target>_lower and "
                              "<target>_upper just before the prediction, which stays last "
                              "(models saved by the forecaster)")
    predict.add_argument("--output", "-o", default=None, metavar="OUT.csv",
                         help="write here instead of to stdout")
    _add_reading_options(predict)

    commands.add_parser("info", help="version, backend and build of this installation",
                        description="Show the version, the kernel backend in use and how "
                                    "the compiled module was built.")
    return parser
