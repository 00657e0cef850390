"""Conformal prediction intervals, calibrated per horizon on the validation part.

The calibration errors are the closed-loop errors of the pipeline fitted on the
training part only, at every validation origin and horizon, measured in original
units (``y - forecast``) or, for transforms that take logs, as log ratios
(``log y - log forecast``), so that an interval of a multiplicative series widens
with its level. A two-sided interval at level ``a`` for horizon ``h`` is the
forecast plus or minus the conformal quantile of the absolute errors at ``h``:
the ``ceil((m + 1) a)``-th smallest of the ``m`` errors.
"""

import math

import numpy as np

# Fewer calibration errors than this at a horizon: its width is extrapolated from
# the last horizon that has enough, growing as the square root of the horizon.
MIN_ERRORS = 10


def conformal_quantile(errors, level):
    """The conformal quantile of ``abs(errors)`` (finite ones) at ``level``."""
    values = np.sort(np.abs(errors[np.isfinite(errors)]))
    m = len(values)
    if m == 0:
        return math.nan
    rank = min(m, math.ceil((m + 1) * level))
    return float(values[rank - 1])


def half_widths(errors, level, steps):
    """Half-widths for horizons 1..steps from calibration errors (origins, horizons)."""
    counts = np.isfinite(errors).sum(axis=0)
    reliable = [h for h in range(errors.shape[1]) if counts[h] >= MIN_ERRORS]
    if not reliable:
        reliable = [h for h in range(errors.shape[1]) if counts[h] >= 2][:1]
    if not reliable:
        raise ValueError(
            "the validation part was too short to calibrate intervals; fit on a longer "
            "series to get them"
        )
    widths = np.empty(steps)
    last = reliable[0]
    for h in range(steps):
        if h < errors.shape[1] and counts[h] >= MIN_ERRORS or h in reliable:
            widths[h] = conformal_quantile(errors[:, h], level)
            last = h
        else:
            widths[h] = conformal_quantile(errors[:, last], level) * math.sqrt((h + 1) /
                                                                                (last + 1))
    return widths


def bounds(point, widths, takes_log):
    """(lower, upper) around ``point`` with per-horizon half-widths."""
    if takes_log:
        return point * np.exp(-widths), point * np.exp(widths)
    return point - widths, point + widths
