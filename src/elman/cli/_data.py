"""From a CSV (or the bundled data) to scaled training windows split by time."""

import numpy as np

from elman.cli._common import CLIError, opening
from elman.cli._parser import ALL_FEATURES, WEATHER_FEATURES, WEATHER_TARGET

SPLIT = (0.7, 0.15, 0.15)


class Table:
    """Columns of a loaded CSV (or the bundled data), with dates and a description."""

    def __init__(self, dataset, source, bundled):
        self.dataset = dataset
        self.source = source
        self.bundled = bundled

    @property
    def dates(self):
        return self.dataset.dates

    def date_text(self, row):
        """Row ``row``'s date as the file writes it (quarters as 1959Q1), or None."""
        if self.dates is None:
            return None
        if not hasattr(self, "_labels"):
            from elman.datasets._dates import format_dates

            self._labels = format_dates(self.dates)
        return self._labels[row]

    def __len__(self):
        return len(self.dataset)

    def column(self, name):
        return self.dataset[name]


def reading_options(args):
    """load_csv's keyword arguments from --date-column, --delimiter and --fill."""
    date_column = args.date_column
    if date_column is None:
        date_column = "auto"
    elif date_column.strip().lower() == "none":
        date_column = None
    return {"date_column": date_column, "delimiter": args.delimiter or "auto",
            "fill": None if args.fill == "none" else args.fill}


def load_table(path, columns, options, skip_text=False):
    """The bundled weather data (path None) or a CSV, as a Table; CLIError on failure."""
    from elman.datasets import load_csv, load_weather

    if path is None:
        return Table(load_weather(), "the bundled weather data (NOAA daily, one US station)",
                     bundled=True)
    try:
        with opening(path, "a CSV file"):
            dataset = load_csv(path, columns=columns, skip_text=skip_text, **options)
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path}: not a UTF-8 text file ({exc.reason} at byte "
                       f"{exc.start})") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise CLIError(str(exc)) from None
    if options.get("fill") is None and dataset.missing.any():
        rows, cols = np.nonzero(dataset.missing)
        raise CLIError(f"{path}: column {dataset.columns[cols[0]]!r} has "
                       f"{int(dataset.missing[:, cols[0]].sum())} missing values (the first "
                       f"in data row {rows[0] + 1}); choose --fill ffill or --fill linear")
    return Table(dataset, path, bundled=False)


def resolve_columns(args):
    """(target, features or ALL_FEATURES, columns to read or None) from fit's arguments."""
    if args.csv is None:
        target = args.target or WEATHER_TARGET
        features = args.features or list(WEATHER_FEATURES)
    else:
        if args.target is None:
            raise CLIError(f"--target is required with a CSV file: name the column of "
                           f"{args.csv} to predict")
        target = args.target
        features = args.features or [target]
    if features == ALL_FEATURES:
        return target, features, None
    if len(set(features)) != len(features):
        repeated = next(f for f in features if features.count(f) > 1)
        raise CLIError(f"--features names {repeated!r} twice")
    columns = list(features) + ([] if target in features else [target])
    return target, features, columns


def all_features(table, target):
    """--features all: every numeric column but year-like ones; (features, notes)."""
    from elman.datasets._dates import is_year_name

    notes = []
    if table.dataset.skipped:
        notes.append(f"skipped text column{'s' if len(table.dataset.skipped) > 1 else ''} "
                     f"{', '.join(table.dataset.skipped)} (not numbers)")
    years = [name for name in table.dataset.columns if is_year_name(name) and name != target]
    if years:
        notes.append(f"left out {', '.join(years)}: named like a year, a calendar "
                     "position rather than an input")
    features = [name for name in table.dataset.columns if name not in years]
    return features, notes


def check_names_present(table, names, what):
    for name in names:
        if name not in table.dataset.columns:
            raise CLIError(f"{table.source}: unknown {what} {name!r}; the numeric columns "
                           f"are: {', '.join(table.dataset.columns)}")


class Windows:
    """Windows of the scaled inputs, their targets and their split by time.

    A window of rows ``r - window + 1 .. r`` predicts the target on row ``r + horizon``
    and belongs to the part (70/15/15 train/validation/test) of the row it predicts.
    Both scalers are fitted on the training rows only.
    """

    def __init__(self, table, features, target, window, horizon, many_to_many):
        from elman.preprocessing import (
            StandardScaler,
            sliding_windows,
            train_val_test_split,
        )

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
        self.window = window
        self.horizon = horizon


def last_step(outputs):
    """(n, 1) predictions of the last step, from a many-to-many or many-to-one model."""
    return outputs[:, -1, :] if outputs.ndim == 3 else outputs


def test_start_row(table):
    """The first test row: the last 15% of the rows are the test part (as in SPLIT)."""
    from elman.preprocessing import train_val_test_split

    n = len(table)
    try:
        train, validation, _ = train_val_test_split(np.arange(n), fractions=SPLIT)
    except ValueError as exc:  # too few rows for three non-empty parts
        raise CLIError(f"{table.source}: {exc}") from None
    return len(train) + len(validation)
