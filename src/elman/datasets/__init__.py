"""Bundled data, a CSV reader and synthetic series, all without pandas.

Contents
--------
load_weather
    Daily weather observations for one US station (NOAA GHCN-Daily, public domain),
    1970-01-01 to 2022-11-26, 13,509 rows, shipped inside the package.
load_csv
    Read a user's CSV of numbers (plus an optional date column) into a
    :class:`Dataset`, with one-line errors that name the column and the line.
ar2, sine_walk_seasonal
    Synthetic series the tutorials use, reproducible from a seed.
Dataset
    What the two loaders return: ``.data`` (float64, ``(n_rows, n_columns)``),
    ``.columns`` (names), ``.dates`` (``datetime64`` or ``None``) and
    ``.missing`` (where a value was missing before filling).

Examples
--------
>>> from elman.datasets import load_weather
>>> weather = load_weather()
>>> weather.columns
('tmax', 'tmin', 'rain', 'tmax_tomorrow')
>>> features = weather[["tmax", "tmin", "rain"]]   # (13509, 3) float64
>>> target = weather["tmax_tomorrow"]              # (13509,)  float64

Missing values
--------------
``fill="ffill"`` (the default) replaces a missing value with the last value seen
above it in the same column. A column that *starts* with missing values has
nothing above them to copy, so those leading values are back-filled from the
column's first present value (no made-up zeros). ``fill=None`` leaves them NaN.
Either way ``Dataset.missing`` records which values were missing in the file.
"""

import csv
import gzip
import io
import math
import operator
import os
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["Dataset", "load_weather", "load_csv", "ar2", "sine_walk_seasonal"]

WEATHER_FILE = "clean_weather.csv.gz"
# sha256 of the *uncompressed* clean_weather.csv. The bundled file is
#   gzip.compress(raw_bytes, compresslevel=9, mtime=0)
# so rebuilding it from the same CSV gives the same bytes.
WEATHER_SHA256 = "70d75ac02ccf0c0f45aed0077919fee302c6428b9f3c3401aadf090b0f6dfc8c"
WEATHER_COLUMNS = ("tmax", "tmin", "rain", "tmax_tomorrow")

# Cell values read as "missing" (compared after strip() and lower()).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"})

# Header names that mark a non-numeric column as the date column in "auto" mode.
_DATE_NAMES = frozenset({"date", "datetime", "time", "timestamp", "ds"})
# YYYY-MM-DD, optionally followed by a time: how "auto" recognises a date by its value.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d*)?)?)?)?$")

_FILLS = ("ffill", None)


