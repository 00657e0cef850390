"""Bundled data, a CSV reader and synthetic series, all without pandas.

Contents
--------
load_weather
    Daily weather observations for one US station (NOAA GHCN-Daily, public domain),
    1970-01-01 to 2022-11-26, 13,509 rows, shipped inside the package.
load_csv
    Read a user's CSV of numbers (plus an optional date column: days, date-times,
    months such as 1949-01, quarters such as 1959Q1, or a column of years) into a
    :class:`Dataset`, with one-line errors that name the column and the line.
future_dates
    The dates after a series' last one, following the calendar (months stay on
    their day of the month).
ar2, sine_walk_seasonal, geometric_random_walk
    Synthetic series the tutorials use (and prices for the price-series example),
    reproducible from a seed.
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

from elman.datasets._csv import MISSING_TOKENS as MISSING_TOKENS
from elman.datasets._csv import load_csv
from elman.datasets._dates import future_dates
from elman.datasets._synthetic import ar2, geometric_random_walk, sine_walk_seasonal
from elman.datasets._table import Dataset
from elman.datasets._weather import WEATHER_COLUMNS as WEATHER_COLUMNS
from elman.datasets._weather import WEATHER_FILE as WEATHER_FILE
from elman.datasets._weather import WEATHER_SHA256 as WEATHER_SHA256
from elman.datasets._weather import load_weather

__all__ = [
    "Dataset",
    "load_weather",
    "load_csv",
    "future_dates",
    "ar2",
    "sine_walk_seasonal",
    "geometric_random_walk",
]
