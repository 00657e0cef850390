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

import math
import operator
from numbers import Real

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["sliding_windows", "train_val_test_split", "StandardScaler", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a scaler (or model) is used before ``fit``.

    A subclass of both ValueError and AttributeError, as in scikit-learn, so either
    ``except`` clause catches it.
    """


# --------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------


def _check_int(name, value, minimum):
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer; got {value!r} (bool)")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer; got {value!r} ({type(value).__name__})"
        ) from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def _as_float_array(name, value):
    """Array-like -> ndarray with a floating dtype (floats kept as they are, no copy)."""
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind == "f":
        return array
    if kind in "iub":
        return array.astype(np.float64)
    raise TypeError(
        f"{name} must hold real numbers; got an array of dtype {array.dtype} "
        f"with shape {array.shape}"
    )


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


def sliding_windows(series, window, *, targets=None, horizon=1, many_to_many=True):
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
    window = _check_int("window", window, 1)
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
        horizon = _check_int("horizon", horizon, 1)
        y = x
    else:
        horizon = _check_int("horizon", horizon, 0)
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
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"fractions[{part}] must be a real number; got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"fractions must be finite and >= 0; got {fractions!r}")
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


def train_val_test_split(*arrays, fractions=(0.7, 0.15, 0.15)):
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
    parts = []
    for array in arrays:
        parts.extend(
            (_rows(array, 0, train_end), _rows(array, train_end, val_end), _rows(array, val_end, n))
        )
    return tuple(parts)


# --------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------


class StandardScaler:
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

    def fit(self, X):
        """Compute the per-feature mean and standard deviation of `X`.

        Parameters
        ----------
        X : array_like, shape (n,), (n, n_features) or (..., n_features)
            Training data only. A 1-D array is one feature.

        Returns
        -------
        self : StandardScaler
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
            raise ValueError("X contains infinite values; StandardScaler cannot fit them")
        nan = np.isnan(samples)
        # Values near the float64 limit (1e300) overflow the sum or the variance;
        # that is reported below rather than warned about.
        with np.errstate(over="ignore", invalid="ignore"):
            if nan.any():
                empty = nan.all(axis=0)
                if empty.any():
                    raise ValueError(
                        f"X has no values (all NaN) in feature {int(np.argmax(empty))}; "
                        "cannot fit it"
                    )
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
        self.n_features_in_ = samples.shape[1]
        self.n_samples_seen_ = samples.shape[0]
        return self

    def transform(self, X):
        """Standardise `X`: ``(X - mean_) / scale_`` along the last axis.

        Parameters
        ----------
        X : array_like, shape (..., n_features), or (n,) if fitted on one feature

        Returns
        -------
        ndarray, same shape as `X`
        """
        array, dtype = self._check_input(X, "transform")
        return ((array - self.mean_) / self.scale_).astype(dtype, copy=False)

    def fit_transform(self, X):
        """Fit on `X`, then transform it. Same as ``fit(X).transform(X)``.

        Parameters
        ----------
        X : array_like, shape (n,), (n, n_features) or (..., n_features)

        Returns
        -------
        ndarray, same shape as `X`
        """
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        """Map standardised values back to the original units: ``X * scale_ + mean_``.

        Parameters
        ----------
        X : array_like, shape (..., n_features), or (n,) if fitted on one feature
            For example a model's predictions, when the scaler was fitted on the targets.

        Returns
        -------
        ndarray, same shape as `X`
        """
        array, dtype = self._check_input(X, "inverse_transform")
        return (array * self.scale_ + self.mean_).astype(dtype, copy=False)

    def _check_input(self, X, method):
        if not hasattr(self, "mean_"):
            raise NotFittedError(
                f"this StandardScaler is not fitted yet; call fit(X) with the training data "
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

    # The state is a dict of plain arrays so np.savez can store it without pickle.
    _STATE_KEYS = ("mean", "scale", "n_samples_seen")

    def get_state(self):
        """Return the fitted statistics as plain NumPy arrays.

        Returns
        -------
        dict
            ``{"mean": ndarray (n_features,), "scale": ndarray (n_features,),
            "n_samples_seen": 0-d int64 ndarray}``: copies, safe to store with
            ``np.savez`` (no pickle) and to pass to :meth:`from_state`.
        """
        if not hasattr(self, "mean_"):
            raise NotFittedError("this StandardScaler is not fitted yet; there is no state to get")
        return {
            "mean": self.mean_.copy(),
            "scale": self.scale_.copy(),
            "n_samples_seen": np.array(self.n_samples_seen_, dtype=np.int64),
        }

    @classmethod
    def from_state(cls, state):
        """Rebuild a fitted scaler from :meth:`get_state`'s output.

        Parameters
        ----------
        state : mapping
            Keys ``"mean"`` and ``"scale"`` (array_like, shape (n_features,)) and
            optionally ``"n_samples_seen"`` (an integer, default 0).

        Returns
        -------
        StandardScaler
            Fitted: it transforms exactly as the scaler whose state was taken.
        """
        try:
            keys = set(state.keys())
        except AttributeError:
            raise TypeError(
                f"state must be a mapping such as get_state() returns; got {type(state).__name__}"
            ) from None
        missing = {"mean", "scale"} - keys
        if missing:
            raise ValueError(
                f"state is missing {sorted(missing)}; expected keys {list(cls._STATE_KEYS)}"
            )
        unknown = keys - set(cls._STATE_KEYS)
        if unknown:
            raise ValueError(
                f"state has unknown keys {sorted(unknown)}; expected {list(cls._STATE_KEYS)}"
            )
        mean = np.array(state["mean"], dtype=np.float64)
        scale = np.array(state["scale"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape[0] == 0 or scale.shape != mean.shape:
            raise ValueError(
                f'state["mean"] and state["scale"] must be 1-D of the same length >= 1; got shapes '
                f"{mean.shape} and {scale.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError('state["mean"] must be finite and state["scale"] finite and > 0')
        n_samples_seen = _check_int(
            'state["n_samples_seen"]', np.asarray(state.get("n_samples_seen", 0)).item(), 0
        )
        scaler = cls()
        scaler.mean_ = mean
        scaler.scale_ = scale
        scaler.n_features_in_ = mean.shape[0]
        scaler.n_samples_seen_ = n_samples_seen
        return scaler

    def __repr__(self):
        if not hasattr(self, "mean_"):
            return "StandardScaler()"
        return (
            f"StandardScaler(n_features_in_={self.n_features_in_}, "
            f"n_samples_seen_={self.n_samples_seen_})"
        )