class _UnknownColumnError(KeyError, ValueError):
    """A column name that is not there: a KeyError for ``dataset[name]``, a ValueError too."""

    def __str__(self):
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0])


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A table of float64 columns, with optional dates: what the loaders return.

    Parameters
    ----------
    data : ndarray of float64, shape (n_rows, n_columns)
        The values, one column per name in `columns`, rows in file order (for the
        loaders: oldest first). After ``fill="ffill"`` it holds no NaN.
    columns : tuple of str, length n_columns
        The column names, in the order of ``data``'s columns.
    dates : ndarray of datetime64, shape (n_rows,), or None
        The date of each row (``datetime64[D]`` for plain dates), or None when the
        source had no date column.
    missing : ndarray of bool, shape (n_rows, n_columns)
        True where the source had no value (before any filling).

    Notes
    -----
    The fields cannot be rebound (the dataclass is frozen), but the arrays are
    ordinary writable arrays owned by this object; each loader call makes new ones.

    ``dataset[name]`` returns one column, shape (n_rows,), as a view of ``data``;
    ``dataset[[name, ...]]`` returns a new array of shape (n_rows, k) with the
    columns in the order asked for. ``name in dataset`` tests for a column and
    ``len(dataset)`` is the number of rows.

    Examples
    --------
    >>> ds = Dataset(np.array([[1.0, 10.0], [2.0, 20.0]]), ("a", "b"))
    >>> ds["b"]
    array([10., 20.])
    >>> ds[["b", "a"]].shape
    (2, 2)
    """

    data: np.ndarray
    columns: tuple
    dates: np.ndarray = None
    missing: np.ndarray = None

    def __post_init__(self):
        data = self.data
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.dtype != np.float64:
            raise TypeError(
                "Dataset data must be a 2-D float64 ndarray (n_rows, n_columns); got "
                f"{_describe(data)}"
            )
        columns = tuple(self.columns)
        if not all(isinstance(name, str) for name in columns):
            raise TypeError(f"Dataset columns must be strings; got {columns!r}")
        if len(columns) != data.shape[1]:
            raise ValueError(
                f"Dataset has {len(columns)} column names {columns!r} but data has "
                f"{data.shape[1]} columns (shape {data.shape})"
            )
        if len(set(columns)) != len(columns):
            raise ValueError(f"Dataset column names must be unique; got {columns!r}")
        object.__setattr__(self, "columns", columns)
        if self.dates is not None:
            dates = self.dates
            if not isinstance(dates, np.ndarray) or dates.dtype.kind != "M" or dates.ndim != 1:
                raise TypeError(
                    "Dataset dates must be a 1-D datetime64 ndarray or None; got "
                    f"{_describe(dates)}"
                )
            if len(dates) != len(data):
                raise ValueError(
                    f"Dataset dates has {len(dates)} entries but data has {len(data)} rows"
                )
        missing = self.missing
        if missing is None:
            missing = np.isnan(data)
        elif (
            not isinstance(missing, np.ndarray)
            or missing.dtype != bool
            or missing.shape != data.shape
        ):
            raise TypeError(
                f"Dataset missing must be a bool ndarray of shape {data.shape}; got "
                f"{_describe(missing)}"
            )
        object.__setattr__(self, "missing", missing)

    def __len__(self):
        return self.data.shape[0]

    def __contains__(self, name):
        return name in self.columns

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.data[:, self._index(key)]
        if isinstance(key, (list, tuple)) and all(isinstance(k, str) for k in key):
            return self.data[:, [self._index(k) for k in key]]
        raise TypeError(
            "Dataset columns are selected by name (a str) or by a list of names; got "
            f"{key!r}. For rows or positions, index dataset.data instead."
        )

    def _index(self, name):
        try:
            return self.columns.index(name)
        except ValueError:
            raise _UnknownColumnError(
                f"unknown column {name!r}; the columns are: {', '.join(self.columns)}"
            ) from None

    def frame(self):
        """Return the data as a pandas DataFrame (needs pandas, which elman does not).

        Returns
        -------
        pandas.DataFrame, shape (n_rows, n_columns)
            A copy of ``data`` with ``columns`` as column labels, indexed by a
            ``DatetimeIndex`` named ``"date"`` when there are dates, else by row number.

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Dataset.frame() needs pandas, which is not installed (pip install pandas); "
                "without it use .data, .columns and .dates"
            ) from None
        index = None if self.dates is None else pd.DatetimeIndex(self.dates, name="date")
        return pd.DataFrame(self.data.copy(), columns=list(self.columns), index=index)

    def __repr__(self):
        parts = [f"{len(self)} rows", f"columns={self.columns!r}"]
        if self.dates is not None and len(self.dates):
            parts.append(f"dates {self.dates[0]} to {self.dates[-1]}")
        n_missing = int(self.missing.sum())
        if n_missing:
            still = int(np.isnan(self.data).sum())
            parts.append(f"{n_missing} missing values ({n_missing - still} filled)")
        return f"Dataset({', '.join(parts)})"


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"ndarray of {value.dtype} with shape {value.shape}"
    return type(value).__name__


# --------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------


