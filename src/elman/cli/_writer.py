"""The CSV that ``elman predict`` writes: date or row, the actual value, the prediction last."""

import csv

import numpy as np


def _number(value):
    return "" if value is None or not np.isfinite(value) else f"{value:.10g}"


def write_predictions(handle, table, target, actual, rows, predictions, forecasts):
    """Write the header, one line per predicted row, then one per forecast step.

    Forecast rows carry the next dates by the calendar (months keep their day of the
    month; see :func:`elman.datasets.future_dates`), or the next row numbers. Stops
    early, quietly, when ``handle`` reports its reader gone (``elman predict | head``).
    """
    from elman.datasets import future_dates
    from elman.datasets._dates import format_dates

    writer = csv.writer(handle, lineterminator="\n")
    dates = table.dates
    key = "date" if dates is not None else "row"
    writer.writerow([key, target, f"{target}_predicted"])
    labels = format_dates(dates) if dates is not None else None
    for row, value in zip(rows, predictions):
        if getattr(handle, "closed", False):
            return
        label = labels[row] if labels is not None else int(row)
        writer.writerow([label, _number(None if actual is None else actual[row]),
                         _number(value)])
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
            writer.writerow([label, "", _number(value)])
    handle.flush()
