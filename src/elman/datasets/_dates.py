"""Dates as people write them in CSV files, and calendar-correct future dates.

Readable forms: ISO dates and date-times (``2020-01-31``, ``2020-01-31 12:00``,
``2020-01-31T12:00:00Z``), months (``1949-01``), quarters (``1959Q1``, ``1959-Q1``,
``1959 Q1``) and years (``1949``, also written as a number ``1949.0`` in a column
named like a year). Months and quarters become ``datetime64[M]``, years
``datetime64[Y]``, plain dates ``datetime64[D]``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from elman._typing import Array, ArrayLike

__all__ = ["parse_dates", "looks_like_date", "is_year_name", "future_dates", "format_dates"]

# YYYY-MM-DD, optionally followed by a time.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d*)?)?)?)?Z?$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_QUARTER = re.compile(r"^(\d{4})[- ]?[Qq]([1-4])$")
# Headers that name a column of years: year, YEAR, Year, yr, yyyy, years.
_YEAR_NAME = re.compile(r"^(years?|yrs?|yyyy)$", re.IGNORECASE)


def looks_like_date(text):
    """True for an ISO date or date-time, a month ``1949-01`` or a quarter ``1959Q1``."""
    return bool(_ISO_DATE.match(text) or _MONTH.match(text) or _QUARTER.match(text))


def is_year_name(name):
    """True for a header such as ``year``, ``YEAR``, ``Year``, ``yr`` or ``yyyy``."""
    return bool(_YEAR_NAME.match(name.strip()))


def years_from_numbers(values):
    """``datetime64[Y]`` from whole numbers 1..9999 (``1700`` or ``1700.0``), else None."""
    try:
        numbers = np.array([float(text) for text in values])
    except ValueError:
        return None
    if (
        not len(numbers)
        or not np.isfinite(numbers).all()
        or (numbers != np.round(numbers)).any()
        or numbers.min() < 1
        or numbers.max() > 9999
    ):
        return None
    return (numbers.astype(np.int64) - 1970).astype("datetime64[Y]")


def _parse_one(text):
    """One cell -> datetime64, or None when it is not a date (NaT counts as not)."""
    quarter = _QUARTER.match(text)
    if quarter:
        year, q = int(quarter.group(1)), int(quarter.group(2))
        return np.datetime64(f"{year:04d}-{3 * q - 2:02d}", "M")
    text = text.removesuffix("Z")
    try:
        value = np.datetime64(text)
    except ValueError:
        return None
    return None if np.isnat(value) else value


def parse_dates(values):
    """Parse date strings; returns (dates, index of the first bad cell or None).

    Every cell must use forms of one resolution family; the result's unit is the
    finest one found (a month ``1949-01`` next to a day ``1949-01-15`` gives days).
    """
    # A trailing Z (UTC) is dropped: NumPy warns on time zones, and the time is the same.
    if any(text.endswith("Z") for text in values):
        values = [text[:-1] if text.endswith("Z") else text for text in values]
    # Plain YYYY-MM-DD dates parse several times faster with the unit given; NumPy
    # would silently truncate a time to [D], hence the length check.
    unit = "datetime64[D]" if all(len(text) == 10 for text in values) else "datetime64"
    try:
        dates = np.array(values, dtype=unit)
    except ValueError:
        dates = None
    if dates is not None and not np.isnat(dates).any():
        return dates, None
    parsed = []
    for i, text in enumerate(values):
        value = _parse_one(text.strip())
        if value is None:
            return None, i
        parsed.append(value)
    return np.array(parsed), None


def _month_index(dates):
    months = dates.astype("datetime64[M]")
    return months.astype(np.int64), (dates.astype("datetime64[D]") - months).astype(np.int64) + 1


def _days_in_month(month_index):
    start = np.asarray(month_index).astype("datetime64[M]")
    return ((start + 1).astype("datetime64[D]") - start.astype("datetime64[D]")).astype(np.int64)


def future_dates(dates: ArrayLike, count: int) -> Array | None:
    """The `count` dates after the last of `dates`, following the calendar.

    Parameters
    ----------
    dates : ndarray of datetime64, shape (n,)
        Oldest first, n >= 2.
    count : int >= 0

    Returns
    -------
    ndarray of datetime64, shape (count,), same unit as `dates`; or None
        None when the step cannot be told (fewer than two dates, or no positive step).

    Notes
    -----
    Years, months and quarters step by whole calendar units: a monthly series on
    the 15th stays on the 15th; one on month ends stays on month ends (Jan 31,
    Feb 28, Mar 31). Daily data on weekdays only (10 dates or more) continues on
    business days. Anything else (daily, weekly, hourly) steps by the median
    spacing of the dates, which ignores gaps.
    """
    dates = np.asarray(dates)
    if dates.dtype.kind != "M" or dates.ndim != 1 or len(dates) < 2:
        return None
    # A unit code ("D", "M", ...); NumPy's stubs type it as any str.
    unit: Any = np.datetime_data(dates.dtype)[0]
    ahead = np.arange(1, count + 1)
    steps = np.diff(dates).astype(np.int64)
    if unit in ("Y", "M"):
        step = int(np.median(steps))
        if step <= 0:
            return None
        by_calendar_unit: Array = dates[-1] + ahead * np.timedelta64(step, unit)
        return by_calendar_unit
    months, days = _month_index(dates)
    month_steps = np.diff(months)
    day_steps = np.diff(dates.astype("datetime64[D]")).astype(np.int64)
    time_of_day = dates - dates.astype("datetime64[D]")
    if np.median(day_steps) >= 28 and (time_of_day == time_of_day[0]).all():
        step = int(np.median(month_steps))
        # The day of the month the series keeps, clipped to shorter months (31 for
        # month ends, 29 for a yearly series from a leap day).
        day = int(days.max())
        if step > 0 and (days == np.minimum(day, _days_in_month(months))).all():
            future_months = months[-1] + ahead * step
            future_days = np.minimum(day, _days_in_month(future_months))
            result = (
                future_months.astype("datetime64[M]").astype("datetime64[D]")
                + (future_days - 1).astype("timedelta64[D]")
            )
            same_day: Array = (result + time_of_day[0]).astype(dates.dtype)
            return same_day
    if unit == "D" and np.median(day_steps) == 1 and len(dates) >= 10:
        weekdays = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday 0
        if (weekdays < 5).all():  # business days: the next ones skip weekends
            business_days: Array = np.busday_offset(dates[-1], ahead, roll="forward")
            return business_days
    step = int(np.median(steps))
    if step <= 0:
        return None
    by_median_step: Array = dates[-1] + ahead * np.timedelta64(step, unit)
    return by_median_step


def format_dates(dates):
    """Dates as text, in the form they were read: quarters as ``1959Q1``, others ISO."""
    dates = np.asarray(dates)
    if np.datetime_data(dates.dtype)[0] == "M" and len(dates) > 1:
        month_of_year = dates.astype(np.int64) % 12
        steps = np.diff(dates.astype(np.int64))
        if (month_of_year % 3 == 0).all() and (steps % 3 == 0).all():
            years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
            return [f"{y:04d}Q{m // 3 + 1}" for y, m in zip(years, month_of_year)]
    return [str(d) for d in dates]