def load_weather(fill="ffill"):
    """Load the bundled daily weather series (NOAA GHCN-Daily, one US station).

    13,509 daily rows from 1970-01-01 to 2022-11-26, oldest first: ``tmax`` and
    ``tmin`` (°F), ``rain`` (inches) and ``tmax_tomorrow`` (°F, the next row's
    ``tmax``: the usual target). US government weather records are public domain.

    Parameters
    ----------
    fill : {"ffill", None}, default "ffill"
        How missing values are handled. ``"ffill"`` copies the last value above
        (leading gaps, if any, take the column's first value); None leaves NaN.

    Returns
    -------
    Dataset
        ``data`` of shape (13509, 4), ``columns == ("tmax", "tmin", "rain",
        "tmax_tomorrow")``, ``dates`` of dtype ``datetime64[D]``, shape (13509,).

    Notes
    -----
    The file has 317 missing values in 306 rows: ``rain`` 281, ``tmin`` 14,
    ``tmax`` 11 and ``tmax_tomorrow`` 11; 298 rows miss at least one of ``tmax``,
    ``tmin`` and ``rain``. After forward filling, ``tmax_tomorrow[i] ==
    tmax[i + 1]`` still holds for every row but the last.

    The rows are consecutive days except for four gaps, two of them long:
    1981-01-01 to 1983-06-30 and 1986-08-01 to 1999-12-31 are absent (as are
    2000-08-02 and 2012-02-28). ``tmax_tomorrow`` on the day before a gap is the
    ``tmax`` of the day after it, as in the tutorials that use this file.

    The package ships the CSV gzip-compressed; the uncompressed file's sha256 is
    ``70d75ac02ccf0c0f45aed0077919fee302c6428b9f3c3401aadf090b0f6dfc8c``.

    Examples
    --------
    >>> weather = load_weather()
    >>> len(weather), str(weather.dates[0]), str(weather.dates[-1])
    (13509, '1970-01-01', '2022-11-26')
    >>> int(load_weather(fill=None).missing[:, 2].sum())   # rain values missing
    281
    """
    _check_fill(fill)
    resource = resources.files(__name__).joinpath(WEATHER_FILE)
    with resource.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
        text = io.TextIOWrapper(unzipped, encoding="utf-8", newline="")
        return _read_csv(
            text,
            source=WEATHER_FILE,
            columns=WEATHER_COLUMNS,
            date_column="auto",
            fill=fill,
            delimiter=",",
        )


