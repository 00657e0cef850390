"""Target transforms that remove trends and levels, and season detection.

A transform maps the target ``y`` to ``z`` and back, row by row:

    u_t = log(y_t) if the transform takes logs, else y_t
    z_t = u_t - u_{t-lag}          (lag 0: z_t = u_t)

so that ``u_t = z_t + u_{t-lag}`` inverts it given the earlier (observed or
forecast) values. The model learns and forecasts ``z``; every output is mapped
back to ``y`` through this recursion, which keeps multi-step forecasts and their
intervals in the original units.
"""

import numpy as np

# name -> (takes logs, difference kind)
TRANSFORMS = {
    "none": (False, None),
    "diff": (False, "first"),
    "seasonal_diff": (False, "season"),
    "log": (True, None),
    "log_diff": (True, "first"),
    "log_seasonal_diff": (True, "season"),
}


class Transform:
    """One of :data:`TRANSFORMS`, bound to a season for the seasonal ones.

    Parameters
    ----------
    name : str
        A key of :data:`TRANSFORMS`.
    season : int or None
        Season length; required by the seasonal transforms.
    """

    def __init__(self, name, season=None):
        if name not in TRANSFORMS:
            raise ValueError(f"transform must be one of {sorted(TRANSFORMS)}; got {name!r}")
        self.name = name
        self.log, kind = TRANSFORMS[name]
        if kind == "season":
            if season is None or season < 2:
                raise ValueError(f"transform {name!r} needs a season of at least 2 rows; "
                                 f"got season={season!r}")
            self.lag = int(season)
        else:
            self.lag = 1 if kind == "first" else 0

    def __repr__(self):
        return f"Transform({self.name!r}, lag={self.lag})"

    def check(self, y, name="data"):
        """Raise ValueError when ``y`` cannot be transformed (logs of values <= 0)."""
        if self.log and np.any(y <= 0):
            raise ValueError(
                f"transform {self.name!r} takes logs, so the target must be positive; {name} "
                f"has {int(np.sum(y <= 0))} values <= 0 (smallest {np.min(y):g})"
            )

    def base(self, y):
        """``u``: log(y) or y itself."""
        return np.log(y) if self.log else np.asarray(y, dtype=np.float64)

    def unbase(self, u):
        """Inverse of :meth:`base`."""
        return np.exp(u) if self.log else u

    def forward(self, y):
        """``z`` of the same length as ``y``; NaN in the first ``lag`` rows."""
        u = self.base(y)
        if self.lag == 0:
            return u.copy()
        z = np.full_like(u, np.nan)
        z[self.lag:] = u[self.lag:] - u[:-self.lag]
        return z

    def inverse(self, z, y_before):
        """``y`` from ``z`` and the ``lag`` values of ``y`` just before ``z`` starts.

        Parameters
        ----------
        z : ndarray, shape (..., steps)
        y_before : ndarray, shape (..., lag)
            Ignored when the lag is 0.

        Returns
        -------
        ndarray, shape (..., steps)
        """
        z = np.asarray(z, dtype=np.float64)
        if self.lag == 0:
            return self.unbase(z)
        u_before = self.base(np.asarray(y_before, dtype=np.float64))
        steps = z.shape[-1]
        u = np.concatenate([u_before, np.empty_like(z)], axis=-1)
        for t in range(steps):
            u[..., self.lag + t] = z[..., t] + u[..., t]
        return self.unbase(u[..., self.lag:])


def autocorrelation(x, max_lag):
    """Sample autocorrelation of ``x`` at lags 0..max_lag (NaNs dropped first)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    x = x - x.mean()
    denominator = float(np.dot(x, x))
    n = len(x)
    max_lag = min(max_lag, n - 1)
    if denominator == 0.0 or max_lag < 1:
        return np.zeros(max(max_lag, 0) + 1)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(x, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[:max_lag + 1]
    return acf / denominator


def detect_season(y, max_season=400):
    """The dominant period of ``y`` from the autocorrelation of its first differences.

    A candidate is a lag ``s >= 2`` where the autocorrelation ``r`` has a local
    peak above ``threshold = max(0.2, 3 / sqrt(n))``. A season repeats and
    alternates, so a candidate scores the mean, over k = 1, 2, 3, of the highest
    ``r`` near ``k s`` (within ``k`` lags, which allows periods such as 52.18
    weeks) minus ``r`` half a season earlier, at ``(k - 1/2) s``; a short-lived
    correlation at a short lag neither repeats nor alternates and scores low. A peak
    must also rise at least 0.1 above the lowest ``r`` at shorter lags (a dip
    between seasons). The best-scoring candidate wins, or the shortest candidate
    of which it is (nearly) a multiple and that scores at least 85% as well, so
    that a multiple of the season does not replace it.
    ``None`` when nothing qualifies or the series is shorter than three seasons.

    Parameters
    ----------
    y : ndarray, shape (n,)
    max_season : int, default 400

    Returns
    -------
    int or None
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 12:
        return None
    max_lag = min(max_season, n // 3)
    if max_lag < 3:
        return None
    acf = autocorrelation(np.diff(y), 3 * max_lag + 3)
    threshold = max(0.2, 3.0 / np.sqrt(n))
    scores = {}
    for lag in range(2, max_lag + 1):
        if not (acf[lag] >= acf[lag - 1] and acf[lag] >= acf[lag + 1] and acf[lag] > threshold
                and acf[lag] - acf[1:lag].min() >= 0.1):
            continue
        ks = [k for k in (1, 2, 3) if k * lag + k < len(acf)]
        if len(ks) < 2:
            continue
        # Peak near k * lag against the trough half a season before it.
        scores[lag] = float(np.mean([acf[max(0, k * lag - k):k * lag + k + 1].max()
                                     - acf[int(round((k - 0.5) * lag))] for k in ks]))
    scores = {lag: score for lag, score in scores.items() if score > threshold}
    if not scores:
        return None
    winner = max(scores, key=scores.get)
    return min(lag for lag, score in scores.items()
               if _near_multiple(winner, lag) and score >= 0.85 * scores[winner])


def _near_multiple(long, short):
    """Whether ``long`` is within k lags of k * ``short`` for some k >= 1 (the
    tolerance the multiples are scored with)."""
    k = max(1, round(long / short))
    return abs(long - k * short) <= k
