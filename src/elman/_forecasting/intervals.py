"""Conformal prediction intervals, calibrated per horizon on the validation part.

The calibration errors are the closed-loop errors of the pipeline fitted on the
training part only, at every validation origin and horizon, measured in original
units (``y - forecast``) or, for transforms that take logs, as log ratios
(``log y - log forecast``), so that an interval of a multiplicative series widens
with its level. A two-sided interval at level ``a`` for horizon ``h`` is the
forecast plus or minus the conformal quantile of the absolute errors at ``h``:
the ``ceil((m + 1) a)``-th smallest of the ``m`` errors.

Gaussian intervals (RNNs trained on ``gaussian_nll``) use the same calibration on
standardized errors: each error divided by the spread the model predicted for that
forecast (``Pipeline.paths(..., return_sd=True)``). The half-width of a new
forecast is its own predicted spread times the conformal quantile of the
standardized errors at its horizon, so intervals widen where the model expects
more noise, and the multiplier corrects what the spread leaves out (the errors
fed back along the closed loop, a head that is over- or under-confident).

Which of the two a forecaster uses can be chosen on the validation part by
:func:`choose`: each is calibrated on one half of the validation origins and
scored on the other half (both ways), by the interval score of Gneiting and
Raftery (2007), width plus ``2 / (1 - a)`` times any miss.
"""

import math

import numpy as np

# Fewer calibration errors than this at a horizon: its width is extrapolated from
# the last horizon that has enough, growing as the square root of the horizon
# (standardized errors: kept as it is, the predicted spreads carry the growth).
MIN_ERRORS = 10


def conformal_quantile(errors, level):
    """The conformal quantile of ``abs(errors)`` (finite ones) at ``level``."""
    values = np.sort(np.abs(errors[np.isfinite(errors)]))
    m = len(values)
    if m == 0:
        return math.nan
    rank = min(m, math.ceil((m + 1) * level))
    return float(values[rank - 1])


def half_widths(errors, level, steps, grow=True):
    """Half-widths for horizons 1..steps from calibration errors (origins, horizons).

    Past the calibrated horizons the last reliable quantile is carried on, times
    ``sqrt(h / last)`` with ``grow`` (errors in data units), as it is without
    (errors divided by a spread that already grows with the horizon).
    """
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
            factor = math.sqrt((h + 1) / (last + 1)) if grow else 1.0
            widths[h] = conformal_quantile(errors[:, last], level) * factor
    return widths


def bounds(point, widths, takes_log):
    """(lower, upper) around ``point`` with per-horizon half-widths."""
    if takes_log:
        return point * np.exp(-widths), point * np.exp(widths)
    return point - widths, point + widths


def interval_scores(actual, lower, upper, level):
    """Interval score of each entry (lower is better): width plus misses times 2/(1-a)."""
    penalty = 2.0 / (1.0 - level)
    return ((upper - lower) + penalty * np.maximum(lower - actual, 0.0)
            + penalty * np.maximum(actual - upper, 0.0))


def _split_score(errors, scale, level, fit, score):
    """Interval score on origins ``score`` of widths calibrated on origins ``fit``."""
    calibration = errors[fit] if scale is None else errors[fit] / scale[fit]
    widths = half_widths(calibration, level, errors.shape[1], grow=scale is None)[None, :]
    if scale is not None:
        widths = widths * scale[score]
    # Errors are actual minus forecast (or their logs): the interval is +- widths
    # around 0 in the same units.
    scores = interval_scores(errors[score], -widths, widths, level)
    return float(np.nanmean(np.where(np.isfinite(errors[score]), scores, np.nan)))


def choose(errors, scale, level):
    """``"gaussian"`` or ``"residuals"``: whose intervals score better on held-out origins.

    Parameters
    ----------
    errors : ndarray, shape (origins, horizons)
        Calibration errors (NaN where the row lies past the data).
    scale : ndarray, shape (origins, horizons)
        The predicted spread of each of those forecasts.
    level : float in (0, 1)

    Returns
    -------
    choice : str
    scores : dict
        The mean cross-fitted interval score of each (None when the validation
        part is too short to split; the choice is then ``"residuals"``).
    """
    m = errors.shape[0]
    halves = (np.arange(m // 2), np.arange(m // 2, m))
    totals = {"residuals": 0.0, "gaussian": 0.0}
    try:
        for fit, score in (halves, halves[::-1]):
            totals["residuals"] += _split_score(errors, None, level, fit, score) / 2
            totals["gaussian"] += _split_score(errors, scale, level, fit, score) / 2
    except ValueError:
        return "residuals", {"residuals": None, "gaussian": None}
    choice = "gaussian" if totals["gaussian"] < totals["residuals"] else "residuals"
    return choice, totals
