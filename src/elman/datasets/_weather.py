"""The bundled daily weather series (NOAA GHCN-Daily, one US station)."""

from __future__ import annotations

import gzip
import io
from importlib import resources

from elman.datasets._csv import _check_fill, _read_csv
from elman.datasets._table import Dataset

__all__ = ["load_weather"]

WEATHER_FILE = "clean_weather.csv.gz"
# sha256 of the *uncompressed* clean_weather.csv. The bundled file is
#   gzip.compress(raw_bytes, compresslevel=9, mtime=0)
# so rebuilding it from the same CSV gives the same bytes.
WEATHER_SHA256 = "70d75ac02ccf0c0f45aed0077919fee302c6428b9f3c3401aadf090b0f6dfc8c"
WEATHER_COLUMNS = ("tmax", "tmin", "rain", "tmax_tomorrow")


def load_weather(fill: str | None = "ffill") -> Dataset:
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
    resource = resources.files("elman.datasets").joinpath(WEATHER_FILE)
    with resource.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
        text = io.TextIOWrapper(unzipped, encoding="utf-8", newline="")
        weather: Dataset = _read_csv(
            text,
            source=WEATHER_FILE,
            columns=WEATHER_COLUMNS,
            date_column="auto",
            fill=fill,
            delimiter=",",
        )
        return weather
