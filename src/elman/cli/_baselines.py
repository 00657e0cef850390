"""The classical forecasts the RNN is measured against, on the same test rows.

All of them are fitted (where they fit anything) on the training rows, with any
choice made on the validation rows; none sees the test rows.

* persistence: the target's last known value;
* seasonal naive: the value one season before the predicted row;
* ridge autoregression: a linear model on the target's last ``p`` known values,
  ``p`` and the penalty chosen on the validation rows;
* linear regression: least squares on the inputs of the window's last row (shown
  when the inputs are more than the target itself).
"""

import numpy as np

# Seasons that fit each spacing of the dates, most usual first.
_SEASONS_BY_STEP = (
    ((0.9 / 24, 1.1 / 24), (24, 168)),     # hourly: a day, a week
    ((0.9, 1.1), (7, 365)),                # daily: a week, a year
    ((6.5, 7.5), (52,)),                   # weekly: a year
    ((28, 31.5), (12,)),                   # monthly
    ((89, 93), (4,)),                      # quarterly
)
_RIDGE_ALPHAS = (1e-4, 1e-2, 1.0, 100.0)


def _autocorrelation(series, lag):
    if lag >= len(series) - 2:
        return -1.0
    a, b = series[:-lag], series[lag:]
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else -1.0


def guess_season(dates, train_values):
    """A seasonal period in rows, or None, from the dates' spacing and the training rows.

    A candidate period for the spacing (12 for monthly data, 4 for quarterly, 7 or
    365 for daily, ...) is kept when the training rows, with their straight-line
    trend removed, correlate with themselves one period apart (above 0.2), more
    than half a period apart and about as much as at the periods around. Without
    such a candidate (no dates, yearly data) the lag of strongest such correlation
    (a local peak above 0.3, within a third of the training rows) is used.
    """
    y = np.asarray(train_values, dtype=np.float64)
    n = len(y)
    if n < 8:
        return None
    t = np.arange(n)
    y = y - np.polyval(np.polyfit(t, y, 1), t)
    candidates = ()
    if dates is not None and len(dates) > 1:
        unit = np.datetime_data(dates.dtype)[0]
        if unit == "M":
            months = int(np.median(np.diff(dates.astype(np.int64))))
            candidates = {1: (12,), 3: (4,)}.get(months, ())
        elif unit not in ("Y",):
            days = np.median(np.diff(dates).astype("timedelta64[s]").astype(np.float64)) / 86400
            for (low, high), periods in _SEASONS_BY_STEP:
                if low <= days <= high:
                    candidates = periods
                    break
    # A season shows as a peak of the correlation at its period; a slowly changing
    # series correlates with itself at every short lag, which is no season.
    scored = [(p, _autocorrelation(y, p)) for p in candidates if p + 2 <= n // 3]
    scored = [(p, r) for p, r in scored if r > 0.2 and r >= max(
        _autocorrelation(y, lag) for lag in (p - 2, p - 1, p + 1, p + 2)) - 0.05
        and r > _autocorrelation(y, max(1, p // 2)) + 0.05]
    if scored:
        return max(scored, key=lambda item: item[1])[0]
    max_lag = min(n // 3, 400)
    if max_lag < 3:
        return None
    correlations = np.array([_autocorrelation(y, lag) for lag in range(1, max_lag + 1)])
    best, best_r = None, 0.3
    for lag in range(2, max_lag):  # correlations[lag - 1] is lag `lag`
        r = correlations[lag - 1]
        if r > best_r and r >= correlations[lag - 2] and r >= correlations[lag]:
            best, best_r = lag, r
    return best


def _lag_matrix(y, ends, lags):
    """(len(ends), lags) rows y[end - lags + 1 .. end], oldest first."""
    offsets = np.arange(-lags + 1, 1)
    return y[ends[:, None] + offsets]


def _ridge_fit_predict(y, lags, alpha, fit_known, fit_rows, known):
    """Ridge on standardised lags fitted on (fit_known -> fit_rows); predictions at known."""
    keep = fit_known >= lags - 1
    A = _lag_matrix(y, fit_known[keep], lags)
    mean, scale = A.mean(axis=0), A.std(axis=0)
    scale[scale == 0] = 1.0
    design = np.column_stack([(A - mean) / scale, np.ones(len(A))])
    penalty = alpha * np.eye(lags + 1)
    penalty[-1, -1] = 0.0  # no penalty on the intercept
    coef = np.linalg.solve(design.T @ design + penalty, design.T @ y[fit_rows[keep]])
    B = _lag_matrix(y, np.maximum(known, lags - 1), lags)
    return np.column_stack([(B - mean) / scale, np.ones(len(B))]) @ coef


# The most lags the ridge baseline tries (a yearly season of daily data would cost
# seconds of solving for a baseline).
MAX_RIDGE_LAGS = 120


def ridge_lag_candidates(season, n_train):
    """Lag counts the ridge baseline tries: short ones, and one or two seasons."""
    candidates = {1, 2, 3, 4, 6, 8, 12, 24}
    if season:
        candidates |= {season, 2 * season}
    return sorted(p for p in candidates if p <= min(MAX_RIDGE_LAGS, max(1, n_train // 4)))


def ridge_autoregression(y, known, lag_options, train_known, train_rows, val_known,
                         val_rows):
    """Ridge forecasts of the rows whose last known row is ``known``; (predictions, lags).

    The number of lags and the penalty are chosen on the validation rows (the lags
    standardised on the training rows), then the model is refitted on training and
    validation rows together. None when there are too few training rows.
    """
    best = None
    for lags in lag_options:
        if (train_known >= lags - 1).sum() <= lags + 1:
            continue
        for alpha in _RIDGE_ALPHAS:
            predicted = _ridge_fit_predict(y, lags, alpha, train_known, train_rows, val_known)
            error = float(np.mean((predicted - y[val_rows]) ** 2))
            if best is None or error < best[0]:
                best = (error, lags, alpha)
    if best is None:
        return None
    _, lags, alpha = best
    both_known = np.concatenate([train_known, val_known])
    both_rows = np.concatenate([train_rows, val_rows])
    return _ridge_fit_predict(y, lags, alpha, both_known, both_rows, known), lags


def seasonal_naive(y, rows, ahead, season):
    """The value one season (or enough whole seasons to be known) before each row."""
    back = season * int(np.ceil(ahead / season))
    return y[np.maximum(rows - back, 0)]


def linear_regression(x, y, train_last, train_rows, last):
    """Least squares with an intercept on the last row's inputs, fitted on training windows."""
    design = np.column_stack([x[train_last], np.ones(len(train_last))])
    coef, *_ = np.linalg.lstsq(design, y[train_rows], rcond=None)
    return np.column_stack([x[last], np.ones(len(last))]) @ coef


def append_naive_methods(methods, ridge, y, rows, ahead, season, persistence_known, target,
                         weather):
    """Append the ridge autoregression (a ``(predictions, lags)`` pair, or None),
    seasonal naive and persistence to ``methods``; return persistence's label."""
    if ridge is not None:
        predictions, lags = ridge
        label = (f"ridge autoregression on the last {lags} days' tmax" if weather
                 else f"ridge autoregression on the last {lags} values of {target}"
                 if lags > 1 else f"ridge autoregression on the last value of {target}")
        methods.append((label, predictions))
    if season is not None and season > 1:
        unit = "days" if weather else "rows"
        methods.append((f"seasonal naive (the value {season} {unit} earlier)",
                        seasonal_naive(y, rows, ahead, season)))
    persistence_label = ("persistence (tomorrow's tmax = today's)" if weather
                         else f"persistence (last known {target})")
    methods.append((persistence_label, y[persistence_known]))
    return persistence_label
