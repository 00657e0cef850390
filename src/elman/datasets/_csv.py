"""Read a CSV file of numbers (plus an optional date column) into a Dataset."""

from __future__ import annotations

import csv
import gzip
import io
import os
from typing import IO, Sequence

import numpy as np

from elman.datasets._dates import (
    is_year_name,
    looks_like_date,
    parse_dates,
    years_from_numbers,
)
from elman.datasets._table import Dataset

__all__ = ["load_csv", "MISSING_TOKENS"]

# Cell values read as "missing" (compared after strip() and lower()).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"})

# Header names that mark a non-numeric column as the date column in "auto" mode.
_DATE_NAMES = frozenset({"date", "datetime", "time", "timestamp", "ds"})

_FILLS = ("ffill", "linear", None)
# The field separators delimiter="auto" tries, in order of preference.
_DELIMITERS = (",", ";", "\t", "|")


def load_csv(
    path: str | bytes | os.PathLike[str] | IO[str], *, columns: Sequence[str] | str | None = None,
    date_column: str | None = "auto", fill: str | None = "ffill", delimiter: str = ",",
    skip_text: bool = False,
) -> Dataset:
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
        The column holding the dates: ISO 8601 dates (``2020-01-31``), date-times
        (``2020-01-31 12:00``, ``2020-01-31T12:00:00Z``), months (``1949-01``),
        quarters (``1959Q1``, ``1959-Q1``) or years. ``"auto"`` picks the first
        column whose first value is not a number and is either such a date or
        headed ``date``, ``datetime``, ``time``, ``timestamp`` or ``ds`` (any case);
        failing that, a column headed like a year (``year``, ``YEAR``, ``yr``,
        ``yyyy``) that holds strictly increasing whole numbers, unless `columns`
        asks for it by name. If there is none, the data has no dates. A name uses
        that column (whole numbers in it are read as years); None means no date
        column. Every value in the date column must parse.
    fill : {"ffill", "linear", None}, default "ffill"
        ``"ffill"`` replaces a missing value with the last value above it in its
        column, and back-fills leading missing values from the column's first
        value; ``"linear"`` draws a straight line between the values around a gap
        (by row, ends held flat); None leaves NaN. Missing means an empty cell or
        one of ``NA``, ``N/A``, ``NaN``, ``null``, ``None``, ``#N/A``, ``<NA>``
        (any case).
    delimiter : str, default ","
        The field separator (one character), e.g. ``";"`` or ``"\\t"``, or
        ``"auto"``: the first of ``,`` ``;`` tab ``|`` that splits the first lines
        of the file into the same number (more than one) of fields, else ``,``.
    skip_text : bool, default False
        With ``columns=None``: leave out columns holding text (a present value that
        is not a number) instead of raising; their names are in ``Dataset.skipped``.

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
    if not isinstance(delimiter, str) or (len(delimiter) != 1 and delimiter != "auto"):
        raise TypeError(f'delimiter must be a single character or "auto"; got {delimiter!r}')
    if not isinstance(skip_text, bool):
        raise TypeError(f"skip_text must be True or False; got {skip_text!r}")

    if hasattr(path, "read"):
        source = getattr(path, "name", None) or "<file>"
        from_stream: Dataset = _read_csv(
            path,
            os.fspath(source) if isinstance(source, os.PathLike) else str(source),
            columns,
            date_column,
            fill,
            delimiter,
            skip_text,
        )
        return from_stream
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
        from_file: Dataset = _read_csv(stream, source, columns, date_column, fill, delimiter,
                                       skip_text)
        return from_file


def _check_fill(fill):
    if fill not in _FILLS:
        raise ValueError(f'fill must be "ffill", "linear" or None; got {fill!r}')


def _read_csv(stream, source, columns, date_column, fill, delimiter, skip_text=False):
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
    if "\x00" in text:
        raise ValueError(f"{source} holds NUL bytes: not a text CSV file")
    if delimiter == "auto":
        delimiter = _sniff_delimiter(text)
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

    cells = list(zip(*rows))  # one tuple of strings per column

    # Which column holds the dates (a year column may come with a quarter or month one).
    years = False
    period_index, period_dates = None, None
    if date_column is None:
        date_index = None
    elif date_column == "auto":
        date_index = None
        for j, name in enumerate(names):
            # The column's first present value (almost always the first row's).
            value = next(
                (cell for cell in (c.strip() for c in cells[j]) if cell.lower() not in MISSING_TOKENS),
                "",
            )
            if _is_number_or_missing(value):
                continue
            if looks_like_date(value) or name.lower() in _DATE_NAMES:
                date_index = j
                break
        if date_index is None:
            asked = set(columns or ())
            for j, name in enumerate(names):
                if is_year_name(name) and name not in asked and _is_year_column(cells[j]):
                    date_index, years = j, True
                    break
        if date_index is None:
            year_and_period = _year_and_period(names, cells, set(columns or ()))
            if year_and_period is not None:
                date_index, period_index, period_dates = year_and_period
    else:
        date_index = index_of(date_column, "date column")
        years = years_from_numbers(cells[date_index]) is not None

    # Which columns are read as numbers.
    skipped = ()
    if columns is None:
        feature_indices = [j for j in range(width) if j not in (date_index, period_index)
                           and j not in unnamed]
        if skip_text:
            text_columns = [j for j in feature_indices if not _all_numbers(cells[j])]
            skipped = tuple(names[j] for j in text_columns)
            feature_indices = [j for j in feature_indices if j not in text_columns]
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

    data = np.empty((len(rows), len(feature_indices)), dtype=np.float64)
    for k, j in enumerate(feature_indices):
        data[:, k] = _parse_numbers(cells[j], names[j], lines, source)

    dates = period_dates
    if date_index is not None and dates is None:
        dates = _parse_dates(
            cells[date_index],
            names[date_index],
            lines,
            source,
            guessed=date_column == "auto",
            years=years,
        )

    missing = np.isnan(data)
    if fill is not None and missing.any():
        filler = _forward_fill if fill == "ffill" else _linear_fill
        filler(data, missing, [names[j] for j in feature_indices], source)
    return Dataset(data, tuple(names[j] for j in feature_indices), dates, missing, skipped)


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