def load_csv(path, *, columns=None, date_column="auto", fill="ffill", delimiter=","):
    """Read a CSV file of numeric columns (and an optional date column).

    Parsed with the standard library's ``csv`` module and NumPy; nothing in the file
    is ever evaluated. The first non-blank line is the header; blank lines are
    skipped. ``.gz`` files are decompressed.

    Parameters
    ----------
    path : str, os.PathLike or file object
        The file to read, as UTF-8. A path ending in ``.gz`` is read through gzip.
        An open file (text opened with ``newline=""``, or binary) is read from its
        current position.
    columns : sequence of str, str or None, default None
        The columns to read, in the order wanted. None reads every column except
        the date column and unnamed columns (an unnamed column is usually a row
        number written by ``DataFrame.to_csv``; it can still be asked for by its
        name ``"unnamed_<position>"``, position counted from 0). Columns not asked
        for are not parsed, so they may hold text.
    date_column : "auto", str or None, default "auto"
        The column holding ISO 8601 dates (``2020-01-31``, optionally with a time,
        ``2020-01-31 12:00``). ``"auto"`` picks the first column whose first value
        is not a number and is either such a date or headed ``date``, ``datetime``,
        ``time``, ``timestamp`` or ``ds`` (any case); if there is none, the data
        has no dates. A name uses that column; None means no date column. Every
        value in the date column must parse.
    fill : {"ffill", None}, default "ffill"
        ``"ffill"`` replaces a missing value with the last value above it in its
        column, and back-fills leading missing values from the column's first
        value; None leaves NaN. Missing means an empty cell or one of ``NA``,
        ``N/A``, ``NaN``, ``null``, ``None``, ``#N/A``, ``<NA>`` (any case).
    delimiter : str, default ","
        The field separator (one character), e.g. ``";"`` or ``"\\t"``.

    Returns
    -------
    Dataset
        ``data`` of shape (n_rows, n_columns) float64, ``columns`` as read,
        ``dates`` of shape (n_rows,) (``datetime64[D]`` for plain dates, a finer
        unit if the file has times) or None, and ``missing``.

    Raises
    ------
    ValueError
        With a one-line message naming the file, and the line and column where
        there is one: an empty file or one with no data rows; a row whose number
        of fields differs from the header's; an unknown column name or a repeated
        one; a value that is not a number in a numeric column; an infinite value;
        a date that does not parse, is empty, or is earlier than the row above it
        (rows must be oldest first); with ``fill="ffill"``, a column with no values.
    TypeError
        For arguments of the wrong type.

    Examples
    --------
    >>> ds = load_csv("prices.csv", columns=["open", "close"])   # doctest: +SKIP
    >>> ds.data.shape, ds.dates.dtype                            # doctest: +SKIP
    ((250, 2), dtype('<M8[D]'))
    """
    _check_fill(fill)
    if isinstance(columns, str):
        columns = (columns,)
    elif columns is not None:
        try:
            columns = tuple(columns)
        except TypeError:
            raise TypeError(
                f"columns must be a sequence of column names or None; got {type(columns).__name__}"
            ) from None
        bad = [c for c in columns if not isinstance(c, str)]
        if bad:
            raise TypeError(f"columns must be names (str); got {bad[0]!r} in {columns!r}")
        if not columns:
            raise ValueError("columns must name at least one column; got an empty sequence")
    if date_column is not None and not isinstance(date_column, str):
        raise TypeError(
            f'date_column must be "auto", a column name or None; got {type(date_column).__name__}'
        )
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise TypeError(f"delimiter must be a single character; got {delimiter!r}")

    if hasattr(path, "read"):
        source = getattr(path, "name", None) or "<file>"
        return _read_csv(
            path,
            os.fspath(source) if isinstance(source, os.PathLike) else str(source),
            columns,
            date_column,
            fill,
            delimiter,
        )
    try:
        filename = os.fspath(path)
    except TypeError:
        raise TypeError(
            f"path must be a str, an os.PathLike or a text file object; got {type(path).__name__}"
        ) from None
    if isinstance(filename, bytes):
        filename = os.fsdecode(filename)
    source = os.path.basename(filename) or filename
    if filename.endswith(".gz"):
        opener = gzip.open(filename, "rt", encoding="utf-8-sig", newline="")
    else:
        opener = open(filename, encoding="utf-8-sig", newline="")
    with opener as stream:
        return _read_csv(stream, source, columns, date_column, fill, delimiter)


def _check_fill(fill):
    if fill not in _FILLS:
        raise ValueError(f'fill must be "ffill" or None; got {fill!r}')


