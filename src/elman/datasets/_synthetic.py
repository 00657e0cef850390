"""Synthetic series for tutorials and tests, reproducible from a seed."""

from __future__ import annotations

import numpy as np

from elman._typing import FloatArray
from elman._validation import check_float, check_int

__all__ = ["ar2", "sine_walk_seasonal", "geometric_random_walk"]


def ar2(n: int, seed: int | None = None, *, coefficients: tuple[float, float] = (0.7, 0.2),
        noise_sd: float = 0.5, start: tuple[float, float] = (20.0, 21.0)) -> FloatArray:
    """Generate an AR(2) series: ``x[t] = 0.7 x[t-1] + 0.2 x[t-2] + e[t]``.

    Starts at ``x[0] = 20``, ``x[1] = 21``; the innovations ``e[t]`` are normal with
    standard deviation 0.5. As 0.7 + 0.2 < 1 the process is stationary with mean 0,
    so the series decays from its start towards 0 over the first few dozen steps.

    Parameters
    ----------
    n : int >= 0
        Length of the series.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Passed to ``numpy.random.default_rng``; the same seed gives the same series.
    coefficients : (float, float), default (0.7, 0.2)
        ``(a1, a2)`` in ``x[t] = a1 x[t-1] + a2 x[t-2] + e[t]``.
    noise_sd : float >= 0, default 0.5
        Standard deviation of ``e[t]``.
    start : (float, float), default (20.0, 21.0)
        ``(x[0], x[1])``.

    Returns
    -------
    ndarray of float64, shape (n,)
        The series. For n < 2 it is the first n start values.

    Notes
    -----
    The innovations for ``t = 2 .. n-1`` are, in order, the ``n - 2`` values of
    ``default_rng(seed).normal(0.0, noise_sd, size=n - 2)``.

    Examples
    --------
    >>> x = ar2(5, seed=0)
    >>> x[:2]
    array([20., 21.])
    >>> bool(np.all(ar2(100, seed=3) == ar2(100, seed=3)))
    True
    """
    n = check_int("n", n, minimum=0)
    a1, a2 = (
        check_float(f"coefficients[{i}]", c)
        for i, c in enumerate(_pair("coefficients", coefficients))
    )
    x0, x1 = (check_float(f"start[{i}]", s) for i, s in enumerate(_pair("start", start)))
    noise_sd = check_float("noise_sd", noise_sd, minimum=0)
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.float64)
    out[:2] = (x0, x1)[:n]
    if n > 2:
        noise = rng.normal(0.0, noise_sd, size=n - 2).tolist()
        # A plain-float loop: the recurrence cannot be vectorised, and Python floats
        # are several times faster than indexing a NumPy array element by element.
        previous2, previous1 = x0, x1
        values = [0.0] * (n - 2)
        for t, e in enumerate(noise):
            current = a1 * previous1 + a2 * previous2 + e
            values[t] = current
            previous2, previous1 = previous1, current
        out[2:] = values
    return out


def sine_walk_seasonal(
    n: int,
    seed: int | None = None,
    *,
    period: float = 25.0,
    amplitude: float = 1.0,
    walk_sd: float = 0.05,
    seasonal_period: float = 365.0,
    seasonal_amplitude: float = 2.0,
) -> FloatArray:
    """Generate a sinusoid plus a random walk plus a seasonal sine.

    ``x[t] = amplitude sin(2 pi t / period) + w[t]``
    ``+ seasonal_amplitude sin(2 pi t / seasonal_period)``

    with ``w[0] = 0`` and ``w[t] = w[t-1] + d[t]``, ``d[t]`` normal with standard
    deviation `walk_sd`. Read ``t`` as days: the defaults are a 25-day cycle of
    amplitude 1, a slow drift (about 0.05 * sqrt(t) after t days) and a yearly
    season of amplitude 2, so a few thousand points show every component.

    Parameters
    ----------
    n : int >= 0
        Length of the series.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Passed to ``numpy.random.default_rng``; the same seed gives the same series.
    period : float > 0, default 25.0
        Period of the fast sinusoid, in steps.
    amplitude : float, default 1.0
        Amplitude of the fast sinusoid.
    walk_sd : float >= 0, default 0.05
        Standard deviation of each random-walk step (0 gives a deterministic series).
    seasonal_period : float > 0, default 365.0
        Period of the seasonal sine, in steps.
    seasonal_amplitude : float, default 2.0
        Amplitude of the seasonal sine.

    Returns
    -------
    ndarray of float64, shape (n,)
        The series.

    Notes
    -----
    The walk's steps ``d[1] .. d[n-1]`` are, in order, the ``n - 1`` values of
    ``default_rng(seed).normal(0.0, walk_sd, size=n - 1)``.

    Examples
    --------
    >>> x = sine_walk_seasonal(1000, seed=0)
    >>> x.shape, x.dtype
    ((1000,), dtype('float64'))
    """
    n = check_int("n", n, minimum=0)
    period = check_float("period", period, minimum=0, strict=True)
    amplitude = check_float("amplitude", amplitude)
    walk_sd = check_float("walk_sd", walk_sd, minimum=0)
    seasonal_period = check_float("seasonal_period", seasonal_period, minimum=0, strict=True)
    seasonal_amplitude = check_float("seasonal_amplitude", seasonal_amplitude)
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    walk = np.zeros(n, dtype=np.float64)
    if n > 1:
        np.cumsum(rng.normal(0.0, walk_sd, size=n - 1), out=walk[1:])
    return (
        amplitude * np.sin(2.0 * np.pi * t / period)
        + walk
        + seasonal_amplitude * np.sin(2.0 * np.pi * t / seasonal_period)
    )


def _pair(name, value):
    try:
        pair = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a pair of numbers; got {value!r}") from None
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair of numbers; got {len(pair)} values: {value!r}")
    return pair


def geometric_random_walk(n: int, seed: int | None = None, *, start: float = 100.0,
                          drift: float = 0.0003, volatility: float = 0.015) -> FloatArray:
    """Generate prices that follow a geometric random walk (daily closes, say).

    ``p[0] = start`` and ``p[t] = p[t-1] * exp(r[t])``, where the log-returns
    ``r[t]`` are normal with mean `drift` and standard deviation `volatility`. Read
    ``t`` as trading days: the defaults are a drift of about 8% a year and a daily
    volatility of 1.5%, close to a large listed stock. Prices stay positive.

    Parameters
    ----------
    n : int >= 0
        Length of the series.
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        Passed to ``numpy.random.default_rng``; the same seed gives the same series.
    start : float > 0, default 100.0
        The first price.
    drift : float, default 0.0003
        Mean of each log-return.
    volatility : float >= 0, default 0.015
        Standard deviation of each log-return (0 gives a smooth exponential).

    Returns
    -------
    ndarray of float64, shape (n,)
        The prices, oldest first.

    Notes
    -----
    The log-returns ``r[1] .. r[n-1]`` are, in order, the ``n - 1`` values of
    ``default_rng(seed).normal(drift, volatility, size=n - 1)``.

    Examples
    --------
    >>> prices = geometric_random_walk(250, seed=0)
    >>> float(prices[0]), bool((prices > 0).all())
    (100.0, True)
    """
    n = check_int("n", n, minimum=0)
    start = check_float("start", start, minimum=0, strict=True)
    drift = check_float("drift", drift)
    volatility = check_float("volatility", volatility, minimum=0)
    rng = np.random.default_rng(seed)
    log_growth = np.zeros(n)
    if n > 1:
        np.cumsum(rng.normal(drift, volatility, size=n - 1), out=log_growth[1:])
    return start * np.exp(log_growth)