def _all_numbers(values):
    """True when every cell is a number or missing."""
    try:
        np.array([text or "nan" for text in values], dtype=np.float64)
    except ValueError:
        return all(_is_number_or_missing(text.strip()) for text in values)
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


def _parse_dates(values, name, lines, source, guessed=False, years=False):
    """Date strings (or whole-number years when ``years``) -> datetime64, oldest first."""
    dates = years_from_numbers(values) if years else None
    if dates is None:
        dates, bad = parse_dates(values)
        if dates is None:
            text = values[bad]
            found = f"found {text!r}" if text.strip() else "it is empty"
            hint = "; pass date_column=None if it holds no dates" if guessed else ""
            raise ValueError(
                f"{source}, line {lines[bad]}: date column {name!r} needs ISO 8601 dates "
                f"such as 2020-01-31 or 2020-01-31 12:00, months 2020-01, quarters 2020Q1 or "
                f"years ({found})"
                f"{hint}"
            )
    if len(dates) > 1:
        earlier = dates[1:] < dates[:-1]
        if earlier.any():
            i = int(np.argmax(earlier)) + 1
            raise ValueError(
                f"{source}, line {lines[i]}: date {values[i].strip()} in column {name!r} is "
                f"earlier than {values[i - 1].strip()} on line {lines[i - 1]}; rows must be "
                "oldest first"
            )
    return dates


# Headers of a column that, beside a year column, says which quarter or month a row is.
_PERIODS = (({"quarter", "qtr", "q"}, 4, 3), ({"month", "mon", "mth", "m"}, 12, 1))


def _year_and_period(names, cells, asked):
    """(year column, period column, datetime64[M] dates) for year + quarter/month columns."""
    for j, name in enumerate(names):
        if not is_year_name(name) or name in asked:
            continue
        years = years_from_numbers(cells[j])
        if years is None:
            continue
        for k, other in enumerate(names):
            for headers, count, months in _PERIODS:
                if other.strip().lower() not in headers or other in asked:
                    continue
                try:
                    period = np.array([float(text) for text in cells[k]])
                except ValueError:
                    continue
                if ((period != np.round(period)) | (period < 1) | (period > count)).any():
                    continue
                index = years.astype(np.int64) * 12 + (period.astype(np.int64) - 1) * months
                if (np.diff(index) > 0).all():
                    return j, k, index.astype("datetime64[M]")
    return None


def _is_year_column(cells):
    """Whole numbers 1..9999, all present and strictly increasing: a column of years."""
    years = years_from_numbers(cells)
    return years is not None and bool((np.diff(years.astype(np.int64)) > 0).all())


def _sniff_delimiter(text):
    """The first of , ; tab | that splits the first lines into a constant number (> 1) of fields."""
    sample = [line for line in text[:65536].splitlines()[:21] if line.strip()]
    if len(sample) > 1 and not text[:65536].endswith(("\n", "\r")):
        sample = sample[:-1]  # the last line of the sample may be cut
    for candidate in _DELIMITERS:
        try:
            widths = {len(record) for record in csv.reader(sample, delimiter=candidate)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() > 1:
            return candidate
    return ","


def _check_fillable(gaps, name, source):
    if gaps.all():
        raise ValueError(
            f"{source}: column {name!r} has no values to fill from "
            f"(all {len(gaps)} rows are missing); drop it or pass fill=None"
        )


def _linear_fill(data, missing, names, source):
    """Fill NaN in place by straight lines between the present values around each gap."""
    rows = np.arange(data.shape[0])
    for k in range(data.shape[1]):
        gaps = missing[:, k]
        if not gaps.any():
            continue
        _check_fillable(gaps, names[k], source)
        # np.interp holds the end values flat beyond the first and last present rows.
        data[gaps, k] = np.interp(rows[gaps], rows[~gaps], data[~gaps, k])


def _forward_fill(data, missing, names, source):
    """Fill NaN in place from above, and leading NaN from the first value below."""
    n = data.shape[0]
    rows = np.arange(n)
    for k in range(data.shape[1]):
        gaps = missing[:, k]
        if not gaps.any():
            continue
        _check_fillable(gaps, names[k], source)
        # Index of the last present value at or above each row.
        last_present = np.maximum.accumulate(np.where(gaps, -1, rows))
        first_present = int(np.argmax(~gaps))
        last_present[last_present < 0] = first_present
        data[:, k] = data[last_present, k]