def _read_csv(stream, source, columns, date_column, fill, delimiter):
    try:
        text = stream.read()
        if isinstance(text, bytes):  # a file opened in binary mode
            text = text.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark, from a stream not opened as utf-8-sig
        text = text[1:]
    records, lines = _split_records(text, delimiter, source)

    # Blank lines come out as empty records; the first non-blank one is the header.
    if not all(records):
        kept = [i for i, record in enumerate(records) if record]
        records = [records[i] for i in kept]
        lines = [lines[i] for i in kept]
    if not records:
        raise ValueError(f"{source} is empty: expected a header line naming the columns")
    header, header_line = records[0], lines[0]
    rows, lines = records[1:], lines[1:]
    if not rows:
        raise ValueError(f"{source} has a header (line {header_line}) but no data rows")
    width = len(header)
    if any(len(row) != width for row in rows):
        i = next(i for i, row in enumerate(rows) if len(row) != width)
        raise ValueError(
            f"{source}, line {lines[i]}: {len(rows[i])} fields, expected {width} "
            f"as in the header on line {header_line}"
        )

    names = [name.strip() for name in header]
    unnamed = {j for j, name in enumerate(names) if not name}
    for j in unnamed:
        names[j] = f"unnamed_{j}"
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(
                f"{source}, line {header_line}: the header repeats column name {name!r}"
            )
        seen.add(name)

    def index_of(name, what):
        try:
            return names.index(name)
        except ValueError:
            raise ValueError(
                f"{source}: unknown {what} {name!r}; the header on line {header_line} has: "
                f"{', '.join(names)}"
            ) from None

    # Which column holds the dates.
    if date_column is None:
        date_index = None
    elif date_column == "auto":
        date_index = None
        for j, name in enumerate(names):
            # The column's first present value (almost always the first row's).
            value = next(
                (
                    cell
                    for cell in (row[j].strip() for row in rows)
                    if cell.lower() not in MISSING_TOKENS
                ),
                "",
            )
            if _is_number_or_missing(value):
                continue
            if _ISO_DATE.match(value) or name.lower() in _DATE_NAMES:
                date_index = j
                break
    else:
        date_index = index_of(date_column, "date column")

    # Which columns are read as numbers.
    if columns is None:
        feature_indices = [j for j in range(width) if j != date_index and j not in unnamed]
        if not feature_indices:
            raise ValueError(
                f"{source}: no numeric columns to read; the header on line {header_line} has: "
                f"{', '.join(names)}"
            )
    else:
        if len(set(columns)) != len(columns):
            repeated = next(c for c in columns if columns.count(c) > 1)
            raise ValueError(f"columns lists {repeated!r} more than once: {columns!r}")
        feature_indices = [index_of(name, "column") for name in columns]
        if date_index is not None and date_index in feature_indices:
            raise ValueError(
                f"{source}: column {names[date_index]!r} is the date column and cannot also be "
                "read as numbers; pass date_column=None (or another name) to read it as numbers"
            )

    cells = list(zip(*rows))  # one tuple of strings per column
    data = np.empty((len(rows), len(feature_indices)), dtype=np.float64)
    for k, j in enumerate(feature_indices):
        data[:, k] = _parse_numbers(cells[j], names[j], lines, source)

    dates = None
    if date_index is not None:
        dates = _parse_dates(
            cells[date_index], names[date_index], lines, source, guessed=date_column == "auto"
        )

    missing = np.isnan(data)
    if fill == "ffill" and missing.any():
        _forward_fill(data, missing, [names[j] for j in feature_indices], source)
    return Dataset(data, tuple(names[j] for j in feature_indices), dates, missing)


