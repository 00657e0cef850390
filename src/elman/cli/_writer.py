"""The CSV that ``elman predict`` writes: date or row, the actual value, the prediction last."""

import csv

import numpy as np


def _number(value):
    return "" if value is None or not np.isfinite(value) else f"{value:.10g}"


def write_predictions(handle, table, target, actual, rows, predictions, forecasts,
                      bounds=None, forecast_bounds=None):
    """Write the header, one line per predicted row, then one per forecast step.

    Columns: ``date`` (or ``row``), the target's actual value (empty where unknown),
    with ``bounds`` the interval's ``<target>_lower`` and ``<target>_upper``, and
    ``<target>_predicted`` last. ``bounds`` and ``forecast_bounds`` are (lower,
    upper) pairs of arrays aligned with ``predictions`` and ``forecasts``.

    Forecast rows carry the next dates by the calendar (months keep their day of the
    month; see :func:`elman.datasets.future_dates`), or the next row numbers. Stops
    early, quietly, when ``handle`` reports its reader gone (``elman predict | head``).
    """
    from elman.datasets import future_dates
    from elman.datasets._dates import format_dates

    writer = csv.writer(handle, lineterminator="\n")
    dates = table.dates
    key = "date" if dates is not None else "row"
    interval = bounds is not None
    writer.writerow([key, target]
                    + ([f"{target}_lower", f"{target}_upper"] if interval else [])
                    + [f"{target}_predicted"])
    labels = format_dates(dates) if dates is not None else None
    for i, (row, value) in enumerate(zip(rows, predictions)):
        if getattr(handle, "closed", False):
            return
        label = labels[row] if labels is not None else int(row)
        writer.writerow([label, _number(None if actual is None else actual[row])]
                        + ([_number(bounds[0][i]), _number(bounds[1][i])] if interval else [])
                        + [_number(value)])
    if len(forecasts):
        n = len(table)
        future = None
        if dates is not None:
            future_values = future_dates(dates, len(forecasts))
            if future_values is not None:
                future = format_dates(np.concatenate([dates, future_values]))[n:]
        for k, value in enumerate(forecasts):
            if getattr(handle, "closed", False):
                return
            if dates is None:
                label = n + k
            else:
                label = "" if future is None else future[k]
            extra = []
            if interval:
                extra = (["", ""] if forecast_bounds is None else
                         [_number(forecast_bounds[0][k]), _number(forecast_bounds[1][k])])
            writer.writerow([label, ""] + extra + [_number(value)])
    handle.flush()
