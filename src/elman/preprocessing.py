"""Turn a time series into training windows, split it by time, and scale it.

Arrays are batch-first, as the model takes them: a series is ``(n_steps,)`` or
``(n_steps, n_features)``; windows are ``(n_windows, window, n_features)``.

The usual recipe, on the bundled weather data (predict tomorrow's ``tmax`` from the
last 7 days of ``tmax``, ``tmin`` and ``rain``)::

    from elman.datasets import load_weather
    from elman.preprocessing import StandardScaler, sliding_windows, train_val_test_split

    weather = load_weather()
    features = weather[["tmax", "tmin", "rain"]]   # (13509, 3)
    target = weather["tmax_tomorrow"]              # (13509,), already one day ahead

    # 1. Split by time first, so no statistic of the future leaks into training.
    f_train, f_val, f_test, t_train, t_val, t_test = train_val_test_split(features, target)

    # 2. Fit the scalers on the training part only; apply them to every part.
    x_scaler = StandardScaler().fit(f_train)
    y_scaler = StandardScaler().fit(t_train)

    # 3. Window each part. tmax_tomorrow on row t is already the value to predict
    #    from rows <= t, so horizon=0 (with the raw tmax column it would be 1).
    X_train, Y_train = sliding_windows(
        x_scaler.transform(f_train), 7, targets=y_scaler.transform(t_train),
        horizon=0, many_to_many=False)        # (n, 7, 3) and (n, 1)

    # 4. Predictions come back in °F through the target scaler.
    # tmax_pred = y_scaler.inverse_transform(model.predict(X_test))
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Self

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from elman._typing import ArrayLike, FloatArray
from elman._validation import as_numeric_array, check_float, check_int

__all__ = [
    "sliding_windows",
    "train_val_test_split",
    "StandardScaler",
    "MinMaxScaler",
    "NotFittedError",
]


class NotFittedError(ValueError, AttributeError):
    """Raised when a scaler (or model) is used before ``fit``.

    A subclass of both ValueError and AttributeError, as in scikit-learn, so either
    ``except`` clause catches it.
    """


# --------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------


def _as_float_array(name, value):
    """Array-like -> ndarray with a floating dtype (floats kept as they are, no copy)."""
    array = as_numeric_array(name, value)
    return array if array.dtype.kind == "f" else array.astype(np.float64)


def _as_series(name, value):
    """(n,) or (n, k) array-like -> float ndarray of shape (n, k), a view where possible."""
    array = _as_float_array(name, value)
    if array.ndim == 1:
        array = array[:, np.newaxis]
    elif array.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D (n_steps,) or 2-D (n_steps, n_features); got shape {array.shape}"
        )
    if array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column; got shape {array.shape}")
    return array


def _read_only(array):
    view = array.view()
    view.flags.writeable = False
    return view


# --------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------


def sliding_windows(series: ArrayLike, window: int, *, targets: ArrayLike | None = None,
                    horizon: int = 1,
                    many_to_many: bool = True) -> tuple[FloatArray, FloatArray]:
    """Cut a series into overlapping windows with next-step or last-step targets.

    With ``x = series`` and ``y = targets`` (``y = x`` when `targets` is None), window
    ``i`` holds ``window`` consecutive steps of ``x``, and its targets lie `horizon`
    steps later:

    * inputs: ``X[i, t] = x[i + t]`` for ``t = 0 .. window - 1``;
    * many-to-many (``many_to_many=True``): ``Y[i, t] = y[i + t + horizon]``, a target
      for every step (with ``horizon=1``: the next value after each step);
    * many-to-one (``many_to_many=False``): ``Y[i] = y[i + window - 1 + horizon]``, the
      target `horizon` steps after the window's last step.

    Windows start at every step that leaves room for the last target, so there are
    ``n_windows = n_steps - window - horizon + 1`` of them, oldest first, in both modes.

    Parameters
    ----------
    series : array_like, shape (n_steps,) or (n_steps, n_features)
        The inputs, oldest first. A 1-D series is one feature.
    window : int >= 1
        Steps per window (the length the network is unrolled for).
    targets : array_like, shape (n_steps,) or (n_steps, n_targets), optional
        What to predict, aligned row for row with `series`. Default: `series` itself
        (forecast the series' own future values).
    horizon : int, default 1
        How many steps after an input step its target lies. Must be >= 1 when
        `targets` is None. ``horizon=0`` is for `targets` that are already shifted,
        whose row ``t`` holds the value to predict from rows up to ``t`` (like the
        weather data's ``tmax_tomorrow``).
    many_to_many : bool, default True
        True: a target for every step of every window. False: one target per window.

    Returns
    -------
    X : ndarray, shape (n_windows, window, n_features)
        Input windows.
    Y : ndarray, shape (n_windows, window, n_targets) or (n_windows, n_targets)
        Targets: 3-D for many-to-many, 2-D for many-to-one (``n_targets`` is 1 for
        1-D targets; the trailing axis is always kept).

    Notes
    -----
    `X` and `Y` are read-only views into `series` and `targets` (made with
    ``numpy.lib.stride_tricks.sliding_window_view``), so windowing copies nothing
    and costs no memory, even though windows overlap. They are views whenever the
    inputs are floating-point ndarrays; lists and integer arrays are first
    converted to float64. Use ``np.ascontiguousarray(X)`` for a writable copy; the
    model makes its own contiguous copy anyway. A float32 series gives float32
    windows.

    Raises
    ------
    TypeError
        If `window` or `horizon` is not an integer, `many_to_many` is not a bool, or
        the data are not real numbers.
    ValueError
        If `window` < 1, `horizon` is too small, an array is not 1-D or 2-D, the
        series and targets differ in length, or there are fewer than
        ``window + horizon`` steps.

    Examples
    --------
    >>> x = np.arange(6.0)                                # 0 1 2 3 4 5
    >>> X, Y = sliding_windows(x, 3)                      # horizon=1, many-to-many
    >>> X[:, :, 0]
    array([[0., 1., 2.],
           [1., 2., 3.],
           [2., 3., 4.]])
    >>> Y[:, :, 0]
    array([[1., 2., 3.],
           [2., 3., 4.],
           [3., 4., 5.]])
    >>> X, Y = sliding_windows(x, 3, many_to_many=False)
    >>> Y
    array([[3.],
           [4.],
           [5.]])
    >>> X, Y = sliding_windows(x, 3, horizon=2, many_to_many=False)
    >>> X[:, :, 0], Y
    (array([[0., 1., 2.],
           [1., 2., 3.]]), array([[4.],
           [5.]]))
    """
    window = check_int("window", window, minimum=1)
    if not isinstance(many_to_many, (bool, np.bool_)):
        raise TypeError(f"many_to_many must be True or False; got {many_to_many!r}")
    x = _as_series("series", series)
    if targets is None:
        if (
            isinstance(horizon, (int, np.integer))
            and not isinstance(horizon, bool)
            and horizon == 0
        ):
            raise ValueError(
                "horizon=0 with targets=None would make each target the input itself; use "
                "horizon >= 1, or pass already shifted targets with horizon=0"
            )
        horizon = check_int("horizon", horizon, minimum=1)
        y = x
    else:
        horizon = check_int("horizon", horizon, minimum=0)
        y = _as_series("targets", targets)
        if y.shape[0] != x.shape[0]:
            raise ValueError(
                f"targets has {y.shape[0]} rows but series has {x.shape[0]}; they must be "
                "aligned row for row"
            )

    n_steps = x.shape[0]
    n_windows = n_steps - window - horizon + 1
    if n_windows < 1:
        raise ValueError(
            f"series has {n_steps} steps; window={window} and horizon={horizon} need at least "
            f"{window + horizon} (window + horizon) for one window"
        )

    # sliding_window_view appends the window axis last: (n_steps - window + 1, k, window).
    X = sliding_window_view(x, window, axis=0)[:n_windows].transpose(0, 2, 1)
    if many_to_many:
        Y = sliding_window_view(y[horizon:], window, axis=0)[:n_windows].transpose(0, 2, 1)
    else:
        first = window - 1 + horizon
        Y = _read_only(y[first : first + n_windows])
    return X, Y


# --------------------------------------------------------------------------------------
# Chronological split
# --------------------------------------------------------------------------------------


def _check_fractions(fractions):
    try:
        values = tuple(fractions)
    except TypeError:
        raise TypeError(
            f"fractions must be three numbers (train, validation, test); got {fractions!r}"
        ) from None
    if len(values) != 3:
        raise ValueError(
            "fractions must be three numbers (train, validation, test); "
            f"got {len(values)}: {fractions!r}"
        )
    for part, value in zip(("train", "validation", "test"), values):
        check_float(f"fractions[{part}]", value, minimum=0)
    if values[0] == 0:
        raise ValueError(f"the train fraction must be > 0; got fractions={fractions!r}")
    total = math.fsum(values)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1; got {fractions!r}, which sums to {total:g}")
    return tuple(float(v) for v in values)


def _length(index, array):
    shape = getattr(array, "shape", None)
    if shape is not None:
        if len(shape) == 0:
            raise TypeError(f"array {index} is a scalar; expected something with rows (ndim >= 1)")
        return shape[0]
    try:
        return len(array)
    except TypeError:
        raise TypeError(
            f"array {index} has no length; expected an array-like with rows, "
            f"got {type(array).__name__}"
        ) from None


def _rows(array, start, stop):
    if isinstance(array, np.ndarray):
        return array[start:stop]
    if hasattr(array, "iloc"):  # pandas: position, not label
        return array.iloc[start:stop]
    return np.asarray(array)[start:stop]


def train_val_test_split(*arrays: Any,
                         fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
                         ) -> tuple[Any, ...]:
    """Split aligned arrays into consecutive train, validation and test parts.

    The first rows go to training, the next to validation and the last to test:
    time order is kept and nothing is shuffled, so the model is always evaluated on
    a period after the one it learned from.

    Parameters
    ----------
    *arrays : array_like, each with n_rows along the first axis
        One or more arrays aligned row for row, e.g. a series and its targets, or
        windows ``X`` and ``Y``. NumPy arrays are split into views; pandas objects
        by position (``.iloc``); anything else is converted with ``np.asarray``.
    fractions : (float, float, float), default (0.7, 0.15, 0.15)
        Shares of the rows for (train, validation, test): each >= 0, the train
        share > 0, summing to 1. A validation or test share of 0 gives an empty part.

    Returns
    -------
    tuple
        ``(train, validation, test)`` for one array; for several, the three parts of
        each array in turn, as in scikit-learn: ``(a_train, a_val, a_test, b_train,
        b_val, b_test, ...)``.

    Notes
    -----
    With ``n`` rows the boundaries are ``n_train = floor(n * f_train)`` and
    ``n_train + n_val = floor(n * (f_train + f_val))``; the test part takes the
    rest. So 100 rows split 70 / 15 / 15 and 13,509 rows 9456 / 2026 / 2027.

    Splitting a series before windowing it loses ``window - 1`` rows at the start of
    each part; splitting the windows instead keeps them but lets a validation
    window's inputs reach back into the training period (its targets never do).

    Raises
    ------
    TypeError
        If no array is given, an argument is a scalar, or a fraction is not a number.
    ValueError
        If the arrays differ in length, the fractions are invalid, or a part with a
        fraction > 0 would be empty.

    Examples
    --------
    >>> x = np.arange(10)
    >>> train, val, test = train_val_test_split(x, fractions=(0.6, 0.2, 0.2))
    >>> train, val, test
    (array([0, 1, 2, 3, 4, 5]), array([6, 7]), array([8, 9]))
    """
    if not arrays:
        raise TypeError("train_val_test_split needs at least one array to split")
    f_train, f_val, f_test = _check_fractions(fractions)
    lengths = [_length(i, a) for i, a in enumerate(arrays)]
    n = lengths[0]
    if any(length != n for length in lengths):
        raise ValueError(f"arrays must have the same number of rows; got lengths {lengths}")
    # The small tolerance keeps e.g. 100 * 0.7 = 70.00000000000001 and
    # 100 * 0.85 = 84.99999999999999 on the integers they mean.
    train_end = math.floor(n * f_train + 1e-6)
    val_end = max(train_end, math.floor(n * (f_train + f_val) + 1e-6))
    if f_test == 0:
        val_end = n
        if f_val == 0:
            train_end = n
    sizes = {"train": train_end, "validation": val_end - train_end, "test": n - val_end}
    for (part, size), share in zip(sizes.items(), (f_train, f_val, f_test)):
        if share > 0 and size == 0:
            raise ValueError(
                f"{n} rows are too few to split with fractions={fractions!r}: the {part} part "
                "would be empty"
            )
    parts: list[Any] = []
    for array in arrays:
        parts.extend(
            (_rows(array, 0, train_end), _rows(array, train_end, val_end), _rows(array, val_end, n))
        )
    return tuple(parts)


# --------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------


class _Scaler:
    """What both scalers share: input checks, fit_transform, the state round trip.

    A subclass sets ``_fit_statistics(samples)``, ``_forward``/``_backward`` (the affine map
    and its inverse), ``_state()``/``_from_state_arrays()`` and ``_STATE_KEYS``.
    """

    _REQUIRED_KEYS: tuple[str, ...] = ()
    _STATE_KEYS: tuple[str, ...] = ()
    # Set by fit (so absent, and hasattr False, until then).
    n_features_in_: int
    n_samples_seen_: int

    # What each scaler defines.
    def _fit_statistics(self, samples: FloatArray, has_nan: bool) -> None:
        raise NotImplementedError

    def _forward(self, array: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _backward(self, array: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_state_arrays(cls, state: Mapping[str, Any]) -> Self:
        raise NotImplementedError

    def fit(self, X: ArrayLike) -> Self:
        """Compute the per-feature statistics of `X` (training data only).

        Parameters
        ----------
        X : array_like, shape (n,), (n, n_features) or (..., n_features)
            A 1-D array is one feature. NaN values are ignored; infinite values are
            rejected.

        Returns
        -------
        self
        """
        array = _as_float_array("X", X)
        if array.ndim == 0:
            raise ValueError(
                "X must have at least one dimension (n,) or (..., n_features); got a scalar"
            )
        samples = array.reshape(-1, 1) if array.ndim == 1 else array.reshape(-1, array.shape[-1])
        if samples.shape[0] == 0 or samples.shape[1] == 0:
            raise ValueError(
                f"X must hold at least one sample of at least one feature; got shape {array.shape}"
            )
        samples = samples.astype(np.float64, copy=False)
        if np.isinf(samples).any():
            raise ValueError(
                f"X contains infinite values; {type(self).__name__} cannot fit them"
            )
        nan = np.isnan(samples)
        if nan.any():
            empty = nan.all(axis=0)
            if empty.any():
                raise ValueError(
                    f"X has no values (all NaN) in feature {int(np.argmax(empty))}; cannot fit it"
                )
        self._fit_statistics(samples, nan.any())
        self.n_features_in_ = samples.shape[1]
        self.n_samples_seen_ = samples.shape[0]
        return self

    def transform(self, X: ArrayLike) -> FloatArray:
        """Scale `X` along its last axis with the fitted statistics.

        Parameters
        ----------
        X : array_like, shape (..., n_features), or (n,) if fitted on one feature

        Returns
        -------
        ndarray, same shape as `X` (float32 for float32 input, else float64)
        """
        array, dtype = self._check_input(X, "transform")
        return self._forward(array).astype(dtype, copy=False)

    def fit_transform(self, X: ArrayLike) -> FloatArray:
        """Fit on `X`, then transform it. Same as ``fit(X).transform(X)``.

        Parameters
        ----------
        X : array_like, shape (n,), (n, n_features) or (..., n_features)

        Returns
        -------
        ndarray, same shape as `X`
        """
        return self.fit(X).transform(X)

    def inverse_transform(self, X: ArrayLike) -> FloatArray:
        """Map scaled values back to the original units (the inverse of :meth:`transform`).

        Parameters
        ----------
        X : array_like, shape (..., n_features), or (n,) if fitted on one feature
            For example a model's predictions, when the scaler was fitted on the targets.

        Returns
        -------
        ndarray, same shape as `X`
        """
        array, dtype = self._check_input(X, "inverse_transform")
        return self._backward(array).astype(dtype, copy=False)

    def _is_fitted(self):
        return hasattr(self, "n_features_in_")

    def _check_input(self, X, method):
        name = type(self).__name__
        if not self._is_fitted():
            raise NotFittedError(
                f"this {name} is not fitted yet; call fit(X) with the training data "
                f"before {method}()"
            )
        array = _as_float_array("X", X)
        n_features = self.n_features_in_
        if array.ndim == 0:
            raise ValueError(f"X must be an array of shape (..., {n_features}); got a scalar")
        if array.ndim == 1:
            if n_features != 1:
                raise ValueError(
                    f"X has shape {array.shape}, but this scaler was fitted on {n_features} "
                    f"features: expected shape (..., {n_features}) (a 1-D array is read as one "
                    "feature)"
                )
        elif array.shape[-1] != n_features:
            raise ValueError(
                f"X has shape {array.shape}, but this scaler was fitted on {n_features} "
                f"feature{'s' if n_features != 1 else ''}: expected shape (..., {n_features})"
            )
        # A 1-D array against shape-(1,) statistics broadcasts to its own shape.
        dtype = np.float32 if array.dtype == np.float32 else np.float64
        return array, dtype

    def get_state(self) -> dict[str, Any]:
        """Return the fitted statistics as plain NumPy arrays.

        Returns
        -------
        dict of ndarray
            Copies, safe to store with ``np.savez`` (no pickle) and to pass to
            :meth:`from_state`; the keys are listed in each scaler's docstring.
        """
        if not self._is_fitted():
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; there is no state to get"
            )
        state = self._state()
        state["n_samples_seen"] = np.array(self.n_samples_seen_, dtype=np.int64)
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild a fitted scaler from :meth:`get_state`'s output.

        Parameters
        ----------
        state : mapping
            What :meth:`get_state` returned (``"n_samples_seen"`` is optional,
            default 0).

        Returns
        -------
        scaler
            Fitted: it transforms exactly as the scaler whose state was taken.
        """
        try:
            keys = set(state.keys())
        except AttributeError:
            raise TypeError(
                f"state must be a mapping such as get_state() returns; got {type(state).__name__}"
            ) from None
        missing = set(cls._REQUIRED_KEYS) - keys
        if missing:
            raise ValueError(
                f"state is missing {sorted(missing)}; expected keys {list(cls._STATE_KEYS)}"
            )
        unknown = keys - set(cls._STATE_KEYS)
        if unknown:
            raise ValueError(
                f"state has unknown keys {sorted(unknown)}; expected {list(cls._STATE_KEYS)}"
            )
        n_samples_seen = np.asarray(state.get("n_samples_seen", 0))
        if n_samples_seen.shape != () or n_samples_seen.dtype.kind not in "iu":
            raise TypeError(
                'state["n_samples_seen"] must be an integer; got '
                f"{n_samples_seen.dtype} with shape {n_samples_seen.shape}"
            )
        scaler = cls._from_state_arrays(state)
        scaler.n_samples_seen_ = check_int(
            'state["n_samples_seen"]', int(n_samples_seen), minimum=0
        )
        return scaler

    def __repr__(self) -> str:
        name = type(self).__name__
        params = self._params_repr()
        if not self._is_fitted():
            return f"{name}({params})"
        fitted = f"n_features_in_={self.n_features_in_}, n_samples_seen_={self.n_samples_seen_}"
        return f"{name}({params + ', ' if params else ''}{fitted})"

    def _params_repr(self):
        return ""


def _state_vector(state, key, length=None):
    vector = np.array(state[key], dtype=np.float64)
    if vector.ndim != 1 or vector.shape[0] == 0:
        raise ValueError(f'state["{key}"] must be 1-D with length >= 1; got shape {vector.shape}')
    if length is not None and vector.shape[0] != length:
        raise ValueError(
            f"state arrays must all have the same length; got {length} and "
            f'{vector.shape[0]} for state["{key}"]'
        )
    if not np.isfinite(vector).all():
        raise ValueError(f'state["{key}"] must be finite')
    return vector


class StandardScaler(_Scaler):
    """Standardise each feature to mean 0 and standard deviation 1.

    Fit it on the training part only, apply it to every part, and map predictions
    back to the original units with :meth:`inverse_transform`.

    The last axis holds the features: the scaler accepts ``(n,)`` (one feature),
    ``(n, n_features)`` and ``(..., n_features)`` arrays such as windows of shape
    ``(n_windows, window, n_features)``; statistics are taken over all other axes.

    Attributes
    ----------
    mean_ : ndarray of float64, shape (n_features,)
        Per-feature mean of the data given to :meth:`fit`.
    scale_ : ndarray of float64, shape (n_features,)
        Per-feature standard deviation (population, ``ddof=0``), except that a
        feature that is constant in the training data gets 1, so it transforms to 0
        instead of dividing by zero.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    n_samples_seen_ : int
        Number of samples (rows across all leading axes) seen in :meth:`fit`.

    Notes
    -----
    NaN values are ignored when fitting and stay NaN when transforming; infinite
    values are rejected. Transforms return a new array: float32 input gives float32
    output, other inputs float64. For storing in a model file without pickle, see
    :meth:`get_state` and :meth:`from_state`.

    Examples
    --------
    >>> train = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> scaler = StandardScaler().fit(train)
    >>> scaler.mean_, scaler.scale_
    (array([ 2., 20.]), array([ 1., 10.]))
    >>> scaler.transform(np.array([[5.0, 0.0]]))
    array([[ 3., -2.]])
    >>> scaler.inverse_transform(scaler.transform(train))
    array([[ 1., 10.],
           [ 3., 30.]])
    """

    _REQUIRED_KEYS = ("mean", "scale")
    # The state is a dict of plain arrays so np.savez can store it without pickle:
    # {"mean": (n_features,), "scale": (n_features,), "n_samples_seen": 0-d int64}.
    _STATE_KEYS = ("mean", "scale", "n_samples_seen")

    def _fit_statistics(self, samples, has_nan):
        # Values near the float64 limit (1e300) overflow the sum or the variance;
        # that is reported below rather than warned about.
        with np.errstate(over="ignore", invalid="ignore"):
            if has_nan:
                mean = np.nanmean(samples, axis=0)
                std = np.nanstd(samples, axis=0)
            else:
                mean = samples.mean(axis=0)
                std = samples.std(axis=0)
        overflowed = ~(np.isfinite(mean) & np.isfinite(std))
        if overflowed.any():
            raise ValueError(
                f"X has values too large to standardise in feature {int(np.argmax(overflowed))}:"
                " their mean or variance overflows float64"
            )
        # A constant feature's std is 0 up to rounding: treat it as exactly constant.
        constant = std <= 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
        self.mean_ = mean
        self.scale_ = np.where(constant, 1.0, std)

    def _forward(self, array):
        return (array - self.mean_) / self.scale_

    def _backward(self, array):
        return array * self.scale_ + self.mean_

    def _state(self):
        return {"mean": self.mean_.copy(), "scale": self.scale_.copy()}

    @classmethod
    def _from_state_arrays(cls, state):
        mean = _state_vector(state, "mean")
        scale = _state_vector(state, "scale", len(mean))
        if not (scale > 0).all():
            raise ValueError('state["scale"] must be > 0')
        scaler = cls()
        scaler.mean_ = mean
        scaler.scale_ = scale
        scaler.n_features_in_ = mean.shape[0]
        return scaler


class MinMaxScaler(_Scaler):
    """Scale each feature linearly so its training minimum and maximum map to `feature_range`.

    Fit it on the training part only, apply it to every part, and map predictions
    back with :meth:`inverse_transform`. Values outside the training range map
    outside `feature_range` (nothing is clipped), so a series that rises past its
    training maximum gives inputs above 1: a tanh network saturates there, which
    is why trending series are better differenced first.

    The last axis holds the features, as for :class:`StandardScaler`: ``(n,)``,
    ``(n, n_features)`` and ``(..., n_features)`` arrays are accepted.

    Parameters
    ----------
    feature_range : (float, float), default (0.0, 1.0)
        ``(low, high)`` with ``low < high``: where the training minimum and maximum go.

    Attributes
    ----------
    data_min_, data_max_ : ndarray of float64, shape (n_features,)
        Per-feature minimum and maximum of the data given to :meth:`fit` (NaN ignored).
    data_range_ : ndarray of float64, shape (n_features,)
        ``data_max_ - data_min_``.
    scale_ : ndarray of float64, shape (n_features,)
        ``(high - low) / data_range_``; a feature that is constant in the training data
        gets 1, so it maps to ``low`` instead of dividing by zero.
    min_ : ndarray of float64, shape (n_features,)
        ``low - data_min_ * scale_``, so that ``transform(X) = X * scale_ + min_``.
    n_features_in_, n_samples_seen_ : int
        As for :class:`StandardScaler`.

    Notes
    -----
    :meth:`get_state` returns ``{"data_min", "data_max"`` (shape (n_features,)),
    ``"feature_range"`` (shape (2,)), ``"n_samples_seen"}``, plain arrays that
    :meth:`from_state` takes back.

    Examples
    --------
    >>> train = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> scaler = MinMaxScaler().fit(train)
    >>> scaler.transform(np.array([[2.0, 40.0]]))
    array([[0.5, 1.5]])
    >>> scaler.inverse_transform(np.array([[0.0, 1.0]]))
    array([[ 1., 30.]])
    """

    _REQUIRED_KEYS = ("data_min", "data_max")
    _STATE_KEYS = ("data_min", "data_max", "feature_range", "n_samples_seen")

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        self.feature_range = _check_feature_range(feature_range)

    def _fit_statistics(self, samples, has_nan):
        if has_nan:
            low, high = np.nanmin(samples, axis=0), np.nanmax(samples, axis=0)
        else:
            low, high = samples.min(axis=0), samples.max(axis=0)
        with np.errstate(over="ignore"):
            span = high - low
        if not np.isfinite(span).all():
            bad = int(np.argmax(~np.isfinite(span)))
            raise ValueError(
                f"X has values too large to scale in feature {bad}: its range overflows float64"
            )
        self._set_range(low, high)

    def _set_range(self, low, high):
        target_low, target_high = self.feature_range
        self.data_min_ = low
        self.data_max_ = high
        self.data_range_ = high - low
        constant = self.data_range_ <= 10 * np.finfo(np.float64).eps * np.maximum(
            1.0, np.abs(low)
        )
        safe_range = np.where(constant, 1.0, self.data_range_)
        self.scale_ = np.where(constant, 1.0, (target_high - target_low) / safe_range)
        self.min_ = target_low - low * self.scale_

    def _forward(self, array):
        return array * self.scale_ + self.min_

    def _backward(self, array):
        return (array - self.min_) / self.scale_

    def _state(self):
        return {
            "data_min": self.data_min_.copy(),
            "data_max": self.data_max_.copy(),
            "feature_range": np.array(self.feature_range, dtype=np.float64),
        }

    @classmethod
    def _from_state_arrays(cls, state):
        low = _state_vector(state, "data_min")
        high = _state_vector(state, "data_max", len(low))
        if (high < low).any():
            raise ValueError('state["data_max"] must be >= state["data_min"] in every feature')
        feature_range = state.get("feature_range", (0.0, 1.0))
        scaler = cls(tuple(float(v) for v in np.asarray(feature_range, dtype=np.float64)))
        scaler._set_range(low, high)
        scaler.n_features_in_ = low.shape[0]
        return scaler

    def _params_repr(self):
        if self.feature_range == (0.0, 1.0):
            return ""
        return f"feature_range={self.feature_range!r}"


def _check_feature_range(feature_range):
    try:
        pair = tuple(feature_range)
    except TypeError:
        raise TypeError(
            f"feature_range must be a pair of numbers (low, high); got {feature_range!r}"
        ) from None
    if len(pair) != 2:
        raise ValueError(
            f"feature_range must be a pair of numbers (low, high); got {len(pair)} values"
        )
    low = check_float("feature_range[0]", pair[0])
    high = check_float("feature_range[1]", pair[1])
    if not low < high:
        raise ValueError(f"feature_range must have low < high; got {feature_range!r}")
    return (low, high)