def _split_records(text, delimiter, source):
    """CSV text -> (records, line number on which each record ends)."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        records = list(reader)
    except csv.Error as exc:
        raise ValueError(f"{source}, line {reader.line_num}: malformed CSV ({exc})") from None
    if reader.line_num == len(records):
        # One record per line (the usual case): record i is on line i + 1.
        return records, range(1, len(records) + 1)
    # Some quoted field spans lines: read again, noting where each record ends.
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    lines = [reader.line_num for _ in reader]
    return records, lines


def _is_number_or_missing(text):
    if text.lower() in MISSING_TOKENS:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_numbers(values, name, lines, source):
    """Strings -> float64 column; NaN for missing tokens; ValueError naming the line."""
    # Fast path: every cell is a number (NumPy calls float() on each) or empty.
    if "" in values:
        values = [text or "nan" for text in values]
    try:
        column = np.array(values, dtype=np.float64)
    except ValueError:
        column = None
    if column is None:
        column = np.empty(len(values), dtype=np.float64)
        for i, text in enumerate(values):
            try:
                column[i] = float(text)
            except ValueError:
                if text.strip().lower() in MISSING_TOKENS:
                    column[i] = np.nan
                else:
                    raise ValueError(
                        f"{source}, line {lines[i]}: column {name!r} is not numeric "
                        f"(found {text!r})"
                    ) from None
    infinite = np.isinf(column)
    if infinite.any():
        i = int(np.argmax(infinite))
        raise ValueError(
            f"{source}, line {lines[i]}: column {name!r} has an infinite value ({values[i]!r})"
        )
    return column


def _parse_dates(values, name, lines, source, guessed=False):
    # Plain YYYY-MM-DD dates parse several times faster with the unit given; NumPy
    # would silently truncate a time to [D], hence the length check.
    unit = "datetime64[D]" if all(len(text) == 10 for text in values) else "datetime64"
    try:
        dates = np.array(values, dtype=unit)
    except ValueError:
        dates = None
    if dates is None:
        values = [text.strip() for text in values]
        try:
            dates = np.array(values, dtype="datetime64")
        except ValueError:
            dates = None
    if dates is None or np.isnat(dates).any():
        # Find the first offending cell for the message ("" and "NaT" parse as NaT).
        for i, text in enumerate(values):
            try:
                bad = np.isnat(np.datetime64(text))
            except ValueError:
                bad = True
            if bad:
                found = f"found {text!r}" if text else "it is empty"
                hint = "; pass date_column=None if it holds no dates" if guessed else ""
                raise ValueError(
                    f"{source}, line {lines[i]}: date column {name!r} needs an ISO 8601 date "
                    f"such as 2020-01-31 ({found}){hint}"
                )
        if dates is None:  # every cell parses alone but not together (mixed forms)
            raise ValueError(
                f"{source}: date column {name!r} mixes date forms NumPy cannot read together; "
                "use ISO 8601 dates such as 2020-01-31 throughout"
            )
    if len(dates) > 1:
        earlier = dates[1:] < dates[:-1]
        if earlier.any():
            i = int(np.argmax(earlier)) + 1
            raise ValueError(
                f"{source}, line {lines[i]}: date {values[i]} in column {name!r} is earlier "
                f"than {values[i - 1]} on line {lines[i - 1]}; rows must be oldest first"
            )
    return dates


def _forward_fill(data, missing, names, source):
    """Fill NaN in place from above, and leading NaN from the first value below."""
    n = data.shape[0]
    rows = np.arange(n)
    for k in range(data.shape[1]):
        gaps = missing[:, k]
        if not gaps.any():
            continue
        if gaps.all():
            raise ValueError(
                f"{source}: column {names[k]!r} has no values to fill from "
                f"(all {n} rows are missing); drop it or pass fill=None"
            )
        # Index of the last present value at or above each row.
        last_present = np.maximum.accumulate(np.where(gaps, -1, rows))
        first_present = int(np.argmax(~gaps))
        last_present[last_present < 0] = first_present
        data[:, k] = data[last_present, k]


# --------------------------------------------------------------------------------------
# Synthetic series
# --------------------------------------------------------------------------------------


def _check_length(n):
    if isinstance(n, bool):
        raise TypeError(f"n must be an integer; got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be an integer; got {n!r} ({type(n).__name__})") from None
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    return n


def _check_real(name, value, *, positive=False, nonnegative=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0; got {value!r}")
    return value


def ar2(n, seed=None, *, coefficients=(0.7, 0.2), noise_sd=0.5, start=(20.0, 21.0)):
    """Generate an AR(2) series: ``x[t] = 0.7 x[t-1] + 0.2 x[t-2] + e[t]``.

    Starts at ``x[0] = 20``, ``x[1] = 21``; the innovations ``e[t]`` are normal with
    standard deviation 0.5. As 0.7 + 0.2 < 1 the process is stationary with mean 0,
    so the series decays from its start towards 0 over the first few dozen steps.

    Parameters
    ----------
    n : int >= 0
        Length of the series.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Passed to ``numpy.random.default_rng``; the same seed gives the same series.
    coefficients : (float, float), default (0.7, 0.2)
        ``(a1, a2)`` in ``x[t] = a1 x[t-1] + a2 x[t-2] + e[t]``.
    noise_sd : float >= 0, default 0.5
        Standard deviation of ``e[t]``.
    start : (float, float), default (20.0, 21.0)
        ``(x[0], x[1])``.

    Returns
    -------
    ndarray of float64, shape (n,)
        The series. For n < 2 it is the first n start values.

    Notes
    -----
    The innovations for ``t = 2 .. n-1`` are, in order, the ``n - 2`` values of
    ``default_rng(seed).normal(0.0, noise_sd, size=n - 2)``.

    Examples
    --------
    >>> x = ar2(5, seed=0)
    >>> x[:2]
    array([20., 21.])
    >>> bool(np.all(ar2(100, seed=3) == ar2(100, seed=3)))
    True
    """
    n = _check_length(n)
    a1, a2 = (
        _check_real(f"coefficients[{i}]", c)
        for i, c in enumerate(_pair("coefficients", coefficients))
    )
    x0, x1 = (_check_real(f"start[{i}]", s) for i, s in enumerate(_pair("start", start)))
    noise_sd = _check_real("noise_sd", noise_sd, nonnegative=True)
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.float64)
    out[:2] = (x0, x1)[:n]
    if n > 2:
        noise = rng.normal(0.0, noise_sd, size=n - 2).tolist()
        # A plain-float loop: the recurrence cannot be vectorised, and Python floats
        # are several times faster than indexing a NumPy array element by element.
        previous2, previous1 = x0, x1
        values = [0.0] * (n - 2)
        for t, e in enumerate(noise):
            current = a1 * previous1 + a2 * previous2 + e
            values[t] = current
            previous2, previous1 = previous1, current
        out[2:] = values
    return out


def sine_walk_seasonal(
    n,
    seed=None,
    *,
    period=25.0,
    amplitude=1.0,
    walk_sd=0.05,
    seasonal_period=365.0,
    seasonal_amplitude=2.0,
):
    """Generate a sinusoid plus a random walk plus a seasonal sine.

    ``x[t] = amplitude sin(2 pi t / period) + w[t]``
    ``+ seasonal_amplitude sin(2 pi t / seasonal_period)``

    with ``w[0] = 0`` and ``w[t] = w[t-1] + d[t]``, ``d[t]`` normal with standard
    deviation `walk_sd`. Read ``t`` as days: the defaults are a 25-day cycle of
    amplitude 1, a slow drift (about 0.05 * sqrt(t) after t days) and a yearly
    season of amplitude 2, so a few thousand points show every component.

    Parameters
    ----------
    n : int >= 0
        Length of the series.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Passed to ``numpy.random.default_rng``; the same seed gives the same series.
    period : float > 0, default 25.0
        Period of the fast sinusoid, in steps.
    amplitude : float, default 1.0
        Amplitude of the fast sinusoid.
    walk_sd : float >= 0, default 0.05
        Standard deviation of each random-walk step (0 gives a deterministic series).
    seasonal_period : float > 0, default 365.0
        Period of the seasonal sine, in steps.
    seasonal_amplitude : float, default 2.0
        Amplitude of the seasonal sine.

    Returns
    -------
    ndarray of float64, shape (n,)
        The series.

    Notes
    -----
    The walk's steps ``d[1] .. d[n-1]`` are, in order, the ``n - 1`` values of
    ``default_rng(seed).normal(0.0, walk_sd, size=n - 1)``.

    Examples
    --------
    >>> x = sine_walk_seasonal(1000, seed=0)
    >>> x.shape, x.dtype
    ((1000,), dtype('float64'))
    """
    n = _check_length(n)
    period = _check_real("period", period, positive=True)
    amplitude = _check_real("amplitude", amplitude)
    walk_sd = _check_real("walk_sd", walk_sd, nonnegative=True)
    seasonal_period = _check_real("seasonal_period", seasonal_period, positive=True)
    seasonal_amplitude = _check_real("seasonal_amplitude", seasonal_amplitude)
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    walk = np.zeros(n, dtype=np.float64)
    if n > 1:
        np.cumsum(rng.normal(0.0, walk_sd, size=n - 1), out=walk[1:])
    return (
        amplitude * np.sin(2.0 * np.pi * t / period)
        + walk
        + seasonal_amplitude * np.sin(2.0 * np.pi * t / seasonal_period)
    )


def _pair(name, value):
    try:
        pair = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a pair of numbers; got {value!r}") from None
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair of numbers; got {len(pair)} values: {value!r}")
    return pair
